from __future__ import annotations

from rest_framework import mixins, serializers

from apps.core.api import OrgScopedViewSet
from apps.organizations.models import Organization


class OrganizationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    """The organizations the signed-in user belongs to."""

    model = Organization
    lookup_url_kwarg = "organization_id"

    class OutputSerializer(serializers.ModelSerializer):
        id = serializers.UUIDField(source="public_id", read_only=True)

        class Meta:
            model = Organization
            fields = ["id", "name", "slug", "anonymous_links_enabled", "upload_max_bytes"]

    serializer_class = OutputSerializer
