"""A sign-out closes the viewer sessions its browser session opened (reason ``signed_out``).

Every way a person is signed out goes through Django's ``logout()`` (the "Sign out" button,
the idle limit and an ended single sign-on session in apps.accounts.middleware and
apps.accounts.sso), which sends ``user_logged_out`` before it empties the browser session.
The page's own close (a beacon as it is left) comes after the sign-out, from a browser whose
session no longer lists the viewer session, so without this the session stayed open until the
idle sweep closed it (``timeout``) and the trail overstated the viewing time."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver


@receiver(user_logged_out, dispatch_uid="viewer_sessions_signed_out")
def _signed_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    session = getattr(request, "session", None)
    if session is None:
        return
    # the views' list of the browser session's viewer sessions: {key: [study, opened at, opener]}
    from apps.viewer.sessions import viewer_sessions_close_signed_out
    from apps.viewer.views import SESSIONS_KEY

    listed = session.get(SESSIONS_KEY)
    if not isinstance(listed, dict):
        return
    # only this browser session's, and only those the person signing out opened (the views'
    # _own_sessions): the same person's viewers on another device are in another browser session
    # and stay open; a link holder's left in this one lost their link when the person signed in
    opener = user.pk if getattr(user, "is_authenticated", False) else None
    keys = [key for key, opened in listed.items()
            if isinstance(opened, list | tuple) and (opened[2] if len(opened) > 2 else None) == opener]
    if keys:
        viewer_sessions_close_signed_out(keys=keys, request=request)
