from __future__ import annotations

from rest_framework.routers import SimpleRouter

from apps.sharing.api import GrantViewSet

router = SimpleRouter()
router.register("grants", GrantViewSet, basename="grant")

urlpatterns = router.urls
