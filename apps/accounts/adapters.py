"""allauth behaviour for Lightbox.

Nobody signs themselves up: staff accounts are made by an org admin (or SSO), consultants and
patients arrive by invitation. So the open sign-up form is closed.
"""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from django.http import HttpRequest


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False
