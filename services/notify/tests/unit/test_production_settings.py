"""Notify's own production-mode refusal: webhooks over plain http."""

import pytest

from clinical_platform.settings import load_settings
from notify.settings import NotifySettings

pytestmark = pytest.mark.unit


def test_plain_http_webhooks_are_refused_in_production_only_when_allowed() -> None:
    allowed = load_settings(NotifySettings, webhook_allow_http=True)
    https_only = load_settings(NotifySettings, webhook_allow_http=False)

    assert allowed.production_refusals() == [
        "NOTIFY_WEBHOOK_ALLOW_HTTP: webhooks would carry PHI over plain http"
    ]
    assert https_only.production_refusals() == []
