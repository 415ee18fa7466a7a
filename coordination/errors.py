"""Domain errors. Each has a stable `code` (for API bodies and CLI exit lines) and a human detail."""

from __future__ import annotations


class HiveError(Exception):
    code = "hive_error"
    status = 400

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code:
            self.code = code


class Invalid(HiveError):
    code = "invalid"


class NotFound(HiveError):
    code = "not_found"
    status = 404


class Conflict(HiveError):
    code = "conflict"
    status = 409


class InvalidTask(HiveError):
    code = "invalid_task"


class NoEligiblePool(HiveError):
    code = "no_eligible_pool"
    status = 422


class TaskNotFound(NotFound):
    pass


class InvalidTransition(HiveError):
    code = "invalid_state"
    status = 409


class IdempotencyConflict(HiveError):
    code = "idempotency_conflict"
    status = 409
