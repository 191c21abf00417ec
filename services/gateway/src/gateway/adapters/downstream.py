"""Calls the internal services over gRPC, JSON-shaped values in and out (protobuf's JSON mapping).

Commands go to the replica that owns the aggregate's partition. A replica that does not own it
answers UNAVAILABLE with the owner in the ``x-partition-owner`` trailer: we retry once there, so
callers never see an ownership miss.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2  # type: ignore[import-untyped]
from grpc_status import rpc_status  # type: ignore[import-untyped]

from clinical.audit.v1 import audit_pb2
from clinical.notify.v1 import notify_pb2
from clinical.orders.v1 import orders_pb2
from clinical.patient.v1 import patient_pb2
from clinical.results.v1 import results_pb2
from clinical_platform.grpc_context import SOURCE_IP_HEADER, USER_AGENT_HEADER
from clinical_platform.grpc_errors import PARTITION_OWNER_METADATA_KEY
from clinical_platform.grpc_tls import TlsFiles, open_channel
from gateway.domain.origin import current_origin
from gateway.ports import DownstreamAnswer, DownstreamCall, StreamEndedError

SERVICES: Mapping[str, ServiceDescriptor] = {
    "patient": patient_pb2.DESCRIPTOR.services_by_name["PatientService"],
    "orders": orders_pb2.DESCRIPTOR.services_by_name["OrderService"],
    "results": results_pb2.DESCRIPTOR.services_by_name["ResultService"],
    "audit": audit_pb2.DESCRIPTOR.services_by_name["AuditService"],
    "notify": notify_pb2.DESCRIPTOR.services_by_name["NotifyService"],
}


class InvalidRequestBodyError(Exception):
    """The request's values do not fit the RPC's message; the message names the problem."""


class GrpcDownstream:
    """One channel per address, opened on first use; closed by `close`."""

    def __init__(
        self, addresses: Mapping[str, str], *, timeout_s: float = 10.0, tls: TlsFiles | None = None
    ) -> None:
        self._addresses = dict(addresses)
        self._tls = tls
        self._timeout_s = timeout_s
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._rpcs: dict[tuple[str, str], grpc.aio.UnaryUnaryMultiCallable[Any, Any]] = {}
        self.owner_retries = 0

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        self._rpcs.clear()

    async def call(self, call: DownstreamCall, token: str) -> DownstreamAnswer:
        request, response_class, path, metadata = _prepared(call, token)
        address = self._addresses[call.service]
        for attempt in range(2):
            rpc = self._rpc(address, path, response_class)
            try:
                response = await rpc(request, metadata=metadata, timeout=self._timeout_s)
            except grpc.aio.AioRpcError as failed:
                owner = _owner(failed)
                if attempt == 0 and owner and owner != address:
                    self.owner_retries += 1
                    address = owner
                    continue
                return _answer_for(failed)
            body = json_format.MessageToDict(response, preserving_proto_field_name=True)
            return DownstreamAnswer(status="OK", body=body)
        raise AssertionError("unreachable: the loop returns")  # pragma: no cover

    async def stream(self, call: DownstreamCall, token: str) -> AsyncIterator[Mapping[str, Any]]:
        """A server stream's messages as JSON-shaped values; StreamEndedError on its error."""
        request, response_class, path, metadata = _prepared(call, token)
        address = self._addresses[call.service]
        if address not in self._channels:
            self._channels[address] = open_channel(address, self._tls)
        rpc = self._channels[address].unary_stream(
            path, request_serializer=_serialize, response_deserializer=response_class.FromString
        )
        try:
            async for response in rpc(request, metadata=metadata):
                yield json_format.MessageToDict(response, preserving_proto_field_name=True)
        except grpc.aio.AioRpcError as failed:
            raise StreamEndedError(failed.code().name) from None

    def _rpc(
        self, address: str, path: str, response_class: type[Message]
    ) -> grpc.aio.UnaryUnaryMultiCallable[Any, Any]:
        if (address, path) not in self._rpcs:
            if address not in self._channels:
                # Mutual TLS with the gateway's certificate when configured (GATEWAY_GRPC_TLS_*).
                self._channels[address] = open_channel(address, self._tls)
            self._rpcs[address, path] = self._channels[address].unary_unary(
                path,
                request_serializer=_serialize,
                response_deserializer=response_class.FromString,
            )
        return self._rpcs[address, path]


def _prepared(
    call: DownstreamCall, token: str
) -> tuple[Message, type[Message], str, list[tuple[str, str]]]:
    """The RPC's request message, its response class, its path and the call's metadata;
    InvalidRequestBodyError when the values do not fit the request."""
    method = SERVICES[call.service].methods_by_name[call.method]
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    try:
        request = json_format.ParseDict(dict(call.request), request_class())
    except json_format.ParseError as bad:
        raise InvalidRequestBodyError(_parse_problem(bad)) from None
    path = f"/{method.containing_service.full_name}/{method.name}"
    # Trace context goes on by the gRPC client instrumentation, from the current span.
    metadata = [("authorization", f"Bearer {token}")]
    if call.request_id:
        metadata.append(("x-request-id", call.request_id))
    return request, response_class, path, metadata + _origin_metadata()


def _origin_metadata() -> list[tuple[str, str]]:
    """The end user's address and user agent, from the request being served (the edge set
    them): the call's own peer and user-agent are the gateway's. Without a request, none."""
    origin = current_origin.get()
    if origin is None:
        return []
    forwarded = [(SOURCE_IP_HEADER, origin.source_ip)] if origin.source_ip else []
    # Metadata values are ASCII: a user agent with other characters goes without them.
    agent = origin.user_agent.encode("ascii", "ignore").decode("ascii")
    return [*forwarded, (USER_AGENT_HEADER, agent)]


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _owner(failed: grpc.aio.AioRpcError) -> str:
    if failed.code() != grpc.StatusCode.UNAVAILABLE:
        return ""
    for key, value in failed.trailing_metadata() or ():
        if key == PARTITION_OWNER_METADATA_KEY:
            return str(value)
    return ""


def _answer_for(failed: grpc.aio.AioRpcError) -> DownstreamAnswer:
    violations: list[dict[str, str]] = []
    status = rpc_status.from_call(failed)
    for detail in status.details if status is not None else ():
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            violations += [
                {"field": v.field, "description": v.description}
                for v in bad_request.field_violations
            ]
    return DownstreamAnswer(
        status=failed.code().name, message=failed.details() or "", violations=tuple(violations)
    )


def _parse_problem(bad: json_format.ParseError) -> str:
    # The parser's message can quote the offending value: keep only where it is.
    text = str(bad)
    return text.split(":", 1)[0] if ":" in text else "the request body does not fit the operation"
