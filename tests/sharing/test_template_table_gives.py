"""The share page's templates table lists, for each use case, the images a share of it gives: the
same source (``Template.gives_renditions``, ``usecases.renditions_given``) as the share it makes
(``services.share_terms``). Found by QA: the table listed "Original DICOM" for a tumor board review,
whose share gives no download of the original (nor the viewer's diagnostic frames, which need it):
a tumor board review gives the group previews and the annotated report, the original on request."""

from __future__ import annotations

import html as html_lib
import re

import pytest
from django.urls import reverse

from apps.organizations.models import Role
from apps.sharing import policy, services
from apps.sharing.usecases import TEMPLATES, RecipientKind, Rendition, UseCase
from tests.factories import CaseFactory, StudyFactory, member
from tests.patient_links import link_patient_account

pytestmark = pytest.mark.django_db

LABELS = dict(Rendition.choices)


def _listed(page: str, label: str) -> set[str]:
    """The renditions the table's row of ``label`` lists, as rendition values."""
    [row] = [r for r in page.split("<tr>") if f'<th scope="row">{label}</th>' in r]
    cell = re.search(r"<td[^>]*>(.*?)</td>", row).group(1)  # the row's first cell: its images
    cell = html_lib.unescape(cell).replace(" (as chosen)", "")
    by_label = {str(v): k for k, v in LABELS.items()}
    return {by_label[name.strip()] for name in cell.split(",")}


@pytest.mark.parametrize("use_case", list(TEMPLATES))
def test_each_use_case_lists_the_renditions_its_share_gives(org_a, client_as, use_case):
    sharer = member(org_a, Role.CLINICIAN, email="sharer.tt@alpha.example")
    case = CaseFactory(organization=org_a, created_by=sharer, responsible_clinician=sharer)
    study = StudyFactory(organization=org_a, case=case, patient_id=case.patient.mrn)
    page = client_as(sharer).get(reverse("sharing:case_share", kwargs={"case_id": case.public_id}))
    assert page.status_code == 200
    listed = _listed(page.content.decode(), str(TEMPLATES[use_case].label))

    if use_case == UseCase.PATIENT_EDUCATION:
        holder = member(org_a, Role.PATIENT, email="patient.tt@alpha.example")
        link_patient_account(holder, case.patient, case=case)
    else:
        holder = member(org_a, Role.EXTERNAL_CONSULTANT, email="holder.tt@alpha.example")
    kind = RecipientKind.USER
    grant, _link, _raw = services.share_create(case=case, by=sharer, use_case=use_case, recipient_kind=kind,
                                               grantee=holder)
    assert listed == set(grant.renditions)
    # the original is listed exactly when the grant lets its holder have it (its download, and the
    # viewer's diagnostic frames)
    given = policy.allowed_renditions(holder, study)
    assert (Rendition.ORIGINAL in listed) == (Rendition.ORIGINAL in given)
    assert given <= listed


def test_a_tumor_board_review_lists_and_gives_no_original(org_a):
    template = TEMPLATES[UseCase.TUMOR_BOARD]
    assert Rendition.ORIGINAL not in template.gives_renditions
    assert "download_original" not in template.permissions
    [row] = [t for t in services.template_table() if t["key"] == UseCase.TUMOR_BOARD]
    assert row["renditions"] == [Rendition.REPORT, Rendition.PREVIEW]
