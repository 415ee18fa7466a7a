"""Every gateway endpoint needs a caller; reads need the `read` scope, changes `write`, and
operator actions (`required_scope = "admin"` on the view) `admin`."""

from __future__ import annotations

from rest_framework import permissions

from external_api.access import READ, WRITE, caller_of


class ScopedAccess(permissions.BasePermission):
    message = "this credential lacks the scope for this action"

    def has_permission(self, request, view) -> bool:
        if getattr(view, "public", False):
            return True
        if request.user is None or not request.user.is_authenticated:
            return False
        scope = getattr(view, "required_scope", None) or (READ if request.method in permissions.SAFE_METHODS else WRITE)
        return caller_of(request).allows(scope)
