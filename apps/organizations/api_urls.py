from __future__ import annotations

from rest_framework.routers import SimpleRouter

from apps.organizations.api import OrganizationViewSet

router = SimpleRouter()
router.register("organizations", OrganizationViewSet, basename="organization")

urlpatterns = router.urls
