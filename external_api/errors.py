"""Every API error is JSON with a stable `code` and a human `detail`."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, JsonResponse
from drf_spectacular.utils import inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from coordination.errors import Conflict, HiveError, IdempotencyConflict, InvalidTransition, NoEligiblePool, NotFound

# Most specific first: a subclass of NotFound is a 404 whatever else it is.
_STATUSES: tuple[tuple[type[HiveError], int], ...] = (
    (NotFound, 404),
    (Conflict, 409),
    (InvalidTransition, 409),
    (IdempotencyConflict, 409),
    (NoEligiblePool, 422),
)


def http_status(error: HiveError) -> int:
    """The HTTP status of a domain error: 404, 409, 422, or 400 for any other invalid input.

    Errors of the HTTP layer itself (a webhook's rules the operator wrote wrong) carry their own.
    """
    own = getattr(error, "http_status", None)
    if isinstance(own, int):
        return own
    for kind, code in _STATUSES:
        if isinstance(error, kind):
            return code
    return 400


# The body of every error, as the OpenAPI schema describes it.
ERROR_SCHEMA = inline_serializer("Error", {"code": serializers.CharField(), "detail": serializers.CharField()})


class BadRequest(exceptions.APIException):
    """A 400 with its own stable code (`invalid_cursor`, …) for refusals no serializer makes."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "bad request"
    default_code = "bad_request"


def error_response(code: str, detail, http_status: int, **headers: str) -> Response:
    response = Response({"code": code, "detail": detail}, status=http_status)
    for name, value in headers.items():
        response[name] = value
    return response


def exception_handler(exc, context):
    if isinstance(exc, HiveError):
        return error_response(exc.code, exc.detail, http_status(exc))
    if isinstance(exc, RequestDataTooBig):
        return error_response("payload_too_large", "the request body is larger than allowed", 413)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # unexpected: the middleware turns it into a JSON 500
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"code": "invalid", "detail": _flatten(exc.detail), "fields": exc.detail}
        return response
    detail = response.data.get("detail", response.data) if isinstance(response.data, dict) else response.data
    code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        code = "not_authenticated" if isinstance(exc, exceptions.NotAuthenticated) else "authentication_failed"
        response.status_code = status.HTTP_401_UNAUTHORIZED
    response.data = {"code": str(code), "detail": str(detail)}
    return response


def _flatten(detail) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{k}: {_flatten(v)}" for k, v in detail.items())
    if isinstance(detail, list):
        return " ".join(_flatten(v) for v in detail)
    return str(detail)


def json_error(code: str, detail: str, http_status: int) -> JsonResponse:
    return JsonResponse({"code": code, "detail": detail}, status=http_status)
