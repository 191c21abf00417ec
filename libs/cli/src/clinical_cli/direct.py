"""Calls straight to a service's gRPC port (``--direct``) with a token that service trusts."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

# Neither package marks itself typed (google.rpc ships .pyi files but no py.typed marker).
from google.rpc import error_details_pb2  # type: ignore[import-untyped]
from grpc_status import rpc_status  # type: ignore[import-untyped]

from clinical_cli.api import Json
from clinical_cli.errors import CommandError, FieldViolation, UsageError
from clinical_cli.rpcs import Rpc


class DirectApi:
    """`PlatformApi` on the services' gRPC ports (plaintext: local services only)."""

    def __init__(self, addresses: Mapping[str, str], token: str, *, timeout_s: float = 30.0):
        self._addresses = dict(addresses)
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._timeout_s = timeout_s
        self._channels: dict[str, grpc.Channel] = {}

    def call(self, rpc: Rpc, request: Json) -> Json:
        method = self._channel(rpc).unary_unary(
            rpc.grpc_path, request_serializer=_serialize,
            response_deserializer=rpc.response_type.FromString,
        )  # fmt: skip
        try:
            response = method(_parse(rpc, request), metadata=self._metadata,
                              timeout=self._timeout_s)  # fmt: skip
        except grpc.RpcError as error:
            raise _failure(error, self._addresses[rpc.service]) from None
        return _as_json(response)

    def stream(self, rpc: Rpc, request: Json) -> Iterator[Json]:
        method = self._channel(rpc).unary_stream(
            rpc.grpc_path, request_serializer=_serialize,
            response_deserializer=rpc.response_type.FromString,
        )  # fmt: skip
        try:
            for response in method(_parse(rpc, request), metadata=self._metadata):
                yield _as_json(response)
        except grpc.RpcError as error:
            raise _failure(error, self._addresses[rpc.service]) from None

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()

    def _channel(self, rpc: Rpc) -> grpc.Channel:
        if rpc.service not in self._channels:
            address = self._addresses.get(rpc.service)
            if not address:
                msg = f"the profile has no address for the {rpc.service} service"
                raise UsageError(msg)
            self._channels[rpc.service] = grpc.insecure_channel(address)
        return self._channels[rpc.service]


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _parse(rpc: Rpc, request: Json) -> Message:
    try:
        return json_format.ParseDict(request, rpc.request_type())
    except json_format.ParseError as error:
        # The parser's message quotes the value; name the field only.
        raise UsageError(f"{rpc.method}: a field has the wrong type or name") from error


def _as_json(message: Message) -> Json:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _failure(error: grpc.RpcError, address: str) -> CommandError:
    code: grpc.StatusCode = error.code()
    message = str(error.details() or "")
    if code is grpc.StatusCode.UNAVAILABLE and not message.strip():
        message = f"cannot reach {address}"
    return CommandError(code.name, message, _violations(error))


def _violations(error: Any) -> list[FieldViolation]:
    status = rpc_status.from_call(error)
    if status is None:
        return []
    violations: list[FieldViolation] = []
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            violations += [FieldViolation(v.field, v.description)
                           for v in bad_request.field_violations]  # fmt: skip
    return violations
