"""Development tokens for `make run`: a private key kept to its owner, tokens the services trust."""

from pathlib import Path

import pytest

from clinical_platform.audiences import PLATFORM_SERVICES, service_audience
from clinical_platform.devtokens import ensure_dev_key, main
from clinical_platform.principals import Role
from clinical_platform.tokens import AuthenticationError, TokenVerifier

pytestmark = pytest.mark.unit


def test_the_dev_key_is_created_once_and_readable_only_by_its_owner(tmp_path: Path) -> None:
    first = ensure_dev_key(tmp_path)
    second = ensure_dev_key(tmp_path)

    assert first == second
    assert (tmp_path / "private.pem").stat().st_mode & 0o077 == 0


def test_a_minted_dev_token_verifies_with_the_public_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    public_pem = ensure_dev_key(tmp_path)
    args = ["--key-dir", str(tmp_path), "--subject", "dr-grey", "--role", "clinician", "--mfa"]

    assert main(args) == 0
    token = capsys.readouterr().out.strip()
    for service in PLATFORM_SERVICES:
        verifier = TokenVerifier.from_pem(
            public_pem, issuer="clinical-platform", audience=service_audience(service)
        )
        principal = verifier.verify(token)
        assert principal.subject == "dr-grey"
        assert principal.has(Role.CLINICIAN)
        assert principal.mfa


def test_a_dev_token_for_one_service_is_refused_by_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    public_pem = ensure_dev_key(tmp_path)

    assert main(["--key-dir", str(tmp_path), "--service", "orders"]) == 0
    token = capsys.readouterr().out.strip()

    def verifier(service: str) -> TokenVerifier:
        return TokenVerifier.from_pem(
            public_pem, issuer="clinical-platform", audience=service_audience(service)
        )

    assert verifier("orders").verify(token).subject == "dev-user"
    with pytest.raises(AuthenticationError, match="not issued for this service"):
        verifier("patient").verify(token)
