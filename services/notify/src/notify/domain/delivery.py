"""A webhook subscription's delivery progress, and how each attempt's outcome changes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from notify.domain.backoff import RetrySchedule


class DeliveryState:
    """Values of ``Delivery.state`` (plain strings, as stored)."""

    ACTIVE = "active"
    ERROR = "error"  # retrying
    OFF = "off"  # retries ran out, until Resend


@dataclass
class Delivery:
    """Cursor, state, counters, dead letters and the resend queue of one webhook."""

    cursor: int = 0
    state: str = DeliveryState.ACTIVE
    delivered: int = 0
    failed_attempts: int = 0
    dead_lettered: int = 0
    dead_letters: list[int] = field(default_factory=list)
    resend: list[int] = field(default_factory=list)
    attempts: int = 0  # failed attempts of the notification now at the head
    first_failure_at: datetime | None = None
    next_attempt_at: datetime | None = None
    last_error: str = ""
    last_error_at: datetime | None = None
    last_success_at: datetime | None = None

    def next_target(self) -> int | None:
        """Resends first; then the notification after the cursor, unless the webhook is off."""
        if self.resend:
            return min(self.resend)
        if self.state == DeliveryState.OFF:
            return None
        return self.cursor + 1

    def succeeded(self, sequence: int, at: datetime) -> None:
        """The endpoint accepted notification ``sequence``."""
        if sequence in self.resend:
            self.resend.remove(sequence)
        elif sequence == self.cursor + 1:
            self.cursor = sequence
        self.delivered += 1
        self.state = DeliveryState.ACTIVE
        self.attempts, self.first_failure_at, self.next_attempt_at = 0, None, None
        self.last_success_at = at

    def failed(self, sequence: int, error: str, at: datetime, schedule: RetrySchedule) -> bool:
        """The endpoint refused notification ``sequence``: retry later, or (True) give it up
        into the dead letters and turn the webhook off."""
        self.failed_attempts += 1
        self.attempts += 1
        self.first_failure_at = self.first_failure_at or at
        self.last_error, self.last_error_at = error, at
        retry_at = schedule.next_attempt(self.attempts, self.first_failure_at, at)
        if retry_at is None:
            self.dead_lettered += 1
            self.state = DeliveryState.OFF
            self.attempts, self.first_failure_at, self.next_attempt_at = 0, None, None
            if sequence in self.resend:
                self.resend.remove(sequence)
            self.dead_letters.append(sequence)
            return True
        self.state = DeliveryState.ERROR
        self.next_attempt_at = retry_at
        return False
