"""Domain errors of campaigns and the store, one small hierarchy.

The HTTP layer maps them with one handler: ``NotFound`` -> 404, ``InvalidTransition`` and
``Conflict`` -> 409, ``ValidationError`` / ``BadRequest`` / ``NotActive`` -> 400,
``CapacityExceeded`` -> 429. Each carries ``error`` (the short title of the documented JSON error
shape) and a human ``message``; ``to_body()`` gives that shape so every caller words it the same.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every campaign/store error the API turns into a JSON error body."""

    error = "Bad Request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_body(self) -> dict[str, Any]:
        """The documented error shape: ``{"error": ..., "message": ...}`` plus extras."""
        return {"error": self.error, "message": self.message}


class NotFound(DomainError):
    error = "Not Found"


class BadRequest(DomainError):
    """Input that is well-formed but not acceptable (limits, bulk vs transactional)."""


class ValidationError(DomainError):
    """Field-level validation failures: ``errors`` maps a field name to its message."""

    def __init__(self, errors: dict[str, str], message: str = "Validation failed") -> None:
        super().__init__(message)
        self.errors = dict(errors)

    def to_body(self) -> dict[str, Any]:
        body = super().to_body()
        body["validationErrors"] = dict(self.errors)
        return body


class InvalidTransition(DomainError):
    """An action the lifecycle forbids from the campaign's current status (HTTP 409)."""

    error = "Conflict"

    def __init__(self, action: str, status: str, archived: bool = False) -> None:
        where = f"{status} (archived)" if archived else status
        super().__init__(f"Cannot {action} a campaign in status {where}")
        self.action = action
        self.status = status
        self.archived = archived


class Conflict(DomainError):
    """A concurrent writer changed the row first (compare-and-set lost); retry after a re-read."""

    error = "Conflict"


class NotActive(DomainError):
    """Messages may only be added to an active campaign; the message names its status."""

    error = "Campaign is not active"

    def __init__(self, status: str) -> None:
        super().__init__(
            f"Campaign status is {status}. Messages can only be added to active campaigns "
            "(Pending, Building, Sending, Paused).")
        self.status = status


class CapacityExceeded(DomainError):
    """The pending-capacity guard refused a request (HTTP 429, shape of seeds/001)."""

    error = "Rate limit exceeded"

    def __init__(self, current_pending: int, requested_count: int, max_allowed: int,
                 retry_after_s: int) -> None:
        self.current_pending = current_pending
        self.requested_count = requested_count
        self.max_allowed = max_allowed
        self.available_capacity = max(0, max_allowed - current_pending)
        self.retry_after_s = retry_after_s
        super().__init__(
            f"Too many pending messages. You have {current_pending} pending messages and "
            f"requested {requested_count} more. Maximum allowed: {max_allowed}. "
            f"Available capacity: {self.available_capacity}.")

    def to_body(self) -> dict[str, Any]:
        body = super().to_body()
        body.update(currentPending=self.current_pending, requestedCount=self.requested_count,
                    maxAllowed=self.max_allowed, availableCapacity=self.available_capacity,
                    retryAfterSeconds=self.retry_after_s)
        return body
