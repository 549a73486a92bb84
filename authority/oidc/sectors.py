"""Sector identifiers (OIDC Core §8.1, OIDC Dynamic Client Registration §2).

A client whose redirect URIs are on several hosts names a
``sector_identifier_uri``: an https URL answering a JSON array of URLs that
must contain every redirect URI the client registers. The host of that URL
is then the client's pairwise sector. The document is fetched once, at
registration, with a short timeout, a size cap and no redirects; plain http
is allowed only for loopback hosts, and never in production.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from authority.errors import InvalidInput

FETCH_TIMEOUT_SECONDS = 5
MAX_DOCUMENT_BYTES = 64 * 1024
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class InvalidSectorIdentifier(InvalidInput):
    """The sector_identifier_uri is unusable, unreachable, or does not list the redirect URIs."""

    slug = "invalid-sector-identifier"
    title = "Invalid sector identifier"


@dataclass(frozen=True)
class SectorDocument:
    """A fetched sector identifier document: its URL and the URLs it lists."""

    uri: str
    listed: frozenset[str]

    @property
    def sector(self) -> str:
        """The pairwise sector: the URL's host (OIDC Core §8.1)."""
        return sector_of_uri(self.uri)

    def check_covers(self, redirect_uris: Sequence[str]) -> None:
        """OIDC Registration §2: every redirect URI must be in the document."""
        missing = [uri for uri in redirect_uris if uri not in self.listed]
        if missing:
            raise InvalidSectorIdentifier(
                f"sector_identifier_uri {self.uri} does not list the redirect URI(s) "
                f"{', '.join(missing)}; its JSON array must contain every one"
            )


def sector_of_uri(uri: str) -> str:
    """The host a sector_identifier_uri names."""
    return urlsplit(uri).hostname or uri


def check_sector_uri(uri: str, *, allow_loopback_http: bool) -> str:
    """``uri`` if it may be a sector_identifier_uri: https (or http on loopback if allowed)."""
    parts = urlsplit(uri)
    if not parts.hostname or parts.scheme not in ("https", "http") or "#" in uri:
        raise InvalidSectorIdentifier(
            f"sector_identifier_uri {uri!r} must be an absolute https URL without a fragment"
        )
    if parts.scheme == "http" and not (allow_loopback_http and parts.hostname in LOOPBACK_HOSTS):
        where = "on a loopback host outside production" if allow_loopback_http else "never here"
        raise InvalidSectorIdentifier(
            f"sector_identifier_uri {uri!r} must use https (plain http only {where})"
        )
    return uri


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects are answers, not followed: the document must be at the registered URL."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def fetch_sector_document(uri: str, *, allow_loopback_http: bool) -> SectorDocument:
    """Fetch and parse the sector identifier document at ``uri`` (a JSON array of strings)."""
    check_sector_uri(uri, allow_loopback_http=allow_loopback_http)
    opener = urllib.request.build_opener(_NoRedirects)
    request = urllib.request.Request(uri, headers={"Accept": "application/json"})  # noqa: S310 - checked scheme
    try:
        with opener.open(request, timeout=FETCH_TIMEOUT_SECONDS) as answer:
            body: bytes = answer.read(MAX_DOCUMENT_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise InvalidSectorIdentifier(
            f"sector_identifier_uri {uri} answered HTTP {exc.code} (redirects are not followed)"
        ) from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InvalidSectorIdentifier(
            f"sector_identifier_uri {uri} could not be fetched: {reason}"
        ) from None
    if len(body) > MAX_DOCUMENT_BYTES:
        raise InvalidSectorIdentifier(
            f"sector_identifier_uri {uri} answered more than {MAX_DOCUMENT_BYTES} bytes"
        )
    try:
        listed = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidSectorIdentifier(
            f"sector_identifier_uri {uri} did not answer JSON: {exc}"
        ) from None
    if not isinstance(listed, list) or not all(isinstance(item, str) for item in listed):
        raise InvalidSectorIdentifier(
            f"sector_identifier_uri {uri} must answer a JSON array of redirect URI strings"
        )
    return SectorDocument(uri, frozenset(listed))
