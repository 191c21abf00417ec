"""Observations in read-model documents: from event payloads, and back to domain values.

Decimals are stored as strings, exactly as recorded (FerretDB has no decimal type to rely on)::

    {code, display, quantity: {value, unit} | None, coded: {system, code, display} | None,
     text: str | None, reference_range: {low, high} | None, interpretation: str | None}
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from clinical.events.v1 import results_events_pb2 as events
from results.domain.observation import Coding, Interpretation, Observation, Quantity, ReferenceRange

Document = dict[str, Any]


def observation_document(observation: events.ResultObservation) -> Document:
    """A payload's observation as a document."""
    value = observation.WhichOneof("value")
    quantity, coded = observation.quantity, observation.coded
    limits = observation.reference_range
    return {
        "code": observation.code,
        "display": observation.display,
        "quantity": {"value": quantity.value, "unit": quantity.unit}
        if value == "quantity"
        else None,
        "coded": {"system": coded.system, "code": coded.code, "display": coded.display}
        if value == "coded"
        else None,
        "text": observation.text if value == "text" else None,
        "reference_range": {
            "low": limits.low if limits.HasField("low") else None,
            "high": limits.high if limits.HasField("high") else None,
        }
        if observation.HasField("reference_range")
        else None,
        "interpretation": observation.interpretation
        if observation.HasField("interpretation")
        else None,
    }


def observation_from_document(document: Document) -> Observation:
    """A document's observation as the domain value."""
    quantity, coded, limits = document["quantity"], document["coded"], document["reference_range"]
    interpretation = document["interpretation"]
    return Observation(
        code=document["code"],
        display=document["display"],
        quantity=Quantity(Decimal(quantity["value"]), quantity["unit"]) if quantity else None,
        coded=Coding(**coded) if coded else None,
        text=document["text"],
        reference_range=ReferenceRange(_decimal(limits["low"]), _decimal(limits["high"]))
        if limits
        else None,
        interpretation=Interpretation(interpretation) if interpretation else None,
    )


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)
