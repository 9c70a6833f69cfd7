"""The patient portal: the only place a patient account reaches (apps.accounts.middleware keeps
patients out of everything else). It lists the patient's live patient-education shares; each
study's education copy is downloaded through the one download endpoint
(``renditions:study_download?rendition=education``), where ``apps.sharing.policy`` decides and
counts the download on the grant, as for any recipient. The copy's images are shown in the page
(``apps.education.services``)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from apps.education import selectors, services
from apps.education.selectors import CopyState
from apps.sharing import services as sharing_services


@login_required
@never_cache
def portal(request: HttpRequest) -> HttpResponse:
    # the copies' states are decided on the memberships the request read (recording an opening
    # changes no access)
    shares = selectors.education_shares_for(user=request.user, request=request)
    # shown to the patient: each share's opening is recorded once per session (grant.opened)
    sharing_services.grants_record_open_once(grants=[s.grant for s in shares], request=request, actor=request.user)
    services.education_images_fill(shares=shares, request=request)
    return render(request, "education/portal.html", {"shares": shares, "CopyState": CopyState})
