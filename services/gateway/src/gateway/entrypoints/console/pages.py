"""The console's routes: log in through the OIDC provider, then the timeline, a record's version
history and the integrity pages.

Pages are rendered on the server (Jinja2, autoescaped) and carry a Content-Security-Policy
without 'unsafe-inline': one stylesheet from /console/static/, no script. Forms post to the
console itself; a patient id travels in a form body, never in a URL. A record's history is named
in its URL by the record's id alone, a random UUID that carries no patient data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from gateway.application import (
    GatewayApp,
    InsufficientScopeError,
    NotAuthenticatedError,
    RateLimitedError,
)
from gateway.domain.identity import Caller
from gateway.entrypoints.console.filters import InvalidFilterError, parse_filter
from gateway.entrypoints.console.login import LoginFailedError, OidcLogin, new_verifier
from gateway.entrypoints.console.sessions import (
    COOKIE_PATH,
    LOGIN_COOKIE,
    LOGIN_TTL_S,
    SESSION_COOKIE,
    ConsoleSessions,
)
from gateway.entrypoints.console.trail import (
    AuditUnavailableError,
    canonical_uuid,
    export_bundle,
    patient_timeline,
    record_changes,
    verify_topic,
)
from gateway.entrypoints.console.versions import record_history
from gateway.entrypoints.edge import RequestTooLargeError, read_body
from gateway.ports import IdentityProviderUnavailableError, Refusal

HERE = Path(__file__).parent
AUDITOR = "auditor"
FORM_LIMIT_BYTES = 4096
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")  # fmt: skip
_templates = Environment(loader=FileSystemLoader(HERE / "templates"),
                         autoescape=select_autoescape(), auto_reload=False)  # fmt: skip


@dataclass(frozen=True)
class ConsoleConfig:
    login: OidcLogin
    sessions: ConsoleSessions
    topics: tuple[str, ...]
    secure_cookies: bool


def page(template: str, status: int = 200, **values: Any) -> HTMLResponse:
    body = _templates.get_template(template).render(**values)
    return HTMLResponse(body, status_code=status, headers={"Content-Security-Policy": CSP})


def console_routes(app: GatewayApp, config: ConsoleConfig) -> list[BaseRoute]:  # noqa: PLR0915
    """The console's routes under /console/ (one closure per page over the app and config)."""
    sessions = config.sessions

    def cookie(response: Response, name: str, value: str, *, max_age: int,
               same_site: str) -> None:  # fmt: skip
        response.set_cookie(name, value, max_age=max_age, path=COOKIE_PATH, httponly=True,
                            secure=config.secure_cookies, samesite=same_site)  # type: ignore[arg-type]  # fmt: skip

    async def auditor(request: Request) -> Caller | Response:
        """The signed-in auditor, or the answer to give instead (the login page, a refusal)."""
        session = sessions.find(request.cookies.get(SESSION_COOKIE))
        if session is None:
            return page("login.html", 401)
        try:
            caller = await app.authenticate(session.access_token,
                                            request_id=request.state.request_id)  # fmt: skip
            await app.admit(caller)
        except NotAuthenticatedError:
            sessions.close(request.cookies.get(SESSION_COOKIE))
            return page("login.html", 401, expired=True)
        except RateLimitedError as limited:
            return page("error.html", 429, message="Too many requests; try again shortly.",
                        retry_after=limited.retry_after_s)  # fmt: skip
        except IdentityProviderUnavailableError:
            return page("error.html", 503, message="The identity provider cannot be reached.")
        return caller

    async def home(request: Request) -> Response:
        caller = await auditor(request)
        if isinstance(caller, Response):
            return caller
        return page("home.html", caller=caller.principal, topics=config.topics)

    async def login(request: Request) -> Response:
        verifier = new_verifier()
        state, signed_state = sessions.begin_login(verifier)
        try:
            url = await config.login.authorization_url(state, verifier)
        except LoginFailedError as failed:
            return page("error.html", 503, message=f"Cannot log in: {failed}.")
        response = RedirectResponse(url, status_code=302)
        # Lax, not Strict: the provider sends the browser back with a cross-site navigation.
        cookie(response, LOGIN_COOKIE, signed_state, max_age=LOGIN_TTL_S, same_site="lax")
        return response

    async def callback(request: Request) -> Response:
        code, state = request.query_params.get("code", ""), request.query_params.get("state", "")
        pending = sessions.finish_login(request.cookies.get(LOGIN_COOKIE), state)
        if pending is None or not code:
            return page("error.html", 400, message="This login was not started here, or it "
                        "expired. Start again.", login_again=True)  # fmt: skip
        request_id = request.state.request_id
        try:
            access_token, lifetime_s = await config.login.exchange(code, pending.verifier)
            caller = await app.authenticate(access_token, request_id=request_id)
        except (LoginFailedError, NotAuthenticatedError):
            return page("error.html", 401, message="The login could not be completed.",
                        login_again=True)  # fmt: skip
        if AUDITOR not in caller.principal.roles:
            p = caller.principal
            await app.audit.refused(Refusal("console: not an auditor", p.subject, p.client_id,
                                            "ConsoleLogin", request_id))  # fmt: skip
            response = page("refused.html", 403)
        else:
            # A page, not a redirect: a SameSite=Strict cookie set at the end of a cross-site
            # navigation is not sent on its redirect; the page's own navigation sends it.
            response = page("signed_in.html")
            cookie(response, SESSION_COOKIE, sessions.open(access_token, lifetime_s),
                   max_age=int(lifetime_s), same_site="strict")  # fmt: skip
        response.delete_cookie(LOGIN_COOKIE, path=COOKIE_PATH)
        return response

    async def logout(request: Request) -> Response:
        sessions.close(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/console/", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
        return response

    async def timeline(request: Request) -> Response:
        caller = await auditor(request)
        if isinstance(caller, Response):
            return caller
        form = await read_form(request)
        patient_id = patient_id_of(form)
        if patient_id is None:
            return page("home.html", 400, caller=caller.principal, topics=config.topics,
                        invalid_patient_id=True)  # fmt: skip
        try:
            shown = parse_filter(form)
        except InvalidFilterError as invalid:
            return page("error.html", 400, message=f"That filter cannot be used: {invalid}.")
        try:
            entries = await patient_timeline(app, caller, patient_id, request.state.request_id,
                                             shown)  # fmt: skip
        except (AuditUnavailableError, InsufficientScopeError) as failed:
            return _refused_by_audit(failed)
        return page("timeline.html", caller=caller.principal, patient_id=patient_id,
                    timeline=entries, shown=shown)  # fmt: skip

    async def export(request: Request) -> Response:
        caller = await auditor(request)
        if isinstance(caller, Response):
            return caller
        patient_id = patient_id_of(await read_form(request))
        if patient_id is None:
            return page("error.html", 400, message="That is not a patient id (a UUID).")
        try:
            bundle = await export_bundle(app, caller, patient_id, request.state.request_id)
        except (AuditUnavailableError, InsufficientScopeError) as failed:
            return _refused_by_audit(failed)
        disposition = 'attachment; filename="audit-events.json"'
        return JSONResponse(bundle, media_type="application/fhir+json",
                            headers={"Content-Disposition": disposition})  # fmt: skip

    async def record(request: Request) -> Response:
        caller = await auditor(request)
        if isinstance(caller, Response):
            return caller
        record_id = canonical_uuid(str(request.path_params["record_id"]))
        if not record_id:  # the path is not echoed: it could be anything a link carried
            return page("error.html", 404, message="That is not a record id (a UUID).")
        try:
            changes, complete = await record_changes(app, caller, record_id,
                                                     request.state.request_id)  # fmt: skip
        except (AuditUnavailableError, InsufficientScopeError) as failed:
            return _refused_by_audit(failed)
        return page("record.html", caller=caller.principal,
                    history=record_history(record_id, changes, complete=complete))  # fmt: skip

    async def integrity(request: Request) -> Response:
        caller = await auditor(request)
        if isinstance(caller, Response):
            return caller
        checks = None
        topic = ""
        if request.method == "POST":
            topic = (await read_form(request)).get("topic", "")
            if topic not in config.topics:
                return page("error.html", 400, message="Unknown topic.")
            try:
                checks = await verify_topic(app, caller, topic, request.state.request_id)
            except (AuditUnavailableError, InsufficientScopeError) as failed:
                return _refused_by_audit(failed)
        return page("integrity.html", caller=caller.principal, topics=config.topics,
                    topic=topic, checks=checks)  # fmt: skip

    async def to_console(_: Request) -> Response:
        return RedirectResponse("/console/", status_code=308)

    return [
        Route("/console", to_console, methods=["GET"]),
        Route("/console/", home, methods=["GET"]),
        Route("/console/login", login, methods=["GET"]),
        Route("/console/callback", callback, methods=["GET"]),
        Route("/console/logout", logout, methods=["POST"]),
        Route("/console/timeline", timeline, methods=["POST"]),
        Route("/console/export", export, methods=["POST"]),
        Route("/console/records/{record_id}", record, methods=["GET"]),
        Route("/console/integrity", integrity, methods=["GET", "POST"]),
        Mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static"),
    ]


async def read_form(request: Request) -> dict[str, str]:
    """The fields of a small urlencoded form, the first value of each (empty if unreadable)."""
    try:
        body = (await read_body(request, FORM_LIMIT_BYTES)).decode("ascii")
    except (RequestTooLargeError, UnicodeDecodeError):
        return {}
    return {name: values[0] for name, values in parse_qs(body).items()}


def patient_id_of(form: dict[str, str]) -> str | None:
    return canonical_uuid(form.get("patient_id", "")) or None


def _refused_by_audit(failed: Exception) -> Response:
    if isinstance(failed, InsufficientScopeError):
        return page("error.html", 403, message=f"The login's scopes do not allow this "
                    f"(needs {failed.scope}).")  # fmt: skip
    status = getattr(failed, "status", "UNAVAILABLE")
    http_status = {"PERMISSION_DENIED": 403, "INVALID_ARGUMENT": 400, "NOT_FOUND": 404}.get(
        status, 503
    )
    return page("error.html", http_status, message=f"The audit service answered {failed}.")
