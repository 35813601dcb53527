"""Signed download links: `/d/ITEM_ID?e=EXPIRY&s=SIG`, SIG = HMAC-SHA256(secret, "ITEM_ID.EXPIRY").

Light on purpose: workers import it to write download_item.url, the web child to check it.
"""

from __future__ import annotations

import hashlib
import hmac
import time


def signature(secret: str, item_id: int, expiry: int) -> str:
    message = f"{item_id}.{expiry}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_url(public_url: str, secret: str, item_id: int, expires_in: int, now: float | None = None) -> str:
    """The link written to download_item.url, valid `expires_in` seconds from now."""
    expiry = int(time.time() if now is None else now) + int(expires_in)
    return f"{public_url}/d/{item_id}?e={expiry}&s={signature(secret, item_id, expiry)}"


def valid(secret: str, item_id: int, expiry: str, sig: str) -> bool:
    """Whether `sig` signs this item and expiry (constant time); says nothing about the time."""
    if not expiry.isdigit() or not sig:
        return False
    return hmac.compare_digest(signature(secret, item_id, int(expiry)), sig)
