"""The share page's confirmation, for tests that post it without going through the review: the
one-time token a review would have issued (apps.sharing.views._share_confirm_issue), put in the
client's session. A confirmation without one is reviewed again, not created."""

from __future__ import annotations

import secrets
import time

from django.test import Client

from apps.sharing.views import SHARE_CONFIRM_SESSION_KEY


def confirmation(client: Client) -> dict[str, str]:
    """The fields that confirm a share once: ``{"confirm": "1", "confirm_token": ...}``."""
    token = secrets.token_urlsafe(16)
    session = client.session
    session[SHARE_CONFIRM_SESSION_KEY] = {**session.get(SHARE_CONFIRM_SESSION_KEY, {}), token: int(time.time())}
    session.save()
    return {"confirm": "1", "confirm_token": token}
