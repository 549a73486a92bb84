"""`authority client`."""

from __future__ import annotations

import json
from typing import Any

import click

from authority.audit import operator
from authority.audit.trail import record_client
from authority.cli.base import cli, command, emit, opened_instance
from authority.config import Environment
from authority.db.base import utcnow
from authority.errors import InvalidInput
from authority.oidc.clients import register_client
from authority.oidc.retention import purge_expired
from authority.oidc.sectors import fetch_sector_document

client_group = click.Group("client", help="OAuth clients: portals and agency back-ends.")
cli.add_command(client_group)


@command(client_group, "create")
@click.option("--name", required=True, help="What users see on the consent page.")
@click.option(
    "--redirect-uri",
    "redirect_uris",
    multiple=True,
    help="Exact redirect URI (repeatable); https, or http on loopback.",
)
@click.option(
    "--auth-method",
    default="client_secret_basic",
    show_default=True,
    type=click.Choice(["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]),
    help="Token endpoint authentication (none: a public client).",
)
@click.option("--jwks-uri", default=None, help="Where the client publishes its keys.")
@click.option(
    "--jwks",
    "jwks_file",
    type=click.File("r"),
    default=None,
    help="A JSON file with the client's public JWK set.",
)
@click.option(
    "--grant-type",
    "grant_types",
    multiple=True,
    type=click.Choice(["authorization_code", "refresh_token", "client_credentials"]),
    help="Repeatable. Default: authorization_code + refresh_token with redirect "
    "URIs, else client_credentials.",
)
@click.option("--scope", "scopes", multiple=True, help="Repeatable: a scope the client may ask.")
@click.option(
    "--post-logout-redirect-uri",
    "post_logout_redirect_uris",
    multiple=True,
    help="Repeatable: where the client may send people after logout (exact match).",
)
@click.option(
    "--require-par", is_flag=True, help="Accept only pushed authorization requests (RFC 9126)."
)
@click.option(
    "--require-dpop", is_flag=True, help="Issue only DPoP-bound tokens (RFC 9449) to this client."
)
@click.option(
    "--backchannel-logout-uri",
    default=None,
    help="Where logout tokens are posted when a person's session ends (OIDC Back-Channel Logout).",
)
@click.option(
    "--sector-identifier-uri",
    default=None,
    help="https URL of a JSON array listing every redirect URI; its host is the pairwise "
    "sector (lets redirect URIs be on several hosts). Fetched now.",
)
def client_create_command(
    name: str,
    redirect_uris: tuple[str, ...],
    auth_method: str,
    jwks_uri: str | None,
    jwks_file: Any,
    grant_types: tuple[str, ...],
    scopes: tuple[str, ...],
    post_logout_redirect_uris: tuple[str, ...],
    require_par: bool,
    require_dpop: bool,
    backchannel_logout_uri: str | None,
    sector_identifier_uri: str | None,
) -> None:
    """Register a client; its secret (if any) is shown once."""
    jwks = None
    if jwks_file is not None:
        try:
            jwks = json.load(jwks_file)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"--jwks is not JSON: {exc}") from None
    with opened_instance() as instance:
        # Fetched before the transaction: a slow server never holds the database.
        sector = (
            fetch_sector_document(
                sector_identifier_uri,
                allow_loopback_http=instance.settings.env is not Environment.PRODUCTION,
            )
            if sector_identifier_uri
            else None
        )
        with instance.database.transaction() as session:
            client = register_client(
                session,
                instance.client_secret_key,
                name=name,
                redirect_uris=redirect_uris,
                auth_method=auth_method,
                grant_types=grant_types,
                scopes=scopes,
                jwks=jwks,
                jwks_uri=jwks_uri,
                post_logout_redirect_uris=post_logout_redirect_uris,
                require_par=require_par,
                require_dpop=require_dpop,
                backchannel_logout_uri=backchannel_logout_uri,
                sector=sector,
                now=utcnow(),
            )
            data = client.describe()
            record_client(session, client.record, operator())
    text = [f"client_id: {data['client_id']}"]
    if "client_secret" in data:
        text.append(f"client_secret: {data['client_secret']} (shown once)")
    emit(data, "\n".join(text))


@command(cli, "purge")
def purge_command() -> None:
    """Delete expired codes, sessions, refresh tokens, used proofs and old throttle counts."""
    with opened_instance() as instance, instance.database.transaction() as session:
        counts = purge_expired(session, utcnow())
    emit(counts, "\n".join(f"{name}: {count} deleted" for name, count in counts.items()))
