"""The patient portal: the only place a patient account reaches (apps.accounts.middleware keeps
patients out of everything else). The education issue fills it with the patient's own
education copies."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


@login_required
def portal(request: HttpRequest) -> HttpResponse:
    return render(request, "education/portal.html", {})
