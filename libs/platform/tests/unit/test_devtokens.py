"""Development tokens for `make run`: a private key kept to its owner, tokens the services trust."""

from pathlib import Path

import pytest

from clinical_platform.devtokens import ensure_dev_key, main
from clinical_platform.principals import Role
from clinical_platform.tokens import TokenVerifier

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
    verifier = TokenVerifier.from_pem(
        public_pem, issuer="clinical-platform", audience="clinical-services"
    )
    principal = verifier.verify(token)
    assert principal.subject == "dr-grey"
    assert principal.has(Role.CLINICIAN)
    assert principal.mfa
