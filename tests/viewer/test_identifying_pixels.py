"""Images whose pixels may identify the patient on anonymous links (found by security review: an
anonymous link showed every image of its studies, burned-in patient text included). An anonymous
link whose share asks for no second factor gives no image flagged ``pixels_may_identify``
(``policy.withholds_identifying_pixels``): its frame (and thumbnail) answers 200 with the reason,
which viewer.js shows in the image's place, and the other images are shown as before. The same
share with a passcode, a named recipient and staff are given it."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from apps.imaging.models import Instance
from apps.sharing import policy
from tests.factories import LINK_PASSCODE, anonymous_preview_holder

pytestmark = pytest.mark.django_db

WITHHELD = "This image may show patient details written into it; it is not shown through this link."


def _frame(instance, quality="preview"):
    return reverse("viewer:frame", kwargs={"instance_id": instance.public_id}) + f"?quality={quality}"


def _link_holder(study, owner, **terms) -> Client:
    return anonymous_preview_holder(study, owner, download_limit=3, **terms)


@pytest.fixture
def flagged(ct_study):
    instance = ct_study.phantom_instances[10]
    Instance.objects.filter(pk=instance.pk).update(pixels_may_identify=True)
    return Instance.objects.get(pk=instance.pk)


def _shown(response) -> bool:
    return response.status_code == 200 and response["Content-Type"].startswith("image/")


def test_a_link_without_a_second_factor_withholds_the_flagged_image_only(ct_study, clinician_a, flagged):
    holder = _link_holder(ct_study, clinician_a)
    assert holder.get(reverse("viewer:viewer", kwargs={"study_id": ct_study.public_id})).status_code == 200
    for quality in ("low", "preview"):
        refused = holder.get(_frame(flagged, quality))
        assert refused.status_code == 200 and refused["X-Lightbox-Frame"] == "withheld"
        body = refused.json()
        assert body["error"] == "withheld" and body["message"] == WITHHELD and body["short"]
        assert "no-store" in refused["Cache-Control"]
    # a thumbnail asks the same endpoint
    thumb = holder.get(reverse("viewer:frame", kwargs={"instance_id": flagged.public_id})
                       + "?frame=0&quality=low&size=64")
    assert thumb.json()["error"] == "withheld"
    # the other images are shown, and the viewer goes on (its access check still says yes)
    assert _shown(holder.get(_frame(ct_study.phantom_instances[9])))
    assert _shown(holder.get(_frame(ct_study.phantom_instances[11])))
    access = holder.get(reverse("viewer:access", kwargs={"study_id": ct_study.public_id}))
    assert access.status_code == 200 and access.json()["access"] is True


def test_the_policy_refuses_the_flagged_image_on_such_a_link_for_every_use(ct_study, clinician_a, flagged):
    holder = _link_holder(ct_study, clinician_a)
    actor = policy.LinkHolder(link_ids=tuple(holder.session[policy.LINK_SESSION_KEY]))
    assert policy.can(actor, policy.Action.VIEW_IMAGES, ct_study)
    assert not policy.can(actor, policy.Action.VIEW_IMAGES, flagged)
    assert not policy.can(actor, policy.Action.DOWNLOAD_PREVIEW, flagged, rendition="preview")
    assert policy.download_refusal(actor, flagged, rendition="preview") == policy.GrantRefusal.IDENTIFYING_PIXELS
    assert policy.image_withheld(actor, flagged)
    other = ct_study.phantom_instances[9]
    assert policy.can(actor, policy.Action.VIEW_IMAGES, other) and not policy.image_withheld(actor, other)


def test_the_same_link_with_a_passcode_shows_it(ct_study, clinician_a, flagged):
    holder = _link_holder(ct_study, clinician_a, second_factor="passcode", passcode=LINK_PASSCODE)
    assert _shown(holder.get(_frame(flagged)))


def test_a_named_recipient_and_staff_are_shown_it(client_as, clinician_a, preview_recipient, ct_study, flagged):
    assert _shown(client_as(preview_recipient).get(_frame(flagged)))
    assert _shown(client_as(clinician_a).get(_frame(flagged, "diagnostic")))


def test_a_link_holder_is_refused_a_flagged_image_of_a_study_they_may_not_view(ct_study, clinician_a, flagged,
                                                                              org_b):
    """Withholding says nothing of an image whose study is refused: that is the usual 404."""
    from tests.viewer.conftest import make_ct_study

    other = make_ct_study(org_b, None)
    Instance.objects.filter(pk=other.phantom_instances[0].pk).update(pixels_may_identify=True)
    holder = _link_holder(ct_study, clinician_a)
    response = holder.get(_frame(Instance.objects.get(pk=other.phantom_instances[0].pk)))
    assert response.status_code == 404
