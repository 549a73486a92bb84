"""The scopes Authority knows, and parsing of scope strings (RFC 6749 §3.3)."""

from __future__ import annotations

import re

from authority.errors import InvalidInput

SCOPES: dict[str, str] = {
    "openid": "Sign in with OpenID Connect",
    "profile": "Name and verified attributes",
    "email": "E-mail address",
    "phone": "Phone number",
    "business": "The business you act for",
    "offline_access": "Stay signed in (refresh tokens)",
    "licences:issue": "Issue licences (agency back-ends)",
    "licences:revoke": "Revoke, suspend and reinstate licences (agency back-ends)",
    "licences:read": "Read licences (agency back-ends)",
}

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]+$")


def parse_scope(scope: str | None) -> list[str]:
    """The scope tokens of a space-delimited scope string, in order, without repeats."""
    if not scope:
        return []
    tokens = scope.split(" ")
    if any(not _SCOPE_TOKEN.match(token) for token in tokens):
        raise InvalidInput("scope must be space-separated tokens of printable ASCII")
    return list(dict.fromkeys(tokens))
