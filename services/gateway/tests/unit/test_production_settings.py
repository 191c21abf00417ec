"""The gateway's own production-mode refusal, and the audiences it mints by default."""

import pytest

from clinical_platform.settings import load_settings
from gateway.settings import GatewaySettings

pytestmark = pytest.mark.unit


def test_an_identity_provider_over_plain_http_is_refused_in_production() -> None:
    local = load_settings(GatewaySettings, oidc_issuer="http://127.0.0.1:18180/realms/clinical")
    hosted = load_settings(GatewaySettings, oidc_issuer="https://login.example.org/realms/c")

    assert local.production_refusals() == [
        "GATEWAY_OIDC_ISSUER: not https; its signing keys could be swapped on the way"
    ]
    assert hosted.production_refusals() == []


def test_each_downstream_service_gets_its_own_audience() -> None:
    assert load_settings(GatewaySettings).audiences() == {
        "patient": "clinical-patient", "orders": "clinical-orders",
        "results": "clinical-results", "audit": "clinical-audit",
        "notify": "clinical-notify",
    }  # fmt: skip
