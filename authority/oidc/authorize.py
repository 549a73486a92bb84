"""The authorization endpoint (RFC 6749 §4.1.1, OIDC Core §3.1.2) as an ordered
pipeline, and pushed authorization requests (RFC 9126).

A request is validated (client, exact redirect URI, PKCE S256, scope, prompt,
max_age) and stored; then each visit of the browser asks :meth:`resume` what
comes next: the login page, the business choice, the consent page, or the
redirect back to the client with a code or an error. Errors go to the
redirect URI only once it is verified (RFC 6749 §4.1.2.1), and every
redirect carries ``iss`` (RFC 9207 §2).

A stored request is bound to the browser that started it (or, for a pushed
request, that first used its ``request_uri``): the web layer gives that browser
a random binding value in a cookie, the request keeps its SHA-256, and every
later step refuses a browser without it (login CSRF and session fixation:
a request sent to someone else's browser cannot be continued there).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749 import (
    AccessDeniedError,
    InvalidClientError,
    InvalidRequestError,
    OAuth2Error,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oidc.core.errors import (
    ConsentRequiredError,
    InteractionRequiredError,
    LoginRequiredError,
    RequestNotSupportedError,
)
from sqlalchemy import Table

from authority.db.bulk import add_written, spend, spend_statement
from authority.identity.accounts import mandates
from authority.identity.assurance import LEVELS, satisfies
from authority.identity.models import Citizen, LoginSession
from authority.oidc.consent import has_consent
from authority.oidc.grants import Person
from authority.oidc.models import AuthorizationRequest
from authority.oidc.scopes import parse_scope
from authority.oidc.server import InvalidDPoPProofError

if TYPE_CHECKING:
    from authority.oidc.server import AuthorityServer

PAR_URN = "urn:ietf:params:oauth:request_uri:"
PAR_LIFETIME = timedelta(seconds=90)  # RFC 9126 §2.2: short-lived
REQUEST_LIFETIME = timedelta(minutes=30)  # the time a person has to log in and consent
PROMPTS = frozenset({"none", "login", "consent", "select_account"})
_THUMBPRINT = re.compile(r"[A-Za-z0-9_-]{43}")
# Marks in the stored parameters, never accepted from the client.
_CONSENTED = "authority:consented"
# A request is finished once (authority.db.bulk.spend).
_FINISH = spend_statement(
    cast(Table, AuthorizationRequest.__table__), "id", ["used_at"], ["used_at"]
)


class RequestOfAnotherBrowser(InvalidRequestError):  # type: ignore[misc]
    """The request was started in another browser, or this one lost its binding cookie.

    Never redirected to the client: the request may not be this browser's.
    """

    status_code = 403

    def __init__(self) -> None:
        super().__init__(
            description="this login was started in another browser, or the browser "
            "refused its cookie; go back to the website and start again"
        )


def browser_hash(binding: str) -> str:
    """What a request stores of its browser's binding value."""
    return hashlib.sha256(binding.encode("ascii", "replace")).hexdigest()


@dataclass(frozen=True)
class Step:
    """What the browser does next."""

    kind: str  # redirect | login | business | consent | error
    location: str | None = None
    request_id: str | None = None
    error: OAuth2Error | None = None
    # The person must give a second factor even if their account does not require one.
    step_up: bool = False


def _request(issuer: str, params: dict[str, str]) -> OAuth2Request:
    request = OAuth2Request("GET", f"{issuer}/oauth/authorize")
    request.payload = BasicOAuth2Payload(dict(params))
    return request


class AuthorizationEndpoint:
    """Serves authorization requests for one :class:`AuthorityServer`."""

    def __init__(self, server: AuthorityServer, browser: str | None = None) -> None:
        """``browser``: the binding value the browser's cookie carries, if any."""
        self.server = server
        self.provider = server.provider
        self.browser = browser
        # The requests this endpoint read (locked) or stored in its unit of work, by id:
        # read once, then seen as this unit of work changes them (see :meth:`_live`).
        self._held: dict[str, AuthorizationRequest] = {}

    # -- entry points ---------------------------------------------------------

    def start(self, request: OAuth2Request, login: LoginSession | None) -> Step:
        """A new authorization request from the browser (query or form)."""
        params = {k: v for k, v in request.payload.data.items() if not k.startswith("authority:")}
        try:
            if "request" in params:
                raise RequestNotSupportedError(description="request objects are not supported")
            record = self._pushed(params) if "request_uri" in params else None
            if record is None:
                client = self.server.query_client(params.get("client_id"))
                if client is not None and client.record.require_par:
                    # RFC 9126 §5: this client must push its requests.
                    raise InvalidRequestError(
                        description="this client must use pushed authorization requests"
                    )
                grant = self.server.get_consent_grant(request)
                self._check_oidc(grant.request)
                record = self._store(grant.request, pushed=False)
        except OAuth2Error as error:
            return self._error(error)
        return self.resume(record.id, login)

    def push(self, request: OAuth2Request, client_id: str) -> dict[str, Any]:
        """RFC 9126 §2: validate and store a pushed request; its request_uri and lifetime."""
        if request.payload.data.get("client_id", client_id) != client_id:
            raise InvalidRequestError(description="client_id differs from the authenticated client")
        if "request_uri" in request.payload.data:
            raise InvalidRequestError(description="request_uri is not allowed in a pushed request")
        request.payload.data["client_id"] = client_id
        self._bind_dpop_key(request)
        grant = self.server.get_consent_grant(request)
        self._check_oidc(grant.request)
        record = self._store(grant.request, pushed=True)
        return {"request_uri": PAR_URN + record.id, "expires_in": int(PAR_LIFETIME.total_seconds())}

    def resume(
        self, request_id: str, login: LoginSession | None, *, decision: bool | None = None
    ) -> Step:
        """What comes next for a stored request, given the browser's session."""
        record = self.pending(request_id)
        if record is None:
            return self.refusal(request_id) or Step("error", error=InvalidRequestError())
        request = _request(self.provider.issuer, record.params)
        try:
            grant = self.server.get_consent_grant(request)
            redirect_uri = grant.request.payload.redirect_uri
            return self._next(record, grant, login, decision, redirect_uri)
        except OAuth2Error as error:
            return self._error(error)

    def pending(self, request_id: str) -> AuthorizationRequest | None:
        """The stored, unexpired, unfinished request with this id, started by this browser."""
        record = self._live(request_id)
        return record if record is not None and self._bound(record) else None

    def refusal(self, request_id: str) -> Step | None:
        """Why this browser may not go on with ``request_id`` (an error step), or None."""
        record = self._live(request_id)
        if record is None:
            return Step(
                "error", error=InvalidRequestError(description="unknown or expired request")
            )
        if not self._bound(record):
            return Step("error", error=RequestOfAnotherBrowser())
        return None

    def of_another_browser(self, request_id: str) -> bool:
        """Whether ``request_id`` is a live request this browser did not start."""
        record = self._live(request_id)
        return record is not None and not self._bound(record)

    def _live(self, request_id: str) -> AuthorizationRequest | None:
        """The stored request ``request_id`` if unexpired and unfinished, locked for this
        unit of work (FOR UPDATE where the database has it).

        Read from the database once per unit of work: the row stays locked until the
        unit of work ends (on SQLite, a reading unit of work keeps one snapshot), so a
        later look-up in the same unit of work sees the object as this unit of work
        changed it, with the same checks, without another query.
        """
        if not request_id or len(request_id) > 64:
            return None
        record = self._held.get(request_id)
        if record is None:
            record = self.provider.session.get(
                AuthorizationRequest, request_id, with_for_update=True
            )
            if record is not None:
                self._held[request_id] = record
        if record is None or record.used_at is not None or record.expires_at <= self.provider.now:
            return None
        return record

    def _bound(self, record: AuthorizationRequest) -> bool:
        """Whether this browser's binding value is the one the request stored."""
        if self.browser is None or record.browser_hash is None:
            return False
        return hmac.compare_digest(record.browser_hash, browser_hash(self.browser))

    def _bind(self, record: AuthorizationRequest) -> None:
        record.browser_hash = browser_hash(self.browser) if self.browser else None

    def choose_business(self, request_id: str, login: LoginSession, uscc: str) -> Step:
        """The person acts for the business ``uscc`` (one they represent now)."""
        record = self.pending(request_id)
        citizen = self.provider.session.get(Citizen, login.citizen_id)
        if record is None or citizen is None:
            return self.resume(request_id, login)
        chosen = [
            m for m in mandates(self.provider.session, citizen, self.provider.now) if m.uscc == uscc
        ]
        if chosen:
            record.business = chosen[0].claim()
        return self.resume(request_id, login)

    # -- the pipeline ---------------------------------------------------------

    def _next(
        self,
        record: AuthorizationRequest,
        grant: Any,
        login: LoginSession | None,
        decision: bool | None,
        redirect_uri: str,
    ) -> Step:
        params = record.params
        prompt = set(params.get("prompt", "").split())
        state = params.get("state")
        scopes = parse_scope(params.get("authority:scope"))
        if decision is False:
            raise AccessDeniedError(
                description="the person declined", redirect_uri=redirect_uri, state=state
            )
        # OIDC Core §3.1.2.3: prompt=login, max_age and acr_values decide whether the
        # current session may be reused; a login made after this request always may.
        fresh = login is not None and login.auth_time >= record.created_at
        wanted = self._wanted_level(params)
        if login is None or (
            not fresh
            and (
                "login" in prompt
                or self._too_old(login, params)
                or (wanted is not None and not satisfies(login.acr, wanted))
            )
        ):
            if "none" in prompt:
                raise LoginRequiredError(redirect_uri=redirect_uri, state=state)
            return Step(
                "login", request_id=record.id, step_up=wanted is not None and wanted != LEVELS[0]
            )
        citizen = self.provider.session.get(Citizen, login.citizen_id)
        if citizen is None:
            raise LoginRequiredError(redirect_uri=redirect_uri, state=state)
        if "business" in scopes and record.business is None:
            if not mandates(self.provider.session, citizen, self.provider.now):
                raise AccessDeniedError(
                    description="the person represents no business",
                    redirect_uri=redirect_uri,
                    state=state,
                )
            if "none" in prompt:
                raise InteractionRequiredError(redirect_uri=redirect_uri, state=state)
            return Step("business", request_id=record.id)
        consented = params.get(_CONSENTED) == "1" or decision is True
        if not consented and (
            "consent" in prompt
            or not has_consent(self.provider.session, citizen, grant.request.client.record, scopes)
        ):
            if "none" in prompt:
                raise ConsentRequiredError(redirect_uri=redirect_uri, state=state)
            return Step("consent", request_id=record.id)
        if not self._finish(record):
            return Step(
                "error", error=InvalidRequestError(description="unknown or expired request")
            )
        grant.request.scope = " ".join(scopes)
        _status, _body, headers = grant.create_authorization_response(
            redirect_uri, Person(citizen, login, record.business)
        )
        return Step("redirect", location=self._with_iss(dict(headers)["Location"]))

    def _finish(self, record: AuthorizationRequest) -> bool:
        """Mark the request used; False if it was since it was read (unreachable under
        its row lock or SQLite's write lock), and then nothing changed."""
        return spend(
            self.provider.session, record, _FINISH, record.id, {"used_at": self.provider.now}
        )

    def mark_consented(self, record: AuthorizationRequest) -> None:
        """The person agreed on the consent page for this request."""
        record.params = {**record.params, _CONSENTED: "1"}

    @staticmethod
    def _wanted_level(params: dict[str, str]) -> str | None:
        """The lowest eIDAS level among acr_values we know (OIDC Core §3.1.2.1)."""
        known = [v for v in params.get("acr_values", "").split() if v in LEVELS]
        return min(known, key=LEVELS.index) if known else None

    def _too_old(self, login: LoginSession, params: dict[str, str]) -> bool:
        max_age = params.get("max_age")
        if max_age is None:
            return False
        return self.provider.now - login.auth_time > timedelta(seconds=int(max_age))

    def _bind_dpop_key(self, request: OAuth2Request) -> None:
        """RFC 9449 §10.1: a pushed request's DPoP proof binds the code to its key.

        With ``dpop_jkt`` too, both must name the same key.
        """
        proof = self.server.dpop_proof(request, f"{self.provider.issuer}/oauth/par")
        if proof is None:
            return
        named = request.payload.data.get("dpop_jkt")
        if named is not None and named != proof.jkt:
            raise InvalidDPoPProofError(
                description="dpop_jkt is not the thumbprint of the DPoP proof's key"
            )
        request.payload.data["dpop_jkt"] = proof.jkt

    @staticmethod
    def _check_oidc(request: OAuth2Request) -> None:
        """OIDC Core §3.1.2.1 parameters authlib does not check."""
        data = request.payload.data
        redirect_uri = data.get("redirect_uri")
        state = data.get("state")
        prompt = data.get("prompt", "").split()
        if any(p not in PROMPTS for p in prompt) or ("none" in prompt and len(prompt) > 1):
            raise InvalidRequestError(
                description="prompt must be none alone, or any of login consent select_account",
                redirect_uri=redirect_uri,
                state=state,
            )
        max_age = data.get("max_age")
        if max_age is not None and (not max_age.isdigit() or len(max_age) > 9):
            raise InvalidRequestError(
                description="max_age must be a number of seconds",
                redirect_uri=redirect_uri,
                state=state,
            )
        dpop_jkt = data.get("dpop_jkt")
        if dpop_jkt is not None and not _THUMBPRINT.fullmatch(dpop_jkt):
            # RFC 9449 §10: the base64url SHA-256 JWK thumbprint (RFC 7638) of the key.
            raise InvalidRequestError(
                description="dpop_jkt must be a base64url SHA-256 JWK thumbprint",
                redirect_uri=redirect_uri,
                state=state,
            )
        if len(data.get("nonce", "")) > 512 or len(state or "") > 1024:
            raise InvalidRequestError(
                description="nonce or state is too long", redirect_uri=redirect_uri, state=state
            )

    def _store(self, request: OAuth2Request, *, pushed: bool) -> AuthorizationRequest:
        now = self.provider.now
        params = {k: v for k, v in request.payload.data.items() if not k.startswith("authority:")}
        params["authority:scope"] = request.scope or ""
        record = AuthorizationRequest(
            id=secrets.token_urlsafe(24),
            client_id=params["client_id"],
            params=params,
            pushed=pushed,
            business=None,
            browser_hash=None,
            created_at=now,
            expires_at=now + (PAR_LIFETIME if pushed else REQUEST_LIFETIME),
            used_at=None,
        )
        if not pushed:
            self._bind(record)
        add_written(self.provider.session, record)
        self._held[record.id] = record
        return record

    def _pushed(self, params: dict[str, str]) -> AuthorizationRequest:
        """RFC 9126 §4: the pushed request named by request_uri, once, for its client."""
        uri = params["request_uri"]
        record = self._live(uri.removeprefix(PAR_URN)) if uri.startswith(PAR_URN) else None
        if record is None or not record.pushed or record.client_id != params.get("client_id"):
            raise InvalidRequestError(description="request_uri is unknown, expired or used")
        if self.server.query_client(record.client_id) is None:
            raise InvalidClientError(description="the client is not registered")
        # One use: the browser's visit turns it into an ordinary stored request.
        record.pushed = False
        self._bind(record)
        record.created_at = self.provider.now
        record.expires_at = self.provider.now + REQUEST_LIFETIME
        return record

    def _error(self, error: OAuth2Error) -> Step:
        """Redirect to a verified redirect URI, else show the error (RFC 6749 §4.1.2.1)."""
        if error.redirect_uri:
            _status, _body, headers = error()
            return Step("redirect", location=self._with_iss(dict(headers)["Location"]), error=error)
        return Step("error", error=error)

    def _with_iss(self, location: str) -> str:
        # RFC 9207 §2: every authorization response, errors included, names the issuer.
        return str(add_params_to_uri(location, [("iss", self.provider.issuer)]))
