"""What a consumer does when handling a record fails: the one classification every consumer of
the platform uses (projections, notify's matcher, the forgetting projections).

* **Transient**: the record is fine, something it needs is away or refusing for now — MongoDB
  unreachable, timing out, stepping down, or refusing our credentials after a rotation; Vault
  unreachable or sealed. Retry the same record with backoff; never skip it, so a read model is
  never silently emptied. Each retry counts in ``clinical_consumer_transient_failures_total``,
  which the alert rules watch.
* **Poison**: anything else — an undecodable payload, a forged or tampered event, a record the
  read model refuses. Retrying cannot help: set it aside on the dead-letter topic with the
  reason and go on.

An event that forgets a patient is never poison for its consumers: they retry it until its
marker is written (`retry_forever`), since skipping it would keep PHI that must go.
"""

from __future__ import annotations

from prometheus_client import Counter
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from clinical_platform.observability.metrics import REGISTRY
from clinical_platform.security.errors import KeyServiceUnavailableError

# MongoDB server error codes that say "not now" rather than "never": authentication and
# authorization (credentials rotated or a role briefly missing), time limits, elections,
# shutdowns and interrupted operations.
_TRANSIENT_CODES = frozenset(
    {
        6,  # HostUnreachable
        7,  # HostNotFound
        13,  # Unauthorized
        18,  # AuthenticationFailed
        50,  # MaxTimeMSExpired
        89,  # NetworkTimeout
        91,  # ShutdownInProgress
        189,  # PrimarySteppedDown
        262,  # ExceededTimeLimit
        9001,  # SocketException
        10107,  # NotWritablePrimary
        11600,  # InterruptedAtShutdown
        11602,  # InterruptedDueToReplStateChange
        13435,  # NotPrimaryNoSecondaryOk
        13436,  # NotPrimaryOrSecondary
    }
)
_RETRYABLE_LABELS = (
    "RetryableWriteError",
    "TransientTransactionError",
    "ResumableChangeStreamError",
)

TRANSIENT_FAILURES = Counter(
    "clinical_consumer_transient_failures",
    "Records whose handling failed for a reason that passes (MongoDB or Vault away, timing "
    "out or refusing credentials) and is being retried, by consumer and error class.",
    ["consumer", "error"],
    registry=REGISTRY,
)


def is_transient(error: BaseException) -> bool:
    """True when retrying the same record later can succeed; False for poison."""
    if isinstance(error, ConnectionFailure | KeyServiceUnavailableError | TimeoutError):
        return True
    if isinstance(error, OperationFailure):
        return error.code in _TRANSIENT_CODES or any(map(error.has_error_label, _RETRYABLE_LABELS))
    if isinstance(error, PyMongoError):
        return any(map(error.has_error_label, _RETRYABLE_LABELS))
    return False


def count_transient(consumer: str, error: BaseException) -> None:
    """Count one retry of ``consumer`` (a bounded name: a consumer group or a service part)."""
    TRANSIENT_FAILURES.labels(consumer=consumer, error=type(error).__name__).inc()
