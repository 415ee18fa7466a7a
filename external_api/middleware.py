"""JSON, never an HTML page or a traceback, for API and webhook errors, and body size caps that
answer 413 before the body is read."""

from __future__ import annotations

import functools
import logging
import re

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import Counter

from external_api.errors import json_error

log = logging.getLogger(__name__)

API_REQUESTS = Counter("hive_api_requests_total", "Requests to the API and webhooks", ["method", "route", "status"])

JSON_PREFIXES = ("/api/", "/webhooks/")
STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    429: "throttled",
    500: "server_error",
}


def route_label(match) -> str:
    """`api/v1/tasks/{id}/cancel/` for a resolved URL: few distinct values, no ids."""
    if match is None:
        return "unmatched"
    return _label_of(match.route)


@functools.lru_cache(maxsize=512)  # the routes are the URLconf's patterns: a few dozen
def _label_of(route: str) -> str:
    return re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", route).replace("^", "").replace("$", "")


class JsonErrorsMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(JSON_PREFIXES):
            return self.get_response(request)
        api = settings.HIVE_CONFIG.external_api
        if request.path.startswith("/api/") and not (api.enabled and api.api_gateway.enabled):
            return json_error("not_found", "the API gateway is turned off (external_api.api_gateway.enabled)", 404)
        limit = (
            settings.WEBHOOK_MAX_BYTES
            if request.path.startswith("/webhooks/")
            else settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        )
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return json_error("bad_request", "Content-Length is not a number", 400)
        if length > limit:
            return json_error("payload_too_large", f"the request body is larger than {limit} bytes", 413)
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        API_REQUESTS.labels(method=request.method, route=route_label(match), status=str(response.status_code)).inc()
        content_type = response.get("Content-Type", "")
        if response.status_code >= 400 and not content_type.startswith("application/json"):
            code = STATUS_CODES.get(response.status_code, "error")
            return json_error(code, response.reason_phrase or code.replace("_", " "), response.status_code)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith(JSON_PREFIXES):
            return None
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_error("server_error", "the server failed to handle this request", 500)
