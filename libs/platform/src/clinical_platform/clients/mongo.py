"""MongoDB client factory for read models (pymongo's native asyncio client)."""

from typing import Any

from pymongo import AsyncMongoClient

from clinical_platform.settings import BaseServiceSettings

MongoDocument = dict[str, Any]

_SERVER_SELECTION_TIMEOUT_MS = 5_000
_CONNECT_TIMEOUT_MS = 5_000


def build_mongo_client(
    settings: BaseServiceSettings, **overrides: Any
) -> AsyncMongoClient[MongoDocument]:
    """Return a client for MONGODB_URL; it connects lazily on the first operation."""
    options: dict[str, Any] = {
        # Clinical timestamps are instants: read them back as aware UTC datetimes, never naive.
        "tz_aware": True,
        # Store uuid.UUID as the portable binary subtype 4, not the legacy Python encoding.
        "uuidRepresentation": "standard",
        # Fail a request in seconds when the database is gone, not after the 30 s default.
        "serverSelectionTimeoutMS": _SERVER_SELECTION_TIMEOUT_MS,
        "connectTimeoutMS": _CONNECT_TIMEOUT_MS,
    }
    return AsyncMongoClient(settings.mongodb_url, **(options | overrides))
