"""Which client a token request claims to be, for throttling failed client authentication
(RFC 6749 §2.3, §5.2).

A client whose authentication keeps failing from one address is slowed, then
locked for a while (``identity.throttle.CLIENT_POLICY``), with counters in the
database shared by every worker. The key is the client id the request claims
together with the address: guessing a high-entropy secret is hopeless anyway,
and a stranger who knows an agency's client id cannot lock it out from elsewhere.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from urllib.parse import unquote

import jwt

__all__ = ["claimed_client_id"]

MAX_CLIENT_ID = 128


def claimed_client_id(headers: Mapping[str, str], form: Mapping[str, str]) -> str | None:
    """The client id a token request names, unverified: only a throttle key."""
    authorization = headers.get("authorization", "")
    claimed: str | None = None
    if authorization[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(authorization[6:], validate=True).decode("utf-8")
        except ValueError:  # binascii.Error, UnicodeDecodeError, non-ASCII text
            decoded = ""
        # RFC 6749 §2.3.1: the client id is form-urlencoded before Basic encoding.
        claimed = unquote(decoded.partition(":")[0]) or None
    elif form.get("client_id"):
        claimed = form["client_id"]
    elif form.get("client_assertion"):
        # RFC 7523 §3: iss (and sub) name the client; not verified here.
        try:
            issuer = jwt.decode(form["client_assertion"], options={"verify_signature": False})
        except jwt.PyJWTError:
            issuer = {}
        value = issuer.get("iss") if isinstance(issuer, dict) else None
        claimed = value if isinstance(value, str) else None
    if claimed is None or not 0 < len(claimed) <= MAX_CLIENT_ID:
        return None
    return claimed
