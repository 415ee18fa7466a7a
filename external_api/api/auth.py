"""Token endpoints (simplejwt) with strict bodies and their 400/401 answers in the OpenAPI schema."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer, TokenRefreshSerializer
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from external_api.api.strict import StrictCharField, StrictSerializer
from external_api.errors import ERROR_SCHEMA

USERNAME_MAX = 150  # django.contrib.auth's User.username
PASSWORD_MAX = 4096  # hashing cost grows with length: no reason to hash a megabyte
TOKEN_MAX = 4096


class StrictTokenObtainSerializer(StrictSerializer, TokenObtainPairSerializer):
    """Username and password as strings (not coerced), and nothing else."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields[self.username_field] = StrictCharField(write_only=True, max_length=USERNAME_MAX)
        self.fields["password"] = StrictCharField(
            write_only=True, max_length=PASSWORD_MAX, trim_whitespace=False, style={"input_type": "password"}
        )


class StrictTokenRefreshSerializer(StrictSerializer, TokenRefreshSerializer):
    """A refresh token as a string, and nothing else."""

    refresh = StrictCharField(max_length=TOKEN_MAX)


LOGIN = inline_serializer(
    "Login",
    {
        "username": serializers.CharField(max_length=USERNAME_MAX),
        "password": serializers.CharField(max_length=PASSWORD_MAX),
    },
)
TOKEN_PAIR = inline_serializer("TokenPair", {"access": serializers.CharField(), "refresh": serializers.CharField()})
REFRESH = inline_serializer("Refresh", {"refresh": serializers.CharField(max_length=TOKEN_MAX)})
AUTH_ERRORS = {
    400: OpenApiResponse(ERROR_SCHEMA, description="a field is missing, of the wrong type, too long or unknown"),
    401: OpenApiResponse(ERROR_SCHEMA, description="the credentials or the refresh token are not valid"),
    429: OpenApiResponse(ERROR_SCHEMA, description="too many requests"),
}


class StrictTokenObtainView(TokenObtainPairView):
    serializer_class = StrictTokenObtainSerializer

    @extend_schema(request=LOGIN, responses={200: TOKEN_PAIR, **AUTH_ERRORS}, auth=[])
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)


class StrictTokenRefreshView(TokenRefreshView):
    serializer_class = StrictTokenRefreshSerializer

    @extend_schema(request=REFRESH, responses={200: TOKEN_PAIR, **AUTH_ERRORS}, auth=[])
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)
