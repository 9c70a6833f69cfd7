"""The original withdrawn while a viewer is open (found by review): the access check said only
"may view images", so a viewer showing diagnostic frames went on as if nothing changed until its
next diagnostic frame was refused (which stopped it). The check now says whether the diagnostic
original is still the reader's (``diagnostic``), as the page decided it: viewer.js then drops the
diagnostic frames it holds and goes on with previews (tests/browser/test_viewer_original_withdrawn.py)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from apps.sharing.models import SharingPolicy
from tests.factories import anonymous_original_terms, open_anonymous_link

pytestmark = pytest.mark.django_db


def _access(study) -> str:
    return reverse("viewer:access", kwargs={"study_id": study.public_id})


def test_the_access_check_says_when_the_original_is_withdrawn(clinician_a, ct_study):
    from apps.sharing import services as sharing
    from apps.sharing.usecases import RecipientKind, UseCase

    org = ct_study.organization
    org.anonymous_links_enabled = True
    org.save()
    terms = anonymous_original_terms(org)
    _g, _l, raw = sharing.share_create(case=ct_study.case, by=clinician_a, use_case=UseCase.CUSTOM,
                                       recipient_kind=RecipientKind.ANONYMOUS, renditions=["original"], **terms)
    holder = Client()
    assert open_anonymous_link(holder, raw, passcode=terms["passcode"]).status_code == 302
    assert holder.get(reverse("viewer:viewer", kwargs={"study_id": ct_study.public_id})).status_code == 200
    frame = (reverse("viewer:frame", kwargs={"instance_id": ct_study.phantom_instances[0].public_id})
             + "?quality=diagnostic")
    assert holder.get(frame)["X-Lightbox-Frame"] == "diagnostic"
    assert holder.get(_access(ct_study)).json() == {"access": True, "diagnostic": True}

    # the organization's security officer turns originals on anonymous links off
    SharingPolicy.objects.filter(organization=org).update(anonymous_allow_original=False)

    check = holder.get(_access(ct_study))
    assert check.status_code == 200 and check.json() == {"access": True, "diagnostic": False}
    assert "no-store" in check["Cache-Control"]
    refused = holder.get(frame)  # what a diagnostic frame asked for meanwhile answers
    assert refused.status_code == 403 and refused.json()["error"] == "preview_only"
    preview = holder.get(frame.replace("diagnostic", "preview"))
    assert preview.status_code == 200 and preview["X-Lightbox-Frame"] == "preview"


def test_a_reader_of_originals_on_staff_side_is_told_diagnostic(client_as, clinician_a, ct_study):
    assert client_as(clinician_a).get(_access(ct_study)).json() == {"access": True, "diagnostic": True}
