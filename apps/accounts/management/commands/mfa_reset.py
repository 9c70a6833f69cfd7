"""Reset an account's second factor, as the operator: for a person who is a member of several
organizations, whose second factor no single organization's admin may reset
(``policy.second_factor_reset_allowed``):

    manage.py mfa_reset person@hospital.example

Their authenticator and recovery codes are removed and every session of theirs ends; they set
a second factor up again at their next sign-in. Recorded in the audit trail (auth.mfa_reset and
auth.sessions_ended, by the system). Check who is asking before running it: the operator is the
one who can."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import User
from apps.accounts.services import mfa_reset


class Command(BaseCommand):
    help = "Reset an account's second factor (a person of several organizations): they enrol again at next sign-in."

    def add_arguments(self, parser):
        parser.add_argument("email", help="the account's e-mail address")

    def handle(self, *args, **options):
        user = User.objects.filter(email=options["email"].strip().lower()).first()
        if user is None:
            raise CommandError("No account has this e-mail address.")
        mfa_reset(user=user, by=None)
        self.stdout.write("Second factor reset; every session ended. They set it up again at their next sign-in.")
