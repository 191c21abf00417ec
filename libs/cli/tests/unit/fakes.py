"""A fake of the CLI's one port, and a runner that hands it to the commands."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from typer.testing import CliRunner, Result

from clinical_cli.api import Json
from clinical_cli.app import app
from clinical_cli.errors import CommandError
from clinical_cli.rpcs import Rpc
from clinical_cli.session import Session, Wiring


@dataclass
class FakePlatform:
    """Answers each RPC by method name; an exception as the answer is raised."""

    answers: dict[str, Json | CommandError] = field(default_factory=dict)
    streams: dict[str, list[Json | CommandError]] = field(default_factory=dict)
    calls: list[tuple[str, Json]] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    closed: bool = False

    def call(self, rpc: Rpc, request: Json) -> Json:
        self.calls.append((rpc.method, request))
        answer = self.answers.get(rpc.method, {})
        if isinstance(answer, CommandError):
            raise answer
        return answer

    def stream(self, rpc: Rpc, request: Json) -> Iterator[Json]:
        self.calls.append((rpc.method, request))
        for item in self.streams.get(rpc.method, []):
            if isinstance(item, CommandError):
                raise item
            yield item

    def close(self) -> None:
        self.closed = True

    def connect(self, session: Session, token: str) -> FakePlatform:
        self.tokens.append(token)
        return self


def invoke(platform: FakePlatform, args: Sequence[str], **kwargs: Any) -> Result:
    """Run ``clinical <args>`` against the fake, stdout and stderr kept apart."""
    runner = CliRunner()
    return runner.invoke(app, list(args), obj=Wiring(api=platform.connect), **kwargs)
