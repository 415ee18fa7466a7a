"""Domain errors. Each has a stable `code` (for API bodies and CLI exit lines) and a human detail.

They say what went wrong in the domain's terms; which HTTP status that is, is the gateway's business
(`external_api.errors.http_status`).
"""

from __future__ import annotations


class HiveError(Exception):
    code = "hive_error"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code:
            self.code = code


class Invalid(HiveError):
    code = "invalid"


class NotFound(HiveError):
    code = "not_found"


class Conflict(HiveError):
    code = "conflict"


class InvalidTask(HiveError):
    code = "invalid_task"


class NoEligiblePool(HiveError):
    code = "no_eligible_pool"


class TaskNotFound(NotFound):
    pass


class InvalidTransition(HiveError):
    code = "invalid_state"


class IdempotencyConflict(HiveError):
    code = "idempotency_conflict"


class InvalidSession(HiveError):
    """A session plan that cannot run as given (a cycle, an unknown dependency, too many steps, a step
    no pool can run, a bad step spec). The detail names the step and the reason."""

    code = "invalid_session"


class SessionNotFound(NotFound):
    pass
