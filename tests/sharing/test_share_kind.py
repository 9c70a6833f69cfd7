"""The review step and "Share created" name the kind of share being made: who it reaches. The
created page said "Only the named recipient, signed in" for every share but an anonymous link: a
group (a tumor board), an invitation to an outside consultant's address and a patient's share too.
Every kind the code makes is named: on the share page (each recipient kind and the patient's
template) and by renewal (which also renews tumor board meetings' and organization invitations'
shares; an approved original request's is never renewed: test_original_approval_limits.py)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from apps.organizations.models import Role
from apps.sharing.models import Grant, GrantSource, ShareKind
from tests.factories import GrantFactory, UserFactory, member
from tests.patient_links import link_patient_account
from tests.share_steps import confirmation

pytestmark = pytest.mark.django_db


def _shown_kind(html: str) -> str:
    found = re.findall(r'data-testid="share-kind" data-kind="([a-z_]+)">([^<]+)<', html)
    assert len(found) == 1, found
    kind, label = found[0]
    assert label.strip() == str(ShareKind(kind).label)
    return kind


SHARES = [
    ("second_opinion", "user", ShareKind.NAMED_PERSON),
    ("tumor_board", "user", ShareKind.NAMED_PERSON),
    ("second_opinion", "email", ShareKind.INVITATION),
    ("consultant", "email", ShareKind.INVITATION),
    ("tumor_board", "group", ShareKind.TUMOR_BOARD),
    ("custom", "group", ShareKind.GROUP),
    ("patient_education", "user", ShareKind.PATIENT),
    ("patient_education", "email", ShareKind.PATIENT),
    ("custom", "anonymous", ShareKind.ANONYMOUS),
]


@pytest.mark.parametrize(("use_case", "recipient_kind", "expected"), SHARES,
                         ids=[f"{u}-{r}" for u, r, _e in SHARES])
def test_the_review_and_the_created_share_name_its_kind(org_a, owner, case, consultant, client_as, use_case,
                                                        recipient_kind, expected):
    org_a.anonymous_links_enabled = True
    org_a.save()
    patient = member(org_a, Role.PATIENT, email="patient@alpha.example")
    outside = UserFactory(email="outside@elsewhere.example")
    if use_case == "patient_education":  # their accounts are the case's patient's (none other is given one)
        link_patient_account(patient, case.patient, case=case)
        link_patient_account(outside, case.patient, case=case)
    form = {"use_case": use_case, "recipient_kind": recipient_kind}
    if recipient_kind == "user":
        form["recipient_email"] = patient.email if use_case == "patient_education" else consultant.email
    elif recipient_kind == "email":  # an account with that address, bound when it opens the link
        form["recipient_email"] = outside.email
    elif recipient_kind == "group":
        form.update(group_emails=f"{consultant.email}\n{UserFactory().email}", group_name="Thoracic board")
    client = client_as(owner)
    url = reverse("sharing:case_share", kwargs={"case_id": case.public_id})

    review = client.post(url, form)
    assert review.status_code == 200 and 'name="confirm"' in review.content.decode()
    assert _shown_kind(review.content.decode()) == expected
    done = client.post(url, {**form, **confirmation(client)})
    assert done.status_code == 200 and 'data-testid="share-url"' in done.content.decode()
    assert _shown_kind(done.content.decode()) == expected
    assert Grant.objects.get().kind == expected
    # and whom it reaches: the person, the invited address or the group, as My shares says
    # (the same words as the case page's shares and closing a case: one include names them all)
    recipient = [" ".join(re.sub(r"<[^>]+>", " ", r).split())
                 for r in re.findall(r'data-testid="share-recipient">(.*?)</dd>', done.content.decode(), re.S)]
    if recipient_kind == "user":
        person = patient if use_case == "patient_education" else consultant
        wanted = f"{person.full_name} {person.email}" if person.full_name else person.email
    else:
        wanted = {"email": "Invited: outside@elsewhere.example", "group": "Group: Thoracic board"}.get(recipient_kind)
    assert recipient == ([wanted] if wanted else [])


RENEWED = [
    (GrantSource.SHARE, {"use_case": "tumor_board", "group_name": "Board"}, ShareKind.TUMOR_BOARD),
    (GrantSource.SHARE, {"use_case": "consultant", "grantee_email": "outside@elsewhere.example"},
     ShareKind.INVITATION),
    (GrantSource.INVITATION, {"use_case": "consultant"}, ShareKind.CONSULTANT_INVITED),
]


@pytest.mark.parametrize(("source", "fields", "expected"), RENEWED, ids=[e.value for _s, _f, e in RENEWED])
def test_a_renewed_share_names_its_kind(org_a, owner, case, consultant, client_as, source, fields, expected):
    recipient = None if "group_name" in fields or "grantee_email" in fields else consultant
    grant = GrantFactory(organization=org_a, case=case, grantee=recipient, created_by=owner, source=source,
                         permissions=["view", "download_preview"], renditions=["preview"], **fields)
    if "group_name" in fields:
        grant.group_members.set([consultant])
    assert grant.kind == expected
    done = client_as(owner).post(reverse("sharing:grant_renew", kwargs={"grant_id": grant.public_id}))
    assert done.status_code == 200, done.content.decode()[:500]
    assert _shown_kind(done.content.decode()) == expected


def test_a_board_meetings_grant_is_not_renewed_on_its_own(org_a, owner, case, consultant, client_as):
    """A tumor board's grant ends with its board: renewing it alone is refused, nothing made."""
    grant = GrantFactory(organization=org_a, case=case, grantee=consultant, created_by=owner, source=GrantSource.BOARD,
                         permissions=["view"], use_case="custom")
    assert grant.kind == ShareKind.BOARD_MEETING
    done = client_as(owner).post(reverse("sharing:grant_renew", kwargs={"grant_id": grant.public_id}), follow=True)
    assert "cannot be renewed on its own" in done.content.decode()
    assert Grant.objects.count() == 1


def test_an_accepted_invitation_is_the_named_person_it_was_bound_to(org_a, case, consultant):
    grant = GrantFactory(organization=org_a, case=case, grantee=consultant, grantee_email=consultant.email,
                         use_case="consultant")
    assert grant.kind == ShareKind.NAMED_PERSON
