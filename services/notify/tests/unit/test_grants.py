"""Subscription grants: expiry and renewal, revocation, quotas, and what full content needs."""

from __future__ import annotations

import uuid
from datetime import timedelta
from uuid import UUID

import pytest

from clinical.events.v1 import notify_events_pb2 as events
from clinical_platform.principals import Principal, Role
from notify.adapters.event_catalog import SUBSCRIPTION_EVENTS
from notify.adapters.wakeups import InProcessWakeups
from notify.application import CreateSubscription, NotifyApp
from notify.domain.errors import (
    InvalidSubscription,
    NotAnAdministrator,
    NotTheOwner,
    QuotaExceeded,
    SubscriptionExpired,
    SubscriptionRevoked,
)
from notify.domain.subscription import Content, Filter, Lapse, Owner, Subscription, Topic
from notify.grants import SubscriptionGrants
from notify.policy import (
    REVOKE_PRIVILEGE,
    Quotas,
    authorized_filter,
    decide,
    is_administrator,
)
from notify.replay import NotificationReplay

from .conftest import LIFETIME, NOW, Clock, InMemorySubscriptions, Nothing, command_context

pytestmark = pytest.mark.unit
CLINICIAN = Owner("dr-a", ("clinician",))
PATIENT = str(uuid.uuid4())
PATIENT_OWNER = Owner("pat-1", ("patient",), patient_id=PATIENT)
STREAM_ONLY = CreateSubscription(
    topics=[Topic.ORDER_SIGNED], event_filter=Filter(), content=Content.ID_ONLY, webhook_url=""
)


async def _create(app: NotifyApp, request_id: str, owner: Owner = CLINICIAN) -> UUID:
    created = await app.create(STREAM_ONLY, owner, command_context(request_id, owner.subject))
    return UUID(created.subscription.subscription_id)


def test_full_content_for_staff_names_patients_or_their_own_care_team() -> None:
    with pytest.raises(InvalidSubscription) as everyone:
        authorized_filter(CLINICIAN, Filter(), Content.FULL)
    assert [v.field for v in everyone.value.violations] == ["filter.patient_ids"]
    with pytest.raises(InvalidSubscription) as others:
        authorized_filter(CLINICIAN, Filter(orderers=("dr-b",)), Content.FULL)
    assert [v.field for v in others.value.violations] == ["filter.orderers"]

    assert authorized_filter(CLINICIAN, Filter(patient_ids=(PATIENT,)), Content.FULL)
    assert authorized_filter(CLINICIAN, Filter(orderers=("dr-a", "dr-b")), Content.FULL)
    assert authorized_filter(CLINICIAN, Filter(), Content.ID_ONLY) == Filter()
    # A patient's subscription is pinned to their own record, so full content needs nothing.
    mine = authorized_filter(PATIENT_OWNER, Filter(), Content.FULL)
    assert mine.patient_ids == (PATIENT,)


def test_a_full_content_subscription_recorded_before_the_rule_delivers_identifiers_only() -> None:
    legacy = decide(CLINICIAN, Content.FULL, PATIENT, forgotten=False, event_filter=Filter())
    assert (legacy.withheld, legacy.content) == (None, Content.ID_ONLY)


def test_quotas_depend_on_who_owns_the_subscriptions() -> None:
    quotas = Quotas()
    assert quotas.limit_for(CLINICIAN) == 20
    assert quotas.limit_for(PATIENT_OWNER) == 5


def test_only_the_revoke_privilege_makes_an_administrator() -> None:
    assert is_administrator(Principal("admin-1", privileges=frozenset({REVOKE_PRIVILEGE})))
    assert not is_administrator(Principal("dr-a", roles=frozenset({Role.CLINICIAN})))


def test_a_grant_lapses_at_expiry_and_revocation_is_final() -> None:
    subscription = Subscription.create(
        subscription_id=uuid.uuid4(), owner=CLINICIAN, topics=[Topic.ORDER_SIGNED],
        event_filter=Filter(), content=Content.ID_ONLY, webhook_url="", secret=None, at=NOW,
        lifetime=timedelta(days=1),
    )  # fmt: skip
    assert subscription.lapse(NOW + timedelta(hours=23)) is None
    assert subscription.lapse(NOW + timedelta(days=1)) is Lapse.EXPIRED

    subscription.renew(at=NOW + timedelta(hours=23), lifetime=timedelta(days=1))
    assert subscription.lapse(NOW + timedelta(days=1, hours=22)) is None
    subscription.revoke(by="admin-1", at=NOW + timedelta(days=1))
    subscription.revoke(by="admin-1", at=NOW + timedelta(days=1))  # a no-op
    assert subscription.lapse(NOW + timedelta(days=1)) is Lapse.REVOKED
    with pytest.raises(SubscriptionRevoked):
        subscription.renew(at=NOW + timedelta(days=1), lifetime=timedelta(days=1))
    names = [type(e).__name__ for e in subscription.collect_events()]
    assert names == ["SubscriptionCreated", "SubscriptionRenewed", "SubscriptionRevoked"]


def test_a_subscription_recorded_without_an_expiry_lasts_the_default_lifetime() -> None:
    recorded = events.SubscriptionCreated(
        owner=events.SubscriptionOwner(subject="dr-a", roles=["clinician"]),
        topics=["order.signed"], content="id-only",
    )  # fmt: skip
    recorded.created_at.FromDatetime(NOW)  # and no expires_at: before grants expired
    created = SUBSCRIPTION_EVENTS.from_stored(
        str(uuid.uuid4()), 1, NOW, "SubscriptionCreated", recorded.SerializeToString()
    )
    legacy = created.mutate(None)
    assert vars(legacy)["expires_at"] == NOW + timedelta(days=30)


async def test_an_owner_over_quota_is_refused_until_a_grant_lapses(
    app: NotifyApp, grants: SubscriptionGrants, clock: Clock
) -> None:
    first = await _create(app, "one")
    await _create(app, "two")
    await _create(app, "three")
    with pytest.raises(QuotaExceeded):
        await _create(app, "four")
    assert await _create(app, "three")  # a retry of a created one is no new subscription

    await grants.revoke(first, "dr-a", command_context("revoke-1"), administrator=False)
    await _create(app, "four")
    clock.now += LIFETIME
    await _create(app, "five")  # the others expired


async def test_a_patient_principal_has_the_smaller_quota(app: NotifyApp) -> None:
    await _create(app, "one", PATIENT_OWNER)
    with pytest.raises(QuotaExceeded):
        await _create(app, "two", PATIENT_OWNER)


async def test_renewal_extends_the_grant_from_now_and_not_after_it_expired(
    app: NotifyApp, grants: SubscriptionGrants, clock: Clock
) -> None:
    subscription_id = await _create(app, "one")
    clock.now += timedelta(days=29)

    renewed = await grants.renew(subscription_id, "dr-a", command_context("renew-1"))
    assert renewed.expires_at == clock.now + LIFETIME
    with pytest.raises(NotTheOwner):
        await grants.renew(subscription_id, "dr-b", command_context("renew-2", "dr-b"))

    clock.now += LIFETIME
    with pytest.raises(SubscriptionExpired):
        await grants.renew(subscription_id, "dr-a", command_context("renew-3"))
    with pytest.raises(SubscriptionExpired):
        await app.active(subscription_id, "dr-a")
    assert (await app.get(subscription_id, "dr-a")).lapse(clock.now) is Lapse.EXPIRED


async def test_revocation_by_owner_or_administrator_ends_every_read(
    app: NotifyApp, grants: SubscriptionGrants, clock: Clock, wakeups: InProcessWakeups
) -> None:
    subscription_id = await _create(app, "one")
    view = await app.active(subscription_id, "dr-a")
    with pytest.raises(NotTheOwner):
        await grants.revoke(subscription_id, "dr-b", command_context("r", "dr-b"),
                            administrator=False)  # fmt: skip

    await grants.revoke(subscription_id, "admin-1", command_context("r", "admin-1"),
                        administrator=True)  # fmt: skip

    assert wakeups.revision(str(subscription_id)) == 1  # streams and workers read it again
    with pytest.raises(SubscriptionRevoked):
        await app.active(subscription_id, "dr-a")
    replay = NotificationReplay(Nothing(), Nothing(), wakeups, clock=clock)
    revoked = await app.get(subscription_id, "dr-a")
    with pytest.raises(SubscriptionRevoked):
        await replay.notifications(revoked, since=0, limit=10)
    assert view.lapse(clock.now) is None  # a stream's old copy is read again before use


async def test_an_administrator_revokes_every_subscription_of_an_employee_who_left(
    app: NotifyApp, grants: SubscriptionGrants, subscriptions: InMemorySubscriptions
) -> None:
    for request_id in ("one", "two", "three"):
        await _create(app, request_id)
    other = await _create(app, "other", Owner("dr-b", ("clinician",)))
    with pytest.raises(NotAnAdministrator):
        await grants.revoke_owner("dr-a", "dr-b", command_context("all", "dr-b"),
                                  administrator=False)  # fmt: skip

    context = command_context("all", "admin-1")
    assert await grants.revoke_owner("dr-a", "admin-1", context, administrator=True) == 3
    assert await grants.revoke_owner("dr-a", "admin-1", context, administrator=True) == 0

    lapses = {s.owner.subject: s.lapse(NOW) for s in subscriptions.saved.values()}
    assert lapses == {"dr-a": Lapse.REVOKED, "dr-b": None}
    assert subscriptions.saved[other].revoked_at is None
