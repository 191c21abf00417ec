"""Vault's latency and errors per operation, and the data-key cache's hit rate.

An operation is the first two segments of the request's path (``transit/encrypt``,
``clinical-keys/data``, ``sys/health``): a mount and an API verb, never a key name or a path
that names a patient.
"""

from __future__ import annotations

import time
from typing import Any

from hvac.adapters import JSONAdapter
from hvac.exceptions import InvalidPath

from clinical_platform.observability.metrics import DATA_KEY_CACHE, VAULT_DURATION, VAULT_ERRORS


def vault_operation(url: str) -> str:
    """``/v1/transit/encrypt/clinical-phi`` -> ``transit/encrypt``."""
    segments = [part for part in url.split("?", 1)[0].split("/") if part]
    if segments[:1] == ["v1"]:
        segments = segments[1:]
    return "/".join(segments[:2]) or "other"


class MeasuredVaultAdapter(JSONAdapter):
    """hvac's JSON adapter, timing each request and counting the failed ones."""

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        operation = vault_operation(url)
        started = time.perf_counter()
        try:
            return super().request(method, url, *args, **kwargs)
        except InvalidPath:
            raise  # a 404 is an answer (no such key yet), not a failure of Vault
        except Exception:
            VAULT_ERRORS.labels(operation).inc()
            raise
        finally:
            VAULT_DURATION.labels(operation).observe(time.perf_counter() - started)


def data_key_lookup(*, hit: bool) -> None:
    """Count one lookup of a patient's data key in the in-memory cache."""
    DATA_KEY_CACHE.labels("hit" if hit else "miss").inc()
