"""Field encryption for small secrets kept in the database (an SSO client secret).

Fernet (AES-128-CBC + HMAC-SHA256) with keys from ``LIGHTBOX_FIELD_ENCRYPTION_KEY``: a
comma-separated list of Fernet keys, the first encrypts, all decrypt (add a new key first to
rotate). The embedded default keeps one generated key in var/, like the secret key.
"""

from __future__ import annotations

from functools import cache

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings


@cache
def _fernet(keys: str) -> MultiFernet:
    return MultiFernet([Fernet(k.strip().encode()) for k in keys.split(",") if k.strip()])


def encrypt(value: str) -> str:
    return _fernet(settings.LIGHTBOX_FIELD_ENCRYPTION_KEY).encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    return _fernet(settings.LIGHTBOX_FIELD_ENCRYPTION_KEY).decrypt(token.encode()).decode()
