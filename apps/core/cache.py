"""The shared cache (Redis), read as empty while Redis cannot be reached.

The cache holds only counters that slow down guessing: allauth's per-address sign-in and
password-reset throttles, the invitation-token lockout and the lock on the code that confirms an
authenticator being enrolled (``apps.accounts.brute_force``), and the one-use nonces of the links
"Sign in with your organization" e-mails (``apps.accounts.sso``: while Redis is away such a link
leads nowhere, and the person asks again or uses their organization's own sign-in address).
Django's Redis backend raises when Redis is down or restarting, and every sign-in (even with the
right password), password reset and invitation page was a 500. Here a connection error or time
out is logged and the cache answers as an empty one that keeps nothing (``get`` the default,
``add`` stored, ``incr`` a missing key): those throttles rest until Redis answers again. What
locks an account after wrong passwords (django-axes) and wrong second-factor codes
(``apps.accounts.mfa``) is kept in the database and still applies, invitation tokens are 256
random bits: no guessing gets anywhere in that time, and the key being enrolled is a secret of
the very session that posts codes for it (whoever holds the session reads it on the page).
Sessions are in the database too.
"""

from __future__ import annotations

import logging
from functools import wraps

from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

UNREACHABLE = (RedisConnectionError, RedisTimeoutError)


def _answering(when_down):
    """The method, answering ``when_down(*args)`` while Redis cannot be reached."""

    def wrap(method):
        @wraps(method)
        def call(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except UNREACHABLE as exc:
                logger.warning(
                    "cache unreachable (%s): %s answered as an empty cache", type(exc).__name__, method.__name__
                )
                return when_down(*args, **kwargs)

        return call

    return wrap


def _incr_missing(key, *_args, **_kwargs):
    raise ValueError(f"Key '{key}' not found.")  # Django's answer for a key the cache does not hold


class ResilientRedisCache(RedisCache):
    add = _answering(lambda *a, **k: True)(RedisCache.add)
    get = _answering(lambda key, default=None, *a, **k: default)(RedisCache.get)
    set = _answering(lambda *a, **k: None)(RedisCache.set)
    touch = _answering(lambda *a, **k: False)(RedisCache.touch)
    delete = _answering(lambda *a, **k: False)(RedisCache.delete)
    get_many = _answering(lambda *a, **k: {})(RedisCache.get_many)
    has_key = _answering(lambda *a, **k: False)(RedisCache.has_key)
    incr = _answering(_incr_missing)(RedisCache.incr)
    set_many = _answering(lambda data, *a, **k: list(data))(RedisCache.set_many)
    delete_many = _answering(lambda *a, **k: None)(RedisCache.delete_many)
    clear = _answering(lambda *a, **k: False)(RedisCache.clear)
