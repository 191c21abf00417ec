"""The RPCs the CLI calls: each one's gRPC method and, when the gateway routes it, its HTTP route
(`gateway/entrypoints/routes.py`; match, link, forget and notify are reached with ``--direct``)."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import Message

from clinical.notify.v1 import notify_pb2
from clinical.orders.v1 import orders_pb2
from clinical.patient.v1 import patient_pb2
from clinical.results.v1 import results_pb2


@dataclass(frozen=True)
class Rpc:
    service: str  # the profile's address key: patient, orders, results, notify
    grpc_service: str
    method: str
    request_type: type[Message]
    response_type: type[Message]
    http_method: str | None = None
    http_path: str | None = None  # with {field} placeholders filled from the request

    @property
    def grpc_path(self) -> str:
        return f"/{self.grpc_service}/{self.method}"


def _patient(method: str, http_method: str | None = None, path: str | None = None) -> Rpc:
    return Rpc("patient", "clinical.patient.v1.PatientService", method,
               getattr(patient_pb2, f"{method}Request"), getattr(patient_pb2, f"{method}Response"),
               http_method, path)  # fmt: skip


def _orders(method: str, http_method: str, path: str) -> Rpc:
    return Rpc("orders", "clinical.orders.v1.OrderService", method,
               getattr(orders_pb2, f"{method}Request"), getattr(orders_pb2, f"{method}Response"),
               http_method, path)  # fmt: skip


def _results(method: str, http_method: str, path: str) -> Rpc:
    return Rpc("results", "clinical.results.v1.ResultService", method,
               getattr(results_pb2, f"{method}Request"),
               getattr(results_pb2, f"{method}Response"), http_method, path)  # fmt: skip


REGISTER_PATIENT = _patient("RegisterPatient", "POST", "/api/v1/patients")
GET_PATIENT = _patient("GetPatient", "GET", "/api/v1/patients/{patient_id}")
SEARCH_PATIENTS = _patient("SearchPatients", "GET", "/api/v1/patients")
FIND_MATCHES = _patient("FindMatches")
LINK_PATIENTS = _patient("LinkPatients")
FORGET_PATIENT = _patient("ForgetPatient")

PLACE_ORDER = _orders("PlaceOrder", "POST", "/api/v1/orders")
SIGN_ORDER = _orders("SignOrder", "POST", "/api/v1/orders/{order_id}/sign")
CANCEL_ORDER = _orders("CancelOrder", "POST", "/api/v1/orders/{order_id}/cancel")
GET_ORDER = _orders("GetOrder", "GET", "/api/v1/orders/{order_id}")

POST_RESULT = _results("PostResult", "POST", "/api/v1/results")
AMEND_RESULT = _results("AmendResult", "POST", "/api/v1/results/{result_id}/amend")
GET_RESULT = _results("GetResult", "GET", "/api/v1/results/{result_id}")

CREATE_SUBSCRIPTION = Rpc("notify", "clinical.notify.v1.NotifyService", "CreateSubscription",
                          notify_pb2.CreateSubscriptionRequest,
                          notify_pb2.CreateSubscriptionResponse)  # fmt: skip
SUBSCRIBE = Rpc("notify", "clinical.notify.v1.NotifyService", "Subscribe",
                notify_pb2.SubscribeRequest, notify_pb2.SubscribeResponse)  # fmt: skip
