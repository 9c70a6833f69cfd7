"""Master keys: they wrap (encrypt) the per-blob and per-upload data keys, never data.

``LIGHTBOX_MASTER_KEYS`` = ``"keyid:base64key,keyid2:base64key2"``; the first is current (new
data keys are wrapped with it), the others still unwrap older keys until ``manage.py rotate_keys``
has re-wrapped them. The embedded default keeps one generated key in ``var/master_keys``.
"""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

WRAP_NONCE = 12


def parse_master_keys(value: str) -> dict[str, bytes]:
    """``"id:b64,id2:b64"`` -> ordered {id: 32-byte key}; raises on a malformed or short key and
    on a key id given twice (naming the id, never the key)."""
    keys: dict[str, bytes] = {}
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        kid, sep, b64 = item.partition(":")
        if not sep or not kid:
            raise ImproperlyConfigured("LIGHTBOX_MASTER_KEYS: each entry is keyid:base64key")
        if kid in keys:  # the later one replaced the first: a key added under an id in use
            raise ImproperlyConfigured(f"LIGHTBOX_MASTER_KEYS: key id {kid!r} is given more than once")
        key = base64.b64decode(b64)
        if len(key) != 32:
            raise ImproperlyConfigured(f"LIGHTBOX_MASTER_KEYS: key {kid!r} is not 32 bytes (AES-256)")
        keys[kid] = key
    if not keys:
        raise ImproperlyConfigured("LIGHTBOX_MASTER_KEYS holds no key")
    return keys


def master_keys() -> dict[str, bytes]:
    return parse_master_keys(settings.LIGHTBOX_MASTER_KEYS)


def current_key_id() -> str:
    return next(iter(master_keys()))


def wrap_key(data_key: bytes, *, aad: bytes, key_id: str | None = None) -> tuple[str, bytes]:
    """Encrypt a data key with a master key (the current one unless named). -> (key_id, wrapped)"""
    keys = master_keys()
    kid = key_id or next(iter(keys))
    nonce = os.urandom(WRAP_NONCE)
    return kid, nonce + AESGCM(keys[kid]).encrypt(nonce, data_key, b"lightbox-key:" + aad)


def unwrap_key(key_id: str, wrapped: bytes, *, aad: bytes) -> bytes:
    keys = master_keys()
    if key_id not in keys:
        raise ImproperlyConfigured(f"master key {key_id!r} is not in LIGHTBOX_MASTER_KEYS")
    wrapped = bytes(wrapped)
    return AESGCM(keys[key_id]).decrypt(wrapped[:WRAP_NONCE], wrapped[WRAP_NONCE:], b"lightbox-key:" + aad)
