from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model


def ensure_admin(username: str, password: str | None, *, reset: bool) -> str | None:
    """Create the admin user (or reset its password). Returns the password set, or None if kept."""
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    if user is not None and not reset:
        return None
    password = password or secrets.token_urlsafe(12)
    if user is None:
        User.objects.create_superuser(username=username, email="", password=password)
    else:
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password(password)
        user.save()
    return password
