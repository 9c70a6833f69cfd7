"""Odd input that a careless user or script may send to the forms and the API: each is refused
with a 400 (the error beside its field, or a JSON error), never a server error, and nothing is
stored that the database cannot hold or give back. Run on PostgreSQL: SQLite enforces no length
and stores a year-10000 timestamp as text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from apps.cases.models import BoardSession
from apps.organizations.models import Role
from apps.sharing.models import Grant, ShareLink
from apps.sharing.services import grant_create, grant_extend, share_create, share_link_create
from tests.factories import CaseFactory, GrantFactory, member
from tests.share_steps import confirmation

pytestmark = pytest.mark.django_db

LONG_EMAIL = "x" * 300 + "@example.org"  # a valid-looking address longer than the column (254)
HUGE = str(2**63)                        # past PostgreSQL's integer (and SQLite's) range


@pytest.fixture
def owner(org_a):
    return member(org_a, Role.CLINICIAN, email="owner@alpha.example")


@pytest.fixture
def recipient(org_a):
    return member(org_a, Role.CLINICIAN, email="recipient@alpha.example")


@pytest.fixture
def case(org_a, owner):
    return CaseFactory(organization=org_a, created_by=owner, responsible_clinician=owner)


def _share(client, case, **fields):
    return client.post(reverse("sharing:case_share", kwargs={"case_id": case.public_id}),
                       {**confirmation(client), **fields})


# --- the share form -------------------------------------------------------------------------

@pytest.mark.parametrize("field", ["download_limit", "max_uses"])
def test_share_form_refuses_a_count_the_column_cannot_hold(client_as, owner, recipient, case, field):
    # a use limit is an anonymous link's (refused, whatever its value, on a share to a person)
    case.organization.anonymous_links_enabled = True
    case.organization.save(update_fields=["anonymous_links_enabled"])
    recipient_fields = ({"use_case": "second_opinion", "recipient_kind": "user", "recipient_email": recipient.email}
                        if field == "download_limit" else {"use_case": "custom", "recipient_kind": "anonymous"})
    response = _share(client_as(owner), case, **recipient_fields, **{field: HUGE})
    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert not Grant.objects.exists()


def test_share_form_refuses_a_start_in_year_9999(client_as, owner, recipient, case):
    response = _share(client_as(owner), case, use_case="second_opinion", recipient_kind="user",
                      recipient_email=recipient.email, not_before="9999-12-31T23:59")
    assert response.status_code == 400
    assert "not_before" in response.context["form"].errors
    assert not Grant.objects.exists()


def test_share_form_refuses_a_start_before_year_1_in_utc_so_my_shares_still_opens(client_as, owner, recipient,
                                                                                   case):
    client = client_as(owner)
    response = _share(client, case, use_case="second_opinion", recipient_kind="user",
                      recipient_email=recipient.email, not_before="0001-01-01T00:00+05:00")
    assert response.status_code == 400
    assert "not_before" in response.context["form"].errors
    assert not ShareLink.objects.exists()
    assert client.get(reverse("sharing:my_shares")).status_code == 200


def test_share_form_refuses_an_invited_address_longer_than_the_column(client_as, owner, case):
    response = _share(client_as(owner), case, use_case="second_opinion", recipient_kind="email",
                      recipient_email=LONG_EMAIL)
    assert response.status_code == 400
    assert "recipient_email" in response.context["form"].errors
    assert not Grant.objects.exists()


def test_extending_to_year_9999_is_refused_beside_the_field(client_as, owner, recipient, case):
    grant = GrantFactory(organization=case.organization, case=case, grantee=recipient, created_by=owner,
                         use_case="second_opinion")
    response = client_as(owner).post(reverse("sharing:grant_extend", kwargs={"grant_id": grant.public_id}),
                                     {"expires_at": "9999-12-31T23:59", "reason": "The board moved to next week."})
    assert response.status_code == 400
    assert "expires_at" in response.context["form"].errors


# --- tumor boards ---------------------------------------------------------------------------

def test_a_board_in_year_10000_utc_is_refused_so_the_board_list_still_opens(client_as, org_a, owner):
    client = client_as(owner)
    response = client.post(reverse("cases:board_create"), {
        "title": "Thoracic board", "meeting_at": "9999-12-31T23:59-05:00", "review_days": "5", "host": owner.pk})
    assert response.status_code == 400
    assert "meeting_at" in response.context["form"].errors
    assert not BoardSession.objects.exists()
    assert client.get(reverse("cases:board_list")).status_code == 200


# --- case documents ------------------------------------------------------------------------

PDF = b"%PDF-1.4\n" + b"generated report body " * 20


def _attach(client, case, file_name: str, *, token: str = "", **headers):
    """POST the attachment form as a browser or script sends it, with ``file_name`` as given. (The
    test client's own encoding cannot send a long name: SimpleUploadedFile cuts it to 255.)"""
    boundary = "lightbox-test-boundary"
    fields = {"csrfmiddlewaretoken": token, "kind": "report"} if token else {"kind": "report"}
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                    for k, v in fields.items())
    body += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file_name}"\r\n'
             f"Content-Type: application/pdf\r\n\r\n").encode() + PDF + f"\r\n--{boundary}--\r\n".encode()
    return client.generic("POST", reverse("cases:attachment_add", kwargs={"case_id": case.public_id}), body,
                          content_type=f"multipart/form-data; boundary={boundary}", HTTP_ACCEPT="text/html", **headers)


@pytest.mark.parametrize("length", [201, 255, 900])
def test_a_document_with_a_long_file_name_is_kept_with_its_name_shortened_and_its_extension(client_as, owner, case,
                                                                                          length):
    from apps.cases.models import Attachment

    name = "Report " + "x" * (length - 11) + ".pdf"
    response = _attach(client_as(owner), case, name)
    assert response.status_code == 302
    stored = Attachment.objects.get().filename
    assert len(stored) == Attachment._meta.get_field("filename").max_length
    assert stored.startswith("Report xxx") and stored.endswith("x….pdf")
    download = client_as(owner).get(reverse("cases:attachment_download",
                                            kwargs={"attachment_id": Attachment.objects.get().public_id}))
    assert download.status_code == 200 and ".pdf" in download["Content-Disposition"]


def test_a_file_name_too_long_to_read_is_explained_in_the_readers_language(owner, case):
    """A name past what Django reads of a part's headers (1,024 bytes) loses the whole form, so no
    field can carry the error: the portal's page says what to do, in Spanish here, with the
    security check on as in a browser; a script gets JSON."""
    from django.test import Client

    from apps.cases.models import Attachment

    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    page = client.get(case.get_absolute_url())
    response = _attach(client, case, "x" * 996 + ".pdf", token=str(page.context["csrf_token"]),
                       HTTP_ACCEPT_LANGUAGE="es")
    assert response.status_code == 400 and b'data-testid="form-unreadable"' in response.content
    html = response.content.decode()
    assert 'lang="es"' in html and "No se ha guardado nada" in html and "200" in html
    script = client.generic("POST", reverse("cases:attachment_add", kwargs={"case_id": case.public_id}),
                            b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + b"x" * 1000
                            + b"\"\r\n\r\n%PDF-\r\n--b--\r\n", content_type="multipart/form-data; boundary=b",
                            HTTP_ACCEPT="application/json")
    assert script.status_code == 400 and script.json()["error"] == "unreadable_form"
    assert not Attachment.objects.exists()


# --- the grants API -------------------------------------------------------------------------

def _api_create(client, case, **fields):
    return client.post("/api/v1/grants/", {"case": str(case.public_id), **fields}, content_type="application/json")


@pytest.mark.parametrize("field", ["download_limit", "max_uses"])
def test_api_refuses_a_count_the_column_cannot_hold(client_as, owner, recipient, case, field):
    response = _api_create(client_as(owner), case, use_case="second_opinion", recipient_kind="user",
                           recipient_email=recipient.email, **{field: 2**63})
    assert response.status_code == 400
    assert field in response.json()
    assert not Grant.objects.exists()


def test_api_refuses_a_start_in_year_9999(client_as, owner, recipient, case):
    response = _api_create(client_as(owner), case, use_case="second_opinion", recipient_kind="user",
                           recipient_email=recipient.email, not_before="9999-12-31T23:59:59Z")
    assert response.status_code == 400
    assert "not_before" in response.json()
    assert not Grant.objects.exists()


@pytest.mark.parametrize("value", [True, False, 0, 1, 2**63, 2**200, 1.5, [], {}, ["x"], {"id": 1}, "not-a-uuid"],
                         ids=repr)
def test_api_refuses_a_case_id_of_the_wrong_type_beside_the_field(client_as, owner, recipient, case, value):
    """An id is a UUID string: a boolean or a number was read as the UUID of that integer (true as
    ...0001) and answered 404 as if it named a case elsewhere."""
    response = client_as(owner).post("/api/v1/grants/", {
        "case": value, "use_case": "second_opinion", "recipient_kind": "user", "recipient_email": recipient.email,
    }, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["case"] == ["Must be a valid UUID."]
    assert not Grant.objects.exists()


def test_api_answers_a_case_id_that_names_no_visible_case_with_the_same_404(client_as, owner, recipient, case,
                                                                             org_b):
    """A well-formed id of no case, or of another organization's case, stays 404 with one body:
    the answer does not tell which ids exist elsewhere."""
    import uuid
    from types import SimpleNamespace

    elsewhere, nowhere = CaseFactory(organization=org_b), SimpleNamespace(public_id=uuid.uuid4())
    client = client_as(owner)
    answers = [_api_create(client, c, use_case="second_opinion", recipient_kind="user",
                           recipient_email=recipient.email) for c in (elsewhere, nowhere)]
    assert [a.status_code for a in answers] == [404, 404]
    assert answers[0].json() == answers[1].json()
    assert not Grant.objects.exists()


def test_api_refuses_an_invited_address_longer_than_the_column(client_as, owner, case):
    response = _api_create(client_as(owner), case, use_case="second_opinion", recipient_kind="email",
                           recipient_email=LONG_EMAIL)
    assert response.status_code == 400
    assert "recipient_email" in response.json()
    assert not Grant.objects.exists()


def test_api_refuses_a_time_without_offset_that_overflows_in_the_server_time_zone(client_as, owner, recipient,
                                                                                   case):
    grant = GrantFactory(organization=case.organization, case=case, grantee=recipient, created_by=owner,
                         use_case="second_opinion")
    client = client_as(owner)
    with timezone.override("America/New_York"):  # 9999-12-31 23:59 there is year 10000 in UTC
        created = _api_create(client, case, use_case="second_opinion", recipient_kind="user",
                              recipient_email=recipient.email, not_before="9999-12-31T23:59:59")
        extended = client.post(f"/api/v1/grants/{grant.public_id}/extend/",
                               {"expires_at": "9999-12-31T23:59:59", "reason": "The board moved to next week."},
                               content_type="application/json")
    assert created.status_code == 400 and "not_before" in created.json()
    assert extended.status_code == 400 and "expires_at" in extended.json()
    assert Grant.objects.count() == 1


@pytest.mark.parametrize("action", ["", "extend/", "renew/"])
def test_api_refuses_a_body_nested_deeper_than_json_can_be_read(client_as, owner, recipient, case, action):
    """Python's JSON decoder gives up on [[[[...]]]] a few thousand deep (RecursionError): a 400."""
    grant = GrantFactory(organization=case.organization, case=case, grantee=recipient, created_by=owner)
    url = "/api/v1/grants/" + (f"{grant.public_id}/{action}" if action else "")
    response = client_as(owner).post(url, "[" * 100_000 + "]" * 100_000, content_type="application/json")
    assert response.status_code == 400
    assert "detail" in response.json()
    assert Grant.objects.count() == 1


# --- ticked boxes: an id past the key column's range is an invalid choice ---------------------

TICKED_IDS = [HUGE, str(-2**64), " +99999999999999999999 ", "9_999_999_999_999_999_999", "\u0669" * 20,
              "9" * 5000, "+-5"]
TICKED_IDS_NAMES = ["2**63", "-2**64", "signed, spaced", "underscores", "Arabic-Indic nines", "5000 digits", "+-5"]


@pytest.mark.parametrize("value", TICKED_IDS, ids=TICKED_IDS_NAMES)
def test_inviting_with_a_case_id_past_the_column_is_refused_beside_the_field(client_as, admin_a, value):
    from apps.accounts.models import Invitation

    response = client_as(admin_a).post(reverse("accounts:invitation_send"), {
        "email": "consultant@elsewhere.example", "role": Role.EXTERNAL_CONSULTANT, "cases": [value]})
    assert response.status_code == 400
    assert "cases" in response.context["form"].errors
    assert not Invitation.objects.exists()


@pytest.mark.parametrize("field", ["cases", "participants"])
@pytest.mark.parametrize("value", TICKED_IDS, ids=TICKED_IDS_NAMES)
def test_a_board_with_an_id_past_the_column_is_refused_beside_the_field(client_as, org_a, owner, case, field,
                                                                         value):
    from tests.factories import BoardSessionFactory

    board = BoardSessionFactory(organization=org_a, host=owner)
    data = {"title": "Thoracic board", "meeting_at": "2030-03-04T17:00", "review_days": "5", "host": owner.pk,
            field: [value]}
    client = client_as(owner)
    created = client.post(reverse("cases:board_create"), data)
    edited = client.post(reverse("cases:board_edit", kwargs={"boardsession_id": board.public_id}), data)
    for response in (created, edited):
        assert response.status_code == 400
        assert field in response.context["form"].errors
    assert BoardSession.objects.count() == 1


@pytest.mark.parametrize("value", TICKED_IDS, ids=TICKED_IDS_NAMES)
def test_sharing_a_study_id_past_the_column_is_refused_beside_the_field(client_as, owner, recipient, case, value):
    from tests.factories import StudyFactory

    StudyFactory(organization=case.organization, case=case)
    response = _share(client_as(owner), case, use_case="second_opinion", recipient_kind="user",
                      recipient_email=recipient.email, studies=[value])
    assert response.status_code == 400
    assert "studies" in response.context["form"].errors
    assert not Grant.objects.exists()


# --- invitations, members, sign-in -----------------------------------------------------------

def test_inviting_an_address_longer_than_the_column_is_refused_beside_the_field(client_as, admin_a):
    response = client_as(admin_a).post(reverse("accounts:invitation_send"),
                                       {"email": LONG_EMAIL, "role": Role.EXTERNAL_CONSULTANT})
    assert response.status_code == 400
    assert "email" in response.context["form"].errors


def test_inviting_a_patient_at_an_address_longer_than_the_column_is_refused(client_as, owner, case):
    response = client_as(owner).post(reverse("accounts:patient_invite", kwargs={"case_id": case.public_id}),
                                     {"email": LONG_EMAIL})
    assert response.status_code == 400
    assert "email" in response.context["form"].errors


def test_adding_a_member_with_an_address_longer_than_the_column_is_refused(client_as, admin_a):
    response = client_as(admin_a).post(reverse("organizations:members"),
                                       {"email": LONG_EMAIL, "role": Role.CLINICIAN, "full_name": "A. Person"})
    assert response.status_code == 400
    assert "email" in response.context["form"].errors


def test_signing_in_with_an_address_longer_than_any_account_is_a_plain_failed_sign_in(client):
    from axes.models import AccessAttempt

    response = client.post(reverse("account_login"), {"login": LONG_EMAIL, "password": "whatever-it-is"})
    assert response.status_code == 200
    assert response.context["form"].errors
    assert not response.wsgi_request.user.is_authenticated
    assert not AccessAttempt.objects.exists()



# --- the sharing services, for callers other than the forms and the API ------------------------
# (seed_demo, a shell, a later feature): the same limits, as a ValidationError, not a database error

FAR = {"9999-12-31 23:59 New York": datetime(9999, 12, 31, 23, 59, tzinfo=ZoneInfo("America/New_York")),
       "0001-01-01 00:00+05:00": datetime(1, 1, 1, tzinfo=dt_timezone(timedelta(hours=5))),
       "3000-01-01 UTC": datetime(3000, 1, 1, tzinfo=UTC),
       "1899-12-31 UTC": datetime(1899, 12, 31, tzinfo=UTC)}
OUT_OF_YEARS = "between the years 1900 and 2999"


def _grant(case, owner, recipient, **fields):
    return grant_create(**{"case": case, "grantee": recipient, "permissions": ["view"], "by": owner,
                           "expires_at": timezone.now() + timedelta(days=1), **fields})


@pytest.mark.parametrize("limit", [0, -1, 2_147_483_648, 2**63, True])
def test_grant_create_refuses_a_download_limit_the_column_cannot_hold(owner, recipient, case, limit):
    with pytest.raises(ValidationError, match="download limit must be a whole number from 1 to 2147483647"):
        _grant(case, owner, recipient, download_limit=limit)
    assert not Grant.objects.exists()


@pytest.mark.parametrize("field", ["starts_at", "expires_at"])
@pytest.mark.parametrize("when", FAR)
def test_grant_create_refuses_a_time_outside_the_years_it_can_store(owner, recipient, case, field, when):
    with pytest.raises(ValidationError, match=OUT_OF_YEARS):
        _grant(case, owner, recipient, **{field: FAR[when]})
    assert not Grant.objects.exists()


@pytest.mark.parametrize("limit", [0, -1, 2_147_483_648, 2**63])
def test_share_link_create_refuses_a_use_limit_the_column_cannot_hold(owner, recipient, case, limit):
    grant = _grant(case, owner, recipient)
    with pytest.raises(ValidationError, match="use limit must be a whole number from 1 to 2147483647"):
        share_link_create(grant=grant, by=owner, max_uses=limit)
    assert not ShareLink.objects.exists()


@pytest.mark.parametrize("when", FAR)
def test_share_link_create_refuses_a_not_before_outside_the_years_it_can_store(owner, recipient, case, when):
    grant = _grant(case, owner, recipient)
    with pytest.raises(ValidationError, match=OUT_OF_YEARS):
        share_link_create(grant=grant, by=owner, not_before=FAR[when])
    assert not ShareLink.objects.exists()


@pytest.mark.parametrize("when", FAR)
def test_share_create_refuses_a_not_before_outside_the_years_it_can_store(owner, recipient, case, when):
    """9999-12-31 overflowed when the expiry was counted from it (OverflowError, a server error)."""
    with pytest.raises(ValidationError, match=OUT_OF_YEARS):
        share_create(case=case, by=owner, use_case="second_opinion", recipient_kind="user", grantee=recipient,
                     not_before=FAR[when])
    assert not Grant.objects.exists() and not ShareLink.objects.exists()


@pytest.mark.parametrize("when", FAR)
def test_grant_extend_refuses_a_time_outside_the_years_it_can_store(owner, recipient, case, when):
    grant = _grant(case, owner, recipient)
    expires_at = grant.expires_at
    with pytest.raises(ValidationError, match=OUT_OF_YEARS):
        grant_extend(grant=grant, by=owner, expires_at=FAR[when], reason="The board moved to next week.")
    grant.refresh_from_db()
    assert grant.expires_at == expires_at


@pytest.mark.parametrize("when", FAR)
def test_board_create_and_update_refuse_a_meeting_outside_the_years_they_can_store(org_a, owner, case, when):
    from apps.cases.services import board_create, board_update

    soon = timezone.now() + timedelta(days=1)
    with pytest.raises(ValidationError, match=OUT_OF_YEARS):
        board_create(organization=org_a, by=owner, host=owner, title="Board", meeting_at=FAR[when], review_days=7,
                     cases=[case], participants=[])
    assert not BoardSession.objects.exists()
    board = board_create(organization=org_a, by=owner, host=owner, title="Board", meeting_at=soon, review_days=7,
                         cases=[case], participants=[])
    with pytest.raises(ValidationError, match=OUT_OF_YEARS):
        board_update(board=board, by=owner, host=owner, title="Board", meeting_at=FAR[when], review_days=7,
                     cases=[case], participants=[])
    board.refresh_from_db()
    assert board.meeting_at == soon
