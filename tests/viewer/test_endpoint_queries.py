"""The viewer's hot endpoints read the signed-in user's memberships once a request (the
middleware's reading, ``request.my_memberships``) and a reader's grants once: a frame (the viewer
asks for hundreds), a series' instances, the heartbeat and the close beacon decide on
``policy.request_facts``. A diagnostic frame read the memberships three times (the middleware, see
the images, the original) and a reader's grants twice. Each request still decides afresh:
tests/viewer/test_views.py (test_revoked_grant_stops_the_next_frame,
test_series_instances_stop_once_the_grant_has_ended) and the ended membership and the revoked grant
below."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.organizations.models import Membership, Role
from apps.sharing import services as sharing
from apps.sharing.usecases import RecipientKind, UseCase
from tests.factories import (
    GrantFactory,
    InstanceFactory,
    SeriesFactory,
    anonymous_original_terms,
    member,
    open_anonymous_link,
)
from tests.pages import page_queries, policy_grant_reads, reads_of

pytestmark = pytest.mark.django_db


def _frame_url(instance, quality: str) -> str:
    return reverse("viewer:frame", kwargs={"instance_id": instance.public_id}) + f"?quality={quality}"


def _series_url(study, series) -> str:
    return reverse("viewer:series_instances", kwargs={"study_id": study.public_id, "series_id": series.public_id})


def _reader(who: str, org_a, org_b, study):
    """A staff member of the study's organization (a radiologist: the diagnostic original), or a
    reader outside it with a share named to them that gives the original (a consultant the
    organization admitted; a clinician of another organization)."""
    if who == "staff":
        return member(org_a, Role.RADIOLOGIST, email="radiologist2@alpha.example")
    reader = (member(org_a, Role.EXTERNAL_CONSULTANT, email="reader@alpha.example") if who == "consultant"
              else member(org_b, Role.CLINICIAN, email="reader@beta.example"))
    GrantFactory(organization=org_a, case=study.case, grantee=reader, permissions=["view", "download_original"],
                 renditions=["original"])
    return reader


def _link_holder(client, study, sharer, *, original: bool):
    org = study.organization
    org.anonymous_links_enabled = True
    org.save()
    terms = anonymous_original_terms(org) if original else {}
    _grant, _link, raw = sharing.share_create(case=study.case, by=sharer, use_case=UseCase.CUSTOM,
                                              recipient_kind=RecipientKind.ANONYMOUS,
                                              renditions=["original"] if original else None, **terms)
    assert open_anonymous_link(client, raw, passcode=terms.get("passcode")).status_code == 302
    return client


def _assert_read_once(queries: list[str], *, signed_in: bool, reader: bool) -> None:
    memberships = reads_of(queries, "organizations_membership")
    assert len(memberships) == (1 if signed_in else 0), memberships
    grants = policy_grant_reads(queries)
    assert len(grants) == (1 if reader else 0), grants


@pytest.mark.parametrize(("who", "quality"), [("staff", "diagnostic"), ("staff", "preview"),
                                              ("consultant", "diagnostic"), ("consultant", "preview"),
                                              ("other_org_reader", "diagnostic")])
def test_a_frame_reads_the_memberships_and_the_grants_once(org_a, org_b, client_as, clinician_a, ct_study, who,
                                                           quality):
    client = client_as(_reader(who, org_a, org_b, ct_study))
    status, queries = page_queries(client, _frame_url(ct_study.phantom_instances[0], quality))
    assert status == 200
    _assert_read_once(queries, signed_in=True, reader=who != "staff")


def test_a_refused_diagnostic_frame_reads_them_once_too(client_as, preview_recipient, ct_study):
    """A preview-only recipient: the preview frames, not the original (403, recorded)."""
    status, queries = page_queries(client_as(preview_recipient), _frame_url(ct_study.phantom_instances[0],
                                                                            "diagnostic"))
    assert status == 403
    _assert_read_once(queries, signed_in=True, reader=True)


@pytest.mark.parametrize(("original", "status"), [(True, 200), (False, 403)])
def test_a_link_holders_frame_reads_the_links_grants_once(client, clinician_a, ct_study, original, status):
    holder = _link_holder(client, ct_study, clinician_a, original=original)
    got, queries = page_queries(holder, _frame_url(ct_study.phantom_instances[0], "diagnostic"))
    assert got == status
    _assert_read_once(queries, signed_in=False, reader=True)


@pytest.mark.parametrize("who", ["staff", "consultant", "other_org_reader", "link_holder"])
def test_a_series_instances_read_the_memberships_and_the_grants_once(org_a, org_b, client, client_as, clinician_a,
                                                                     ct_study, who):
    series = SeriesFactory(organization=org_a, study=ct_study)
    InstanceFactory.create_batch(3, organization=org_a, series=series)
    reader = (_link_holder(client, ct_study, clinician_a, original=False) if who == "link_holder"
              else client_as(_reader(who, org_a, org_b, ct_study)))
    status, queries = page_queries(reader, _series_url(ct_study, series))
    assert status == 200
    _assert_read_once(queries, signed_in=who != "link_holder", reader=who != "staff")


@pytest.mark.parametrize("who", ["staff", "consultant", "other_org_reader"])
def test_the_heartbeat_of_anothers_session_reads_them_once(org_a, org_b, client_as, ct_study, who):
    """The heartbeat asks the policy only for a session not of this browser's (404 to outsiders,
    204 and nothing kept alive for anyone else)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = client_as(_reader(who, org_a, org_b, ct_study))
    url = reverse("viewer:heartbeat", kwargs={"study_id": ct_study.public_id})
    client.post(url, {"session": "not-mine"})
    with CaptureQueriesContext(connection) as ctx:
        response = client.post(url, {"session": "not-mine"})
    assert response.status_code == 204
    _assert_read_once([q["sql"] for q in ctx.captured_queries], signed_in=True, reader=who != "staff")


def test_an_ended_membership_stops_the_next_frame(org_a, client_as, ct_study):
    """The memberships a frame decides on are that request's: the next frame reads them again."""
    staff = member(org_a, Role.RADIOLOGIST, email="radiologist2@alpha.example")
    client = client_as(staff)
    url = _frame_url(ct_study.phantom_instances[0], "diagnostic")
    assert client.get(url).status_code == 200
    Membership.objects.filter(user=staff, organization=org_a).update(is_active=False)
    stopped = client.get(url)
    assert stopped.status_code == 404 and stopped.json()["error"] == "gone"


def test_a_role_that_loses_the_original_stops_the_next_diagnostic_frame(org_a, client_as, ct_study):
    staff = member(org_a, Role.RADIOLOGIST, email="radiologist2@alpha.example")
    client = client_as(staff)
    url = _frame_url(ct_study.phantom_instances[0], "diagnostic")
    assert client.get(url).status_code == 200
    Membership.objects.filter(user=staff, organization=org_a).update(role=Role.COORDINATOR)
    stopped = client.get(url)
    assert stopped.status_code == 403 and stopped.json()["error"] == "denied"


@pytest.mark.parametrize("who", ["staff", "consultant", "other_org_reader", "outsider"])
def test_closing_anothers_session_reads_them_once(org_a, org_b, client_as, ct_study, who):
    """Closing asks the policy only for a session not of this browser's (404 to outsiders, 204
    and nothing closed for anyone else): on the request's memberships and the actor's grants,
    each read once (it read the memberships again for each decision: once more, and twice more
    for an outsider, refused and recorded)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    user = (member(org_b, Role.CLINICIAN, email="outsider@beta.example") if who == "outsider"
            else _reader(who, org_a, org_b, ct_study))
    client = client_as(user)
    url = reverse("viewer:close", kwargs={"study_id": ct_study.public_id})
    client.post(url, {"session": "not-mine"})
    with CaptureQueriesContext(connection) as ctx:
        response = client.post(url, {"session": "not-mine"})
    assert response.status_code == (404 if who == "outsider" else 204)
    _assert_read_once([q["sql"] for q in ctx.captured_queries], signed_in=True, reader=who != "staff")


def test_an_ended_membership_is_refused_at_the_next_close(org_a, client_as, ct_study):
    """The memberships a close decides on are that request's: the next one reads them again."""
    staff = member(org_a, Role.RADIOLOGIST, email="radiologist2@alpha.example")
    client = client_as(staff)
    url = reverse("viewer:close", kwargs={"study_id": ct_study.public_id})
    assert client.post(url, {"session": "not-mine"}).status_code == 204
    Membership.objects.filter(user=staff, organization=org_a).update(is_active=False)
    assert client.post(url, {"session": "not-mine"}).status_code == 404


def test_a_revoked_grant_is_refused_at_the_next_close(org_a, client_as, clinician_a, ct_study, preview_recipient):
    client = client_as(preview_recipient)
    url = reverse("viewer:close", kwargs={"study_id": ct_study.public_id})
    assert client.post(url, {"session": "not-mine"}).status_code == 204
    sharing.grants_revoke(grants=[preview_recipient.grant], by=clinician_a, reason="test")
    assert client.post(url, {"session": "not-mine"}).status_code == 404
