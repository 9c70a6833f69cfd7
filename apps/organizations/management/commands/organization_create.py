"""Create an organization and its first org admin (the admin site is read-only, so this is how
an organization is onboarded):

    manage.py organization_create --slug st-elsewhere --name "St Elsewhere" --admin-email a@example.org

The first admin is added the way an org admin adds staff (a member first; a new account gets an
e-mail with a one-time link to set its password; an existing account simply gains the
membership). They sign in, enrol their second factor and take it from there in the portal
(members, single sign-on, policy). Recorded in the new organization's audit trail
(organization.created, membership.added). A slug already taken is refused with nothing changed."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.organizations.services import organization_create, password_link_send


class Command(BaseCommand):
    help = "Create an organization and make the given e-mail its first org admin."

    def add_arguments(self, parser):
        parser.add_argument("--slug", required=True, help="short name: lower-case letters, digits, hyphens")
        parser.add_argument("--name", required=True, help="the organization's name as people read it")
        parser.add_argument("--admin-email", required=True, help="e-mail of the first org admin")
        parser.add_argument("--admin-name", default="", help="full name of the first org admin (new account)")

    def handle(self, *args, **options):
        try:
            organization, membership, created = organization_create(
                slug=options["slug"], name=options["name"], admin_email=options["admin_email"],
                admin_name=options["admin_name"])
        except ValidationError as exc:
            fields = getattr(exc, "message_dict", None) or {"": exc.messages}
            lines = [f"--{field.replace('_', '-')}: {m}" if field else m
                     for field, messages in fields.items() for m in messages]
            raise CommandError("\n".join(lines)) from None
        user = membership.user
        if created and password_link_send(user=user):  # after the commit: the account exists for the link
            how = "a new account; an e-mail with a link to set its password was sent"
        elif created:
            how = ("a new account; the e-mail with a link to set its password could not be sent: once e-mail "
                   "works, they ask for one with 'Forgot your password?' on the sign-in page")
        else:
            how = "an existing account; they sign in as before"
        self.stdout.write(f"created organization {organization.slug} ({organization.name}); "
                          f"first org admin {user.email}: {how}")
