"""manage.py organization_create: an organization and its first org admin, through the services,
recorded, refusing bad input and a second run with the same slug (nothing changed)."""

from __future__ import annotations

import io

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.organizations.models import Membership, Organization, Role
from apps.sharing import policy
from apps.sharing.policy import Action
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _run(**options) -> str:
    out = io.StringIO()
    call_command("organization_create", stdout=out, **options)
    return out.getvalue()


def _snapshot():
    return (list(Organization.objects.values_list("slug", "name")), Membership.objects.count(),
            User.objects.count(), AuditEvent.objects.count(), len(mail.outbox))


def test_creates_the_organization_and_its_first_admin_with_a_link_to_set_a_password():
    out = _run(slug="st-elsewhere", name="St Elsewhere", admin_email=" First.Admin@Elsewhere.example ",
               admin_name="Ada Admin")
    org = Organization.objects.get(slug="st-elsewhere")
    assert org.name == "St Elsewhere"
    user = User.objects.get(email="first.admin@elsewhere.example")
    assert not user.has_usable_password() and user.full_name == "Ada Admin"
    membership = Membership.objects.get(user=user, organization=org)
    assert (membership.role, membership.is_active) == (Role.ORG_ADMIN, True)
    assert policy.can(user, Action.MANAGE_MEMBERS, org) and policy.can(user, Action.MANAGE_ORGANIZATION, org)
    # the one e-mail: a link to set a password, nothing else
    [message] = mail.outbox
    assert message.to == ["first.admin@elsewhere.example"] and "/accounts/password/reset/key/" in message.body
    events = list(AuditEvent.objects.filter(organization=org).order_by("seq").values_list(
        "action", "actor_type", "outcome"))
    assert events == [("organization.created", "system", "allowed"), ("membership.added", "system", "allowed")]
    assert "st-elsewhere" in out and "first.admin@elsewhere.example" in out


def test_an_existing_account_becomes_the_admin_without_a_new_password():
    existing = UserFactory(email="known@elsewhere.example")
    _run(slug="elsewhere", name="Elsewhere", admin_email="known@elsewhere.example")
    assert Membership.objects.get(user=existing, organization__slug="elsewhere").role == Role.ORG_ADMIN
    assert existing.has_usable_password() and mail.outbox == []


def test_a_second_run_with_the_same_slug_is_refused_and_changes_nothing():
    _run(slug="twice", name="Twice", admin_email="one@twice.example")
    before = _snapshot()
    with pytest.raises(CommandError, match="already exists; nothing was changed") as exc:
        _run(slug="twice", name="Twice again", admin_email="two@twice.example")
    assert exc.value.returncode != 0
    assert _snapshot() == before
    assert not User.objects.filter(email="two@twice.example").exists()


@pytest.mark.parametrize(("options", "field"), [
    ({"slug": "Bad Slug!", "name": "X", "admin_email": "a@x.example"}, "--slug"),
    ({"slug": "under_score", "name": "X", "admin_email": "a@x.example"}, "--slug"),
    ({"slug": "x" * 61, "name": "X", "admin_email": "a@x.example"}, "--slug"),
    ({"slug": "ok", "name": "   ", "admin_email": "a@x.example"}, "--name"),
    ({"slug": "ok", "name": "X" * 201, "admin_email": "a@x.example"}, "--name"),
    ({"slug": "ok", "name": "X", "admin_email": "not-an-address"}, "--admin-email"),
])
def test_bad_input_is_refused_clearly_and_changes_nothing(options, field):
    before = _snapshot()
    with pytest.raises(CommandError) as exc:
        _run(**options)
    assert str(exc.value).startswith(field)
    assert _snapshot() == before


def test_the_command_exits_non_zero_from_the_shell(tmp_path):
    """As an operator runs it: a refusal is an exit code, not a traceback."""
    import subprocess
    import sys

    from tests.servers import ROOT, clean_env

    result = subprocess.run([sys.executable, "manage.py", "organization_create", "--slug", "Bad Slug",
                             "--name", "X", "--admin-email", "a@x.example"], cwd=ROOT, capture_output=True,
                            text=True, env=clean_env(LIGHTBOX_VAR_DIR=str(tmp_path)))
    assert result.returncode != 0
    assert "--slug:" in result.stderr and "Traceback" not in result.stderr


def test_membership_add_still_needs_manage_members(org_a, clinician_a):
    from django.core.exceptions import PermissionDenied

    from apps.organizations.services import membership_add

    with pytest.raises(PermissionDenied):
        membership_add(organization=org_a, by=clinician_a, email="x@alpha.example", role=Role.ORG_ADMIN)


def test_created_while_mail_is_down_says_the_link_was_not_sent(settings):
    """The organization and its admin are kept; the operator is told to have the admin use
    'Forgot your password?' once mail works (a second run would be refused: the slug exists)."""
    settings.EMAIL_BACKEND = "tests.organizations.test_members.DownMailServer"
    out = _run(slug="st-elsewhere", name="St Elsewhere", admin_email="first.admin@elsewhere.example")
    assert Membership.objects.filter(organization__slug="st-elsewhere", role=Role.ORG_ADMIN).exists()
    assert "could not be sent" in out


@pytest.mark.parametrize(("options", "field"), [
    ({"slug": "ok", "name": "X", "admin_email": "a@x.example", "admin_name": "N" * 201}, "--admin-name"),
    ({"slug": "ok", "name": "X", "admin_email": "a" * 64 + "@" + ".".join(["b" * 63] * 3) + ".example"},
     "--admin-email"),
])
def test_a_too_long_admin_name_or_address_is_refused_clearly(options, field):
    """The columns hold 200 characters of name and 254 of address: longer is refused like any bad
    input (not a database error's traceback), with nothing changed."""
    before = _snapshot()
    with pytest.raises(CommandError) as exc:
        _run(**options)
    assert str(exc.value).startswith(field)
    assert _snapshot() == before


def test_a_deactivated_account_is_not_made_the_first_admin():
    """It could not sign in: the organization would start with no admin able to act."""
    UserFactory(email="gone@elsewhere.example", is_active=False)
    before = _snapshot()
    with pytest.raises(CommandError, match="deactivated"):
        _run(slug="st-elsewhere", name="St Elsewhere", admin_email="gone@elsewhere.example")
    assert _snapshot() == before
