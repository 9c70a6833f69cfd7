"""Two share confirmations of one review at the same instant (a reload while the first still
runs, the same review confirmed in two tabs of one browser) make one share. The one-time token
was claimed in the session: both requests read the session (the token unused) before either saved
it used, and both made the share, each with its own working link. It is claimed in the database
now (apps.sharing.services.share_confirmation_claim): one INSERT of the token's hash, a unique
column, so exactly one of the two gets it."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.sharing import services, views
from apps.sharing.models import Grant, ShareConfirmation, ShareLink
from tests.share_steps import confirmation
from tests.threads import in_thread

FORM = {"use_case": "second_opinion", "recipient_kind": "user"}


@pytest.mark.django_db(transaction=True)
def test_two_confirmations_at_the_same_instant_make_one_share(owner, case, consultant, monkeypatch):
    """Two browsers' requests (one session: the same cookies), each on its own thread and database
    connection, held at the form's check until both are there (the session of each is read by then,
    the token unused in both), then let go together."""
    client = Client()
    client.force_login(owner)
    url = reverse("sharing:case_share", kwargs={"case_id": case.public_id})
    confirm = {**FORM, "recipient_email": consultant.email, **confirmation(client)}
    together = threading.Barrier(2, timeout=10)

    class HeldShareForm(views.ShareForm):
        def is_valid(self):
            together.wait()
            return super().is_valid()

    monkeypatch.setattr(views, "ShareForm", HeldShareForm)
    responses, failures = [], []

    def send():
        browser = Client()
        browser.cookies = client.cookies
        responses.append(browser.post(url, confirm))

    threads = [in_thread(failures, send) for _ in range(2)]
    for thread in threads:
        thread.join(timeout=30)
    assert not failures, failures
    assert Grant.objects.count() == 1 and ShareLink.objects.count() == 1
    made = [r for r in responses if r.status_code == 200]
    assert len(made) == 1 and b'data-testid="share-url"' in made[0].content
    other = next(r for r in responses if r is not made[0])
    assert other.status_code == 302 and other["Location"].startswith(reverse("sharing:my_shares"))


@pytest.mark.django_db
def test_a_token_is_claimed_once_in_one_statement(owner, consultant):
    with CaptureQueriesContext(connection) as queries:
        assert services.share_confirmation_claim(user=owner, token="t-1") == (True, "")
    writes = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE",
                                                                                                  "DELETE"))]
    assert len(writes) == 1 and writes[0].lstrip().upper().startswith("INSERT")
    # the second claim fails (while the first still runs: its share not made yet)
    assert services.share_confirmation_claim(user=owner, token="t-1") == (False, "")
    assert ShareConfirmation.objects.count() == 1
    assert "t-1" not in ShareConfirmation.objects.get().token_hash  # only its hash is kept


@pytest.mark.django_db
def test_a_claim_names_the_share_it_made_or_is_released(owner, case, consultant):
    from tests.factories import GrantFactory

    grant = GrantFactory(organization=case.organization, case=case, grantee=consultant, created_by=owner)
    assert services.share_confirmation_claim(user=owner, token="made")[0]
    services.share_confirmation_made(user=owner, token="made", grant=grant)
    assert services.share_confirmation_claim(user=owner, token="made") == (False, str(grant.public_id))
    services.share_confirmation_release(user=owner, token="made")  # a share made is never released
    assert services.share_confirmation_claim(user=owner, token="made") == (False, str(grant.public_id))

    assert services.share_confirmation_claim(user=owner, token="refused")[0]
    services.share_confirmation_release(user=owner, token="refused")
    assert services.share_confirmation_claim(user=owner, token="refused") == (True, "")


def test_a_confirmation_older_than_a_session_is_reviewed_again_and_its_claim_pruned(owner, case, consultant,
                                                                                     settings):
    """Claims are kept as long as a session may send their token (SESSION_COOKIE_AGE), then pruned
    (the rows grew by one per share for ever); a session kept alive past that age by use still
    holds the token, which is then reviewed again rather than claimed anew (a second share)."""
    from datetime import timedelta

    from django.utils import timezone

    client = Client()
    client.force_login(owner)
    url = reverse("sharing:case_share", kwargs={"case_id": case.public_id})
    fields = confirmation(client)
    session = client.session
    issued = session[views.SHARE_CONFIRM_SESSION_KEY]
    issued[fields["confirm_token"]] -= settings.SESSION_COOKIE_AGE + 1
    session[views.SHARE_CONFIRM_SESSION_KEY] = issued
    session.save()
    page = client.post(url, {**FORM, "recipient_email": consultant.email, **fields})
    assert page.status_code == 200 and b"confirm_token" in page.content  # the review, again
    assert not Grant.objects.exists() and not ShareConfirmation.objects.exists()

    old = ShareConfirmation.objects.create(token_hash="a" * 64, user=owner)
    ShareConfirmation.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - timedelta(seconds=settings.SESSION_COOKIE_AGE + 60))
    recent = ShareConfirmation.objects.create(token_hash="b" * 64, user=owner)
    assert services.share_confirmations_prune() == 1
    assert list(ShareConfirmation.objects.all()) == [recent]
