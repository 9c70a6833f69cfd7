"""The portal's URLs plus views that call a service whose policy check runs inside its own
``transaction.atomic`` (organizations.services.membership_update), for tests/audit/test_denials.py."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.organizations.models import Membership, Role
from apps.organizations.services import membership_update
from portal.urls import urlpatterns as portal_urlpatterns


def _update(request, membership_id):
    membership = Membership.objects.get(public_id=membership_id)
    membership_update(membership=membership, by=request.user, role=Role.ORG_ADMIN, is_active=True, request=request)


def raising(request, membership_id):
    """The PermissionDenied reaches Django's handler (403)."""
    _update(request, membership_id)
    return HttpResponse("changed")


def catching(request, membership_id):
    """The view answers the refusal itself."""
    try:
        _update(request, membership_id)
    except PermissionDenied:
        return HttpResponse("refused", status=403)
    return HttpResponse("changed")


class Api(APIView):
    def post(self, request, membership_id):
        _update(request, membership_id)
        return Response({"changed": True})


urlpatterns = [
    path("test/denials/raising/<uuid:membership_id>/", raising),
    path("test/denials/catching/<uuid:membership_id>/", catching),
    path("test/denials/api/<uuid:membership_id>/", Api.as_view()),
    *portal_urlpatterns,
]
