from __future__ import annotations

from celery import shared_task


# CELERY_TASK_ACKS_LATE is on for the others; eager_after_response: apps.core.queue
@shared_task(acks_late=False, drop_unsent=True, eager_after_response=True)
def sso_link_send_task(user_id: int, config_id: int) -> None:
    """E-mail the link on to an organization's single sign-on ("Sign in with your organization",
    ``sso.sso_link_send``), after the request that asked for it. Queued for every address typed,
    ids 0 for an address that is e-mailed nothing, so that the request does the same work for
    every address; such a message does nothing. Not acknowledged late: a message delivered again
    would send a second e-mail. Never sent later (``drop_unsent``, apps.core.queue): a send the
    broker refuses is dropped, not kept as an ``UnsentTask``; the person asks again, and the
    requests made while the broker was away are not e-mailed at once when it answers. Where tasks
    run eagerly (the embedded default), it runs once the response has been sent
    (``eager_after_response``), not in the request: the answer's time tells nothing."""
    if not user_id:
        return
    from apps.accounts.sso import sso_link_send

    sso_link_send(user_id=user_id, config_id=config_id)
