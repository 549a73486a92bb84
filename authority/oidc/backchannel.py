"""OpenID Connect Back-Channel Logout 1.0: when a provider session ends, every
portal that received tokens in it gets a signed logout token, server to server.

Logout tokens are made inside the unit of work that ends the session and
delivered after it commits (the web layer runs :func:`deliver` once the
response is sent), so a slow portal never holds a database transaction.
"""

from __future__ import annotations

import logging
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from authority.identity.models import Citizen, LoginSession
from authority.oidc.clients import ClientSecretKey, find_client
from authority.oidc.issuance import pairwise_subject
from authority.oidc.models import AuthorizationCode
from authority.oidc.tokens import TOKEN_PURPOSE, SigningKeyMissing, current_signing_key, jws_compact
from authority.pki.keystore import KeyStore

log = logging.getLogger(__name__)

LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_LIFETIME = timedelta(minutes=2)
DELIVERY_TIMEOUT_SECONDS = 5


@dataclass(frozen=True)
class LogoutNotice:
    """A logout token and where to post it."""

    client_id: str
    uri: str
    logout_token: str


def logout_notices(
    session: Session,
    keystore: KeyStore,
    key: ClientSecretKey,
    issuer: str,
    login: LoginSession,
    now: datetime,
) -> list[LogoutNotice]:
    """One logout token (Back-Channel Logout §2.4) per portal the session gave tokens to."""
    client_ids = session.scalars(
        select(AuthorizationCode.client_id)
        .where(
            AuthorizationCode.session_id == login.id,
            AuthorizationCode.used_at.is_not(None),
        )
        .distinct()
    ).all()
    citizen = session.get(Citizen, login.citizen_id)
    signing = current_signing_key(session, TOKEN_PURPOSE)
    if signing is None:
        raise SigningKeyMissing("no token-signing key exists: run `authority init`")
    notices = []
    for client_id in sorted(client_ids):
        client = find_client(session, client_id)
        if client is None or not client.backchannel_logout_uri or citizen is None:
            continue
        issued = int(now.timestamp())
        claims: dict[str, Any] = {
            "iss": issuer,
            "sub": pairwise_subject(key, client, citizen),
            "aud": client_id,
            "iat": issued,
            "exp": issued + int(LOGOUT_TOKEN_LIFETIME.total_seconds()),
            "jti": secrets.token_urlsafe(16),
            "sid": login.id,
            # §2.4: events names the logout event; a logout token never has a nonce.
            "events": {LOGOUT_EVENT: {}},
        }
        token = jws_compact(keystore, signing, "logout+jwt", claims)
        notices.append(LogoutNotice(client_id, client.backchannel_logout_uri, token))
    return notices


def deliver(notices: list[LogoutNotice]) -> None:
    """POST each logout token (§2.5); a portal that fails is logged, not retried."""
    for notice in notices:
        body = urlencode({"logout_token": notice.logout_token}).encode("ascii")
        request = urllib.request.Request(  # noqa: S310 - registered http(s) URIs only
            notice.uri,
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=DELIVERY_TIMEOUT_SECONDS) as answer:  # noqa: S310
                status = answer.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            log.warning("back-channel logout to %s failed: %s", notice.client_id, exc)
            continue
        if status != 200:
            log.warning("back-channel logout to %s answered %s", notice.client_id, status)
