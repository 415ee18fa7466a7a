"""A plain ModelViewSet: serializer with explicit fields, limit/offset pagination (with its
COUNT), a filter on one column, the hive's API key authentication, IsAuthenticated."""

from __future__ import annotations

from rest_framework import permissions, serializers, viewsets
from rest_framework.pagination import LimitOffsetPagination

from bench.peer.models import Note
from external_api.authentication import ApiKeyAuthentication


class NoteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Note
        fields = ["id", "title", "body", "status", "created_at"]
        read_only_fields = ["id", "created_at"]


class NoteViewSet(viewsets.ModelViewSet):
    serializer_class = NoteSerializer
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [permissions.IsAuthenticated]
    pagination_class = LimitOffsetPagination
    throttle_classes: list = []

    def get_queryset(self):
        queryset = Note.objects.all()
        status = self.request.query_params.get("status")
        return queryset.filter(status=status) if status else queryset
