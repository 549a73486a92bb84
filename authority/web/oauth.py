"""The Starlette adapter for authlib: our request in, ``(status, body, headers)`` out.

This is all the framework glue the provider needs (authlib ships no Starlette
server adapter): the form is read asynchronously before the synchronous
protocol code runs, and the URI handed to authlib is the public issuer URL,
whatever address the proxy in front of us used.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any
from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749 import OAuth2Payload, OAuth2Request
from fastapi import Depends, HTTPException, Request
from fastapi.responses import Response
from starlette.datastructures import Headers
from starlette.types import Scope

from authority.db.base import utcnow
from authority.identity.throttle import LoginThrottled, ThrottlePolicy
from authority.instance import Instance
from authority.oidc import client_throttle
from authority.oidc.client_credentials import GRANT_TYPE as CLIENT_CREDENTIALS
from authority.oidc.client_credentials import token_from_memory
from authority.oidc.server import AuthorityServer, Provider, json_body
from authority.web.deps import CurrentInstance, DbSession
from authority.web.hot import HotReply

FORM = "application/x-www-form-urlencoded"
MAX_FORM_FIELDS = 1000  # as Starlette's request.form()


class FormPayload(OAuth2Payload):  # type: ignore[misc]
    """The request's form parameters (RFC 6749 §3.2: the token endpoint takes a body)."""

    def __init__(self, values: list[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in values:
            # RFC 6749 §3.1: parameters sent without a value are treated as omitted.
            if value:
                self._datalist[key].append(value)
        self._data = {key: items[0] for key, items in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        """First value of each parameter."""
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        """Every value of each parameter (repeats are an error, RFC 6749 §3.2)."""
        return self._datalist


class FormRequest(OAuth2Request):  # type: ignore[misc]
    """An authlib request built from a Starlette request's already-read form."""

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Any,
        payload: FormPayload,
        args: dict[str, str],
        *,
        is_form: bool,
    ) -> None:
        super().__init__(method=method, uri=uri, headers=headers)
        self.payload = payload
        self._args = args
        #: Whether the body was application/x-www-form-urlencoded.
        self.is_form = is_form

    @property
    def args(self) -> dict[str, str]:
        """Query parameters."""
        return self._args

    @property
    def form(self) -> dict[str, str]:
        """Body parameters."""
        return dict(self.payload.data)


async def oauth_request(request: Request) -> FormRequest:
    """Read the form body (if any) and wrap the request for authlib."""
    values: list[tuple[str, str]] = []
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == FORM:
        # Parsed here rather than by request.form(): a token request's body is ~100 bytes,
        # and the multipart machinery cost more than the parsing. Same decoding as
        # Starlette's: octets as Latin-1, then percent-escapes as UTF-8, "+" as space.
        try:
            values = parse_qsl(
                (await request.body()).decode("latin-1"),
                keep_blank_values=True,
                max_num_fields=MAX_FORM_FIELDS,
            )
        except ValueError:
            raise HTTPException(400, f"more than {MAX_FORM_FIELDS} form fields") from None
    issuer = request.app.state.instance.settings.issuer
    # The raw query (no URL object built): a token request has none.
    query = request.scope.get("query_string", b"").decode("latin-1")
    return FormRequest(
        request.method,
        issuer + request.scope["path"] + (f"?{query}" if query else ""),
        request.headers,
        FormPayload(values),
        dict(request.query_params) if query else {},
        is_form=content_type == FORM,
    )


async def authorization_server(
    instance: CurrentInstance, session: DbSession, request: Request
) -> AuthorityServer:
    """The protocol core bound to this request's unit of work."""
    return AuthorityServer(provider_for(instance, session, request))


def provider_for(instance: Instance, session: Any, request: Request) -> Provider:
    """This request's :class:`Provider`."""
    return Provider(
        session=session,
        keystore=instance.keystore,
        issuer=instance.settings.issuer,
        secret_key=instance.client_secret_key,
        verifier=request.app.state.token_verifier,
        now=utcnow(),
        cache=instance.provider_cache,
    )


def token_response(instance: Instance, request: FormRequest, http: Request) -> Response:
    """The token endpoint's whole unit of work (RFC 6749 §3.2), committed before it returns.

    One synchronous call, so the hot path crosses to a worker thread once.
    """
    # Codes and refresh tokens are spent and stored: those grants take SQLite's write lock
    # up front. Client credentials only read (their tokens are self-contained).
    writes = request.form.get("grant_type") != "client_credentials"
    throttle = instance.authenticator.throttle
    client_id = client_throttle.claimed_client_id(request.headers, request.form)
    keys = _throttle_keys(instance, client_id, http)
    with instance.database.transaction(write=writes) as session:
        try:
            throttle.check(session, keys, utcnow())
        except LoginThrottled as exc:
            return throttled(exc)
        server = AuthorityServer(provider_for(instance, session, http))
        response = to_response(server.create_token_response(request))
    if response.status_code == 401 and keys:
        # RFC 6749 §5.2 invalid_client: counted in its own short write.
        with instance.database.transaction() as session:
            throttle.record_failure(session, keys, utcnow())
    return response


class HotTokenEndpoint:
    """The token endpoint's hot path (authority/web/hot.py): the answer when memory alone
    can give it.

    A plain client-credentials request from a client authenticating with its secret
    (:func:`~authority.oidc.client_credentials.token_from_memory`), whose address and
    client the throttle knows to be clear, reads and writes nothing, so it is answered
    on the event loop. Anything else, and any failure (it must be counted in the
    database), gets None: the token route then runs :func:`token_response` in a worker
    thread.
    """

    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self.cache = instance.provider_cache
        self.throttle = instance.authenticator.throttle
        self.issuer = instance.settings.issuer

    def __call__(self, scope: Scope, body: bytes) -> HotReply | None:
        """The token response to this request, or None to leave it to the token route."""
        headers = Headers(scope=scope)
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != FORM or "dpop" in headers:
            return None
        try:
            values = parse_qsl(
                body.decode("latin-1"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS
            )
        except ValueError:  # too many fields: the full path answers 400
            return None
        if ("grant_type", CLIENT_CREDENTIALS) not in values:
            # Other grants (a refresh, a code) are the token route's: declined before the
            # client look-up and the throttle keys' HMACs, which that route does again.
            return None
        payload = FormPayload(values)
        client_id = client_throttle.claimed_client_id(headers, payload.data)
        if client_id is None or self.cache.held(client_id) is None:
            return None
        now = utcnow()
        address = scope["client"][0] if scope.get("client") else None
        if not self.throttle.known_clear(self.throttle.client_keys(client_id, address), now):
            return None
        token = token_from_memory(
            cache=self.cache,
            keystore=self.instance.keystore,
            secret_key=self.instance.client_secret_key,
            issuer=self.issuer,
            form=payload.datalist,
            headers=headers,
            now=now,
        )
        return None if token is None else (200, HOT_TOKEN_HEADERS, json_body(token))


#: What :func:`to_response` sets on a token response, as ASGI headers.
HOT_TOKEN_HEADERS = [
    (b"content-type", b"application/json"),
    (b"cache-control", b"no-store"),
    (b"pragma", b"no-cache"),
]


def _throttle_keys(
    instance: Instance, client_id: str | None, http: Request
) -> list[tuple[str, ThrottlePolicy]]:
    """The throttle keys of a token request naming ``client_id`` from its address."""
    if client_id is None:
        return []
    address = http.client.host if http.client else None
    return instance.authenticator.throttle.client_keys(client_id, address)


def throttled(exc: LoginThrottled) -> Response:
    """429 in RFC 6749 §5.2 form, with Retry-After (RFC 6585 §4)."""
    body = {"error": "invalid_client", "error_description": exc.detail}
    return to_response((429, body, list(exc.headers.items())))


def to_response(result: tuple[int, Any, list[tuple[str, str]]]) -> Response:
    """authlib's ``(status, body, headers)`` as a response; errors stay RFC 6749 §5.2."""
    status, body, headers = result
    content = body if isinstance(body, bytes) else json_body(body)
    response = Response(content, status_code=status, media_type="application/json")
    for name, value in headers:
        if name.lower() != "content-type":
            response.headers[name] = value
    # RFC 6749 §5.1: token responses MUST NOT be cached; errors neither.
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("Pragma", "no-cache")
    return response


async def authorization_request(request: Request) -> FormRequest:
    """An authorization request: its parameters from the query (GET) or the form (POST)."""
    if request.method == "POST":
        return await oauth_request(request)
    issuer = request.app.state.instance.settings.issuer
    values = list(request.query_params.multi_items())
    return FormRequest(
        "GET",
        f"{issuer}{request.url.path}",
        request.headers,
        FormPayload(values),
        dict(request.query_params),
        is_form=False,
    )


OAuthRequest = Annotated[FormRequest, Depends(oauth_request)]
AuthorizeRequest = Annotated[FormRequest, Depends(authorization_request)]
Server = Annotated[AuthorityServer, Depends(authorization_server)]
