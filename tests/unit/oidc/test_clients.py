"""Client registration: what is accepted, and each refusal with its reason."""

from __future__ import annotations

from typing import Any

import pytest

from authority.db.base import utcnow
from authority.db.session import Database
from authority.errors import InvalidInput
from authority.instance import Instance
from authority.oidc.clients import Client, describe, register_client


def _register(instance: Instance, database: Database, **options: Any) -> Any:
    with database.transaction() as session:
        return register_client(session, instance.client_secret_key, now=utcnow(), **options)


def test_a_portal_defaults_to_the_code_flow(instance: Instance, database: Database) -> None:
    new = _register(
        instance, database, name="Portal", redirect_uris=["https://portal.example.gov/cb"]
    )
    assert new.record.grant_types == ["authorization_code", "refresh_token"]
    assert new.record.scopes == ["openid", "profile"]
    assert new.secret is not None and len(new.secret) >= 43
    assert new.record.secret_hash != new.secret
    assert "client_secret" not in describe(new.record)
    client = Client(new.record, instance.client_secret_key)
    assert client.check_client_secret(new.secret)
    assert not client.check_client_secret(new.secret + "x")
    assert client.check_redirect_uri("https://portal.example.gov/cb")
    assert not client.check_redirect_uri("https://portal.example.gov/cb/")


def test_a_back_end_defaults_to_client_credentials(instance: Instance, database: Database) -> None:
    new = _register(instance, database, name="Back-end", scopes=["licences:read"])
    assert new.record.grant_types == ["client_credentials"]


def test_a_public_client_has_no_secret(instance: Instance, database: Database) -> None:
    new = _register(
        instance,
        database,
        name="App",
        auth_method="none",
        redirect_uris=["http://127.0.0.1:9000/cb"],
    )
    assert new.secret is None and new.record.secret_hash is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": ""}, "client name must be 1-128"),
        ({"name": "x", "auth_method": "magic"}, "auth method must be one of"),
        ({"name": "x", "redirect_uris": ["http://portal.example.gov/cb"]}, "must use https"),
        ({"name": "x", "redirect_uris": ["https://p.example/cb#frag"]}, "must not contain a fr"),
        ({"name": "x", "redirect_uris": ["/relative"]}, "must be an absolute https URL"),
        ({"name": "x", "grant_types": ["password"]}, "grant type 'password' is not one of"),
        ({"name": "x", "grant_types": ["authorization_code"]}, "needs at least one --redirect"),
        ({"name": "x", "auth_method": "none"}, r"public client \(auth method none\) cannot use"),
        ({"name": "x", "scopes": ["root"]}, "unknown scope 'root'"),
        ({"name": "x", "require_dpop": True}, "--require-dpop is for the authorization_code"),
        ({"name": "x", "auth_method": "private_key_jwt"}, "needs exactly one of --jwks"),
        ({"name": "x", "jwks_uri": "https://k.example/jwks"}, "go with --auth-method private"),
        ({"name": "x", "auth_method": "private_key_jwt", "jwks": {"keys": []}}, "at least one key"),
        (
            {
                "name": "x",
                "auth_method": "private_key_jwt",
                "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]},
            },
            "EC, RSA or OKP public keys",
        ),
        (
            {
                "name": "x",
                "auth_method": "private_key_jwt",
                "jwks": {"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b", "d": "c"}]},
            },
            "public keys only",
        ),
    ],
)
def test_refusals_say_why(
    instance: Instance, database: Database, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        _register(instance, database, **options)


def test_redirect_uris_share_one_host_for_the_pairwise_sector(
    database: Database, instance: Instance
) -> None:
    with database.transaction() as session, pytest.raises(InvalidInput, match="share one host"):
        register_client(
            session,
            instance.client_secret_key,
            name="Two hosts",
            redirect_uris=["https://a.example.gov/cb", "https://b.example.gov/cb"],
            now=utcnow(),
        )
