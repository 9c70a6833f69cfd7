"""Showing the education copy on the patient portal's page.

A patient on a phone or a tablet sees the copy's images in the page itself (its zip holds them as
labelled JPEG pictures, never DICOM files: ``apps.renditions.packages``): each is that labelled
picture (the education file's pixels, at most 512 px, the "not for diagnosis" band burned in, and
the words beside it too), never the file's own JPEG, which has no band; sent inline (a ``data:``
URI) with the page, which is never cached: no image of the patient is kept by the browser, and
no other address serves them. Only copies the policy lets the patient take are shown (the
selector's READY state, ``policy.download_refusals``), so a share over its download limit shows
none either; showing them counts no download (the limit counts copies taken away). The showing
is recorded once per study and browser session (``education.viewed``)."""

from __future__ import annotations

import base64
import logging

from cryptography.exceptions import InvalidTag
from django.http import HttpRequest

from apps.audit import actions as audit_actions
from apps.audit.services import record
from apps.education.selectors import EducationShare
from apps.imaging.services import blob_integrity_failed
from apps.renditions import encoders
from apps.renditions.services import education_image
from apps.sharing.usecases import Rendition

logger = logging.getLogger(__name__)

#: the studies whose education images this browser session was shown (recorded once each)
VIEWED_SESSION_KEY = "lightbox_education_viewed"


def education_images_fill(*, shares: list[EducationShare], request: HttpRequest) -> None:
    """Fill each shown image's ``src``; record the studies shown for the first time in this
    session. An image that cannot be read is left out (logged by type and id), the page shown; one
    whose stored bytes were altered too, logged as an error and recorded (``blob.integrity_failed``)."""
    viewed = list(request.session.get(VIEWED_SESSION_KEY, []))
    for share in shares:
        for item in share.studies:
            shown = False
            for image in item.images:
                try:
                    jpeg = education_image(file=image.file)
                except InvalidTag:
                    # its stored bytes (the image's, or the original it is made from) were altered:
                    # left out, logged as an error and recorded for the security officer
                    blob_integrity_failed(instance=image.file.instance, read="education_image", actor=request.user,
                                          request=request, details={"file": str(image.file.public_id)})
                    continue
                except (encoders.NotEncodable, OSError) as exc:
                    logger.warning("education file %s: not shown (%s)", image.file.public_id, type(exc).__name__)
                    continue
                image.src = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
                shown = True
            if shown and item.study.pk not in viewed:
                record(action=audit_actions.EDUCATION_VIEWED, actor=request.user,
                       organization_id=item.study.organization_id, target=item.study, request=request,
                       details={"rendition": Rendition.EDUCATION, "images": sum(1 for i in item.images if i.src)})
                viewed.append(item.study.pk)
    if viewed != request.session.get(VIEWED_SESSION_KEY, []):
        request.session[VIEWED_SESSION_KEY] = viewed[-200:]
