"""The audit console over fakes: its login (PKCE, cookies), its pages (CSP, escaping) and the
audit service's RPCs it calls as the signed-in auditor."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.adapters.internal_tokens import InternalTokenIssuer
from gateway.adapters.rate_limits import WindowRateLimiter
from gateway.adapters.refusal_log import RefusalLog
from gateway.application import GatewayApp
from gateway.domain.identity import IdentityMapping
from gateway.entrypoints.console.login import OidcLogin
from gateway.entrypoints.console.pages import ConsoleConfig
from gateway.entrypoints.console.sessions import MAX_PENDING_LOGINS, ConsoleSessions
from gateway.entrypoints.console.trail import age_of, partition_check
from gateway.entrypoints.http import build_http_app
from gateway.ports import DownstreamAnswer, DownstreamCall, TokenRejectedError

pytestmark = pytest.mark.unit

ISSUER = "http://idp.test/realms/clinical"
PATIENT = "5b0c7a53-7d0b-4d3e-9a40-2f3e3c1d6a01"
CANARY = f"<script>{secrets.token_hex(16)}</script>"
TOKENS = {
    "auditor-token": {"sub": "aud-1", "azp": "companion-app", "scope": "openid user/*.rs",
                      "realm_access": {"roles": ["auditor"]}, "exp": 4_000_000_000},
    "clinician-token": {"sub": "doc-1", "azp": "companion-app", "scope": "openid user/*.rs",
                        "realm_access": {"roles": ["clinician"]}, "exp": 4_000_000_000},
}  # fmt: skip
CHANGE = {"event_type": "OrderSigned", "aggregate_type": "Order", "aggregate_id": "o-1",
          "aggregate_version": "2", "recorded_at": "2026-12-07T10:00:02Z",
          "actor": {"subject": "doc-1", "roles": ["clinician"], "client_id": "companion-app"},
          "purpose_of_use": "PURPOSE_OF_USE_TREAT", "source_ip": "10.0.0.7",
          "user_agent": CANARY,
          "trace_context": {"traceparent": f"00-{'a' * 32}-{'b' * 16}-01"}}  # fmt: skip
ACCESS = {"occurred_at": "2026-12-07T10:00:05Z", "record_type": "Order",
          "accessed_record_ids": ["o-1"], "action": "ACCESS_ACTION_READ", "operation": "GetOrder",
          "outcome": "ACCESS_OUTCOME_SUCCESS", "purpose_of_use": "PURPOSE_OF_USE_ETREAT",
          "actor": {"subject": "doc-2", "roles": ["clinician"], "client_id": "ward-app"},
          "source_ip": "10.0.0.9", "break_glass": True,
          "break_glass_reason": "unconscious in the emergency room"}  # fmt: skip


class FakeVerifier:
    async def verify(self, token: str) -> dict[str, Any]:
        if token not in TOKENS:
            raise TokenRejectedError("signature invalid")
        return dict(TOKENS[token])


class FakeAudit:
    """The audit service: answers each RPC from ``answers``; records the calls."""

    def __init__(self) -> None:
        self.calls: list[DownstreamCall] = []
        self.answers: dict[str, DownstreamAnswer] = {
            "History": DownstreamAnswer("OK", body={"changes": [CHANGE]}),
            "AccessLog": DownstreamAnswer("OK", body={"records": [ACCESS]}),
            "Verify": DownstreamAnswer("OK", body={"ok": True, "partitions": [
                {"ok": True, "records": "7", "attested_through": "6",
                 "attested_at": "2026-12-07T10:00:00Z"}]}),
        }  # fmt: skip

    async def call(self, call: DownstreamCall, token: str) -> DownstreamAnswer:
        self.calls.append(call)
        return self.answers[call.method]


def provider(request: httpx.Request) -> httpx.Response:
    """The identity provider: discovery, and a token endpoint that checks the PKCE verifier."""
    if request.url.path.endswith("/openid-configuration"):
        return httpx.Response(200, json={
            "issuer": ISSUER, "authorization_endpoint": f"{ISSUER}/auth",
            "token_endpoint": f"{ISSUER}/token"})  # fmt: skip
    form = parse_qs(request.content.decode())
    code, verifier = form["code"][0], form["code_verifier"][0]
    user, challenge = code.split(":")
    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    if digest.decode() != challenge or form["grant_type"] != ["authorization_code"]:
        return httpx.Response(400, json={"error": "invalid_grant"})
    return httpx.Response(200, json={"access_token": f"{user}-token", "expires_in": 300})


@pytest.fixture
def audit_service() -> FakeAudit:
    return FakeAudit()


@pytest.fixture
def refusals() -> RefusalLog:
    return RefusalLog()


@pytest.fixture
async def browser(
    audit_service: FakeAudit, refusals: RefusalLog
) -> AsyncIterator[httpx.AsyncClient]:
    tokens = InternalTokenIssuer([Ed25519PrivateKey.generate()], issuer="clinical-platform")
    app = GatewayApp(
        verifier=FakeVerifier(), mapping=IdentityMapping(),
        rate_limiter=WindowRateLimiter("100/minute"), tokens=tokens, downstream=audit_service,
        audit=refusals, audiences={"audit": "clinical-audit"},
    )  # fmt: skip
    async with httpx.AsyncClient(transport=httpx.MockTransport(provider)) as idp:
        login = OidcLogin(ISSUER, "companion-app", "http://gateway/console/callback", idp)
        sessions = ConsoleSessions(secrets.token_urlsafe(32))
        console = ConsoleConfig(login, sessions, topics=("clinical.orders.events.v1",),
                                secure_cookies=False)  # fmt: skip
        asgi = build_http_app(app, jwks=tokens.jwks(), max_body_bytes=4096, cors_origins=[],
                              console=console)  # fmt: skip
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            yield http


async def log_in(browser: httpx.AsyncClient, user: str) -> httpx.Response:
    """Through /console/login to the provider and back, as the provider would send ``user``."""
    started = await browser.get("/console/login")
    query = parse_qs(urlsplit(started.headers["location"]).query)
    code = f"{user}:{query['code_challenge'][0]}"
    return await browser.get("/console/callback", params={"code": code,
                                                           "state": query["state"][0]})  # fmt: skip


def set_cookies(answer: httpx.Response) -> dict[str, str]:
    return {h.split("=", 1)[0]: h for h in answer.headers.get_list("set-cookie")}


async def test_pages_carry_one_csp_without_unsafe_inline_and_load_no_script(
    browser: httpx.AsyncClient,
) -> None:
    answer = await browser.get("/console/")
    assert answer.status_code == 401
    policies = answer.headers.get_list("content-security-policy")
    assert len(policies) == 1
    assert "unsafe-inline" not in policies[0]
    assert "style-src 'self'" in policies[0]
    assert "default-src 'none'" in policies[0]
    assert "frame-ancestors 'none'" in policies[0]
    assert "<script" not in answer.text
    assert " style=" not in answer.text
    assert answer.headers["cache-control"] == "no-store"
    assert 'lang="en"' in answer.text
    css = await browser.get("/console/static/console.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")


async def test_login_sends_the_browser_to_the_provider_with_pkce_s256_and_a_state_cookie(
    browser: httpx.AsyncClient,
) -> None:
    answer = await browser.get("/console/login")
    assert answer.status_code == 302
    url = urlsplit(answer.headers["location"])
    query = parse_qs(url.query)
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{ISSUER}/auth"
    assert query["code_challenge_method"] == ["S256"]
    assert query["client_id"] == ["companion-app"]
    assert query["redirect_uri"] == ["http://gateway/console/callback"]
    assert "user/*.rs" in query["scope"][0]
    cookie = set_cookies(answer)["console_login"]
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/console/" in cookie


async def test_an_auditor_gets_a_signed_httponly_samesite_strict_session(
    browser: httpx.AsyncClient,
) -> None:
    answer = await log_in(browser, "auditor")
    assert answer.status_code == 200, answer.text
    cookie = set_cookies(answer)["console_session"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/console/" in cookie
    assert "auditor-token" not in cookie  # the token stays on the server
    home = await browser.get("/console/")
    assert home.status_code == 200
    assert 'for="patient_id"' in home.text
    assert "aud-1" in home.text


async def test_a_clinicians_login_is_refused_with_a_403_page_and_audited(
    browser: httpx.AsyncClient, refusals: RefusalLog
) -> None:
    answer = await log_in(browser, "clinician")
    assert answer.status_code == 403
    assert "for auditors only" in answer.text
    assert "console_session" not in set_cookies(answer)
    assert (await browser.get("/console/")).status_code == 401
    assert [(r.reason, r.subject) for r in refusals.recent] == [
        ("console: not an auditor", "doc-1")
    ]


async def test_a_callback_this_browser_did_not_start_is_refused(
    browser: httpx.AsyncClient,
) -> None:
    started = await browser.get("/console/login")
    query = parse_qs(urlsplit(started.headers["location"]).query)
    browser.cookies.clear()
    answer = await browser.get("/console/callback", params={
        "code": f"auditor:{query['code_challenge'][0]}", "state": query["state"][0]})  # fmt: skip
    assert answer.status_code == 400
    assert "console_session" not in set_cookies(answer)


async def test_a_forged_session_cookie_is_no_session(browser: httpx.AsyncClient) -> None:
    browser.cookies.set("console_session", "forged.value.here", path="/console/")
    assert (await browser.get("/console/")).status_code == 401


async def test_the_timeline_shows_changes_and_accesses_newest_first_break_glass_flagged(
    browser: httpx.AsyncClient, audit_service: FakeAudit
) -> None:
    await log_in(browser, "auditor")
    answer = await browser.post("/console/timeline", data={"patient_id": PATIENT.upper()})
    assert answer.status_code == 200, answer.text
    assert [(c.service, c.method, c.request["patient_id"]) for c in audit_service.calls] == [
        ("audit", "History", PATIENT),
        ("audit", "AccessLog", PATIENT),
    ]
    rows = re.findall(r'<tr class="([^"]*)">', answer.text)
    assert rows == ["access break-glass", "change"]  # newest first
    for shown in (
        "doc-1",
        "doc-2",
        "10.0.0.7",
        "ward-app",
        "ETREAT",
        "TREAT",
        "a" * 32,
        "OrderSigned",
        "READ GetOrder",
        "unconscious in the emergency room",
    ):
        assert shown in answer.text
    assert CANARY not in answer.text  # escaped, never markup
    assert PATIENT not in str(answer.url)


async def test_a_patient_id_that_is_no_uuid_is_refused_before_any_call(
    browser: httpx.AsyncClient, audit_service: FakeAudit
) -> None:
    await log_in(browser, "auditor")
    answer = await browser.post("/console/timeline", data={"patient_id": "Jane Doe"})
    assert answer.status_code == 400
    assert 'aria-invalid="true"' in answer.text
    assert audit_service.calls == []


async def test_verify_now_shows_success_or_the_first_bad_offset(
    browser: httpx.AsyncClient, audit_service: FakeAudit
) -> None:
    await log_in(browser, "auditor")
    ok = await browser.post("/console/integrity", data={"topic": "clinical.orders.events.v1"})
    assert 'datetime="2026-12-07T10:00:00+00:00"' in ok.text
    assert ok.status_code == 200
    assert 'id="verdict">OK' in ok.text
    audit_service.answers["Verify"] = DownstreamAnswer("OK", body={"partitions": [
        {"partition": 0, "records": "9", "first_bad_offset": "4",
         "reason": "attested hash mismatch"}]})  # fmt: skip
    bad = await browser.post("/console/integrity", data={"topic": "clinical.orders.events.v1"})
    assert 'id="verdict">FAILED' in bad.text
    assert "<td>4</td>" in bad.text
    assert "attested hash mismatch" in bad.text
    assert [c.request for c in audit_service.calls] == [{"topic": "clinical.orders.events.v1"}] * 2
    unknown = await browser.post("/console/integrity", data={"topic": "other"})
    assert unknown.status_code == 400


async def test_the_audit_services_refusal_is_shown_not_raised(
    browser: httpx.AsyncClient, audit_service: FakeAudit
) -> None:
    await log_in(browser, "auditor")
    audit_service.answers["History"] = DownstreamAnswer("UNAVAILABLE", "audit is away")
    answer = await browser.post("/console/timeline", data={"patient_id": PATIENT})
    assert answer.status_code == 503
    assert "audit is away" in answer.text


async def test_logging_out_ends_the_session(browser: httpx.AsyncClient) -> None:
    await log_in(browser, "auditor")
    assert (await browser.post("/console/logout")).status_code == 303
    assert (await browser.get("/console/")).status_code == 401


def test_a_checkpoints_age_reads_in_the_largest_units_that_fit() -> None:
    now = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)
    ages = [age_of(now - timedelta(seconds=s), now) for s in (42, 423, 18_120, 273_600)]
    assert ages == ["42 s", "7 min 3 s", "5 h 2 min", "3 d 4 h"]
    report = {"partition": 1, "ok": True, "attested_at": "2026-12-07T11:59:18Z"}
    assert partition_check("t", report, now).checkpoint_age == "42 s"
    assert partition_check("t", {"ok": True}, now).checkpoint_signed_at is None


def test_pending_logins_are_bounded_the_oldest_dropped_first() -> None:
    sessions = ConsoleSessions(secrets.token_urlsafe(32))
    first_state, first_cookie = sessions.begin_login("verifier-0")
    for n in range(MAX_PENDING_LOGINS):
        sessions.begin_login(f"verifier-{n + 1}")
    last_state, last_cookie = sessions.begin_login("verifier-last")

    assert sessions.finish_login(first_cookie, first_state) is None
    assert sessions.finish_login(last_cookie, last_state) is not None
    assert sessions.finish_login(last_cookie, last_state) is None  # once only


async def test_filters_go_to_the_audit_service_and_a_changes_actor_is_filtered_here(
    browser: httpx.AsyncClient, audit_service: FakeAudit
) -> None:
    await log_in(browser, "auditor")
    answer = await browser.post("/console/timeline", data={
        "patient_id": PATIENT, "actor": "doc-2", "since": "2026-12-07T09:00",
        "until": "2026-12-07T11:30"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    window = {"since": "2026-12-07T09:00:00Z", "until": "2026-12-07T11:30:00Z"}
    assert [c.request for c in audit_service.calls] == [
        {"patient_id": PATIENT, "recorded": window, "page_size": 1000, "page_token": ""},
        {"patient_id": PATIENT, "occurred": window, "actor_subject": "doc-2",
         "page_size": 1000, "page_token": ""},
    ]  # fmt: skip
    assert re.findall(r'<tr class="([^"]*)">', answer.text) == ["access break-glass"]
    assert 'value="2026-12-07T09:00"' in answer.text  # the form keeps what was asked

    audit_service.calls.clear()
    changes = await browser.post("/console/timeline", data={"patient_id": PATIENT,
                                                              "kind": "change"})  # fmt: skip
    assert [c.method for c in audit_service.calls] == ["History"]
    assert re.findall(r'<tr class="([^"]*)">', changes.text) == ["change"]


@pytest.mark.parametrize("bad", [
    {"actor": "<b>x</b>"}, {"kind": "everything"}, {"since": "yesterday"},
    {"since": "2026-12-07T10:00", "until": "2026-12-07T09:00"},
])  # fmt: skip
async def test_a_filter_that_cannot_be_used_is_refused_before_any_call(
    browser: httpx.AsyncClient, audit_service: FakeAudit, bad: dict[str, str]
) -> None:
    await log_in(browser, "auditor")
    answer = await browser.post("/console/timeline", data={"patient_id": PATIENT, **bad})
    assert answer.status_code == 400
    assert audit_service.calls == []
    assert "<b>x</b>" not in answer.text
