"""The port the commands call: one request in protobuf's JSON mapping, one answer back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from clinical_cli.rpcs import Rpc

Json = dict[str, Any]


class PlatformApi(Protocol):
    def call(self, rpc: Rpc, request: Json) -> Json:
        """The answer to ``request``; raises `CommandError` when refused or unreachable."""
        ...

    def stream(self, rpc: Rpc, request: Json) -> Iterator[Json]:
        """The answers of a server stream, as they arrive."""
        ...

    def close(self) -> None:
        """Close the connections (the command is done)."""
        ...
