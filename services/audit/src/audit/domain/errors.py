"""What a reviewer can ask that the trail cannot answer."""


class AuditQueryError(Exception):
    """Base of the audit service's refusals; messages name no request values."""


class NotAnEventTopic(AuditQueryError):  # noqa: N818 - a state of the request, named as such
    """Only event topics are verified (by the service's event topic pattern)."""


class UnknownTopic(AuditQueryError):  # noqa: N818
    """There is no such topic on the broker."""


class PartitionOutOfRange(AuditQueryError):  # noqa: N818
    def __init__(self, partitions: list[int], count: int) -> None:
        super().__init__(f"the topic has partitions 0 to {count - 1}")
        self.partitions = partitions
        self.count = count
