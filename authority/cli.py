"""The `authority` command line (also `python -m authority`).

Every command takes ``--json`` for machine-readable output on stdout. A
failure is one line on stderr and a non-zero exit status: 1 for an error the
user can act on, 2 for a usage error, 70 for an unexpected failure.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError

from authority import __version__
from authority.agencies.service import create_agency, revoke_seal, rotate_seal
from authority.bootstrap import initialise, pki_for, redacted_url
from authority.config import Settings, load_settings
from authority.db.base import utcnow
from authority.db.session import database_unavailable
from authority.demo import seed_demo
from authority.errors import AuthorityError, InvalidInput
from authority.instance import Instance
from authority.oidc.clients import register_agency_client, register_client
from authority.oidc.models import SigningKey
from authority.oidc.tokens import rotate_signing_key
from authority.pki.crl import parse_revocation_reason
from authority.pki.models import CertificateRecord
from authority.pki.service import certificate_pem

F = TypeVar("F", bound=Callable[..., Any])

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNEXPECTED = 70
JSON_KEY = "authority.json"


def json_option(function: F) -> F:
    """Give a command the ``--json`` flag (stored on the click context)."""

    def remember(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        ctx.meta[JSON_KEY] = value
        return value

    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        expose_value=False,
        callback=remember,
        is_eager=True,
        help="Print machine-readable JSON on stdout.",
    )(function)


def wants_json() -> bool:
    """Whether the running command was given ``--json``."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.meta.get(JSON_KEY))


def emit(data: dict[str, Any], text: str) -> None:
    """Print ``data`` as JSON with ``--json``, else the human ``text``."""
    if wants_json():
        click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    else:
        click.echo(text)


@contextmanager
def opened_instance() -> Iterator[Instance]:
    """An instance from the environment's settings, closed afterwards."""
    instance = Instance.open(load_settings())
    try:
        yield instance
    finally:
        instance.close()


def command(group: click.Group, name: str | None = None, **kwargs: Any) -> Callable[[F], F]:
    """Declare a subcommand of ``group`` with ``--json``."""

    def decorate(function: F) -> F:
        wrapped = json_option(function)
        group.command(name, **kwargs)(wrapped)
        return function

    return decorate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="authority")
def cli() -> None:
    """Authority: identity, electronic seals and licence verification.

    Configured by AUTHORITY_* environment variables (see docs/operations.md).
    """


@command(cli, "init")
def init_command() -> None:
    """Migrate the database and create what the service needs; safe to repeat."""
    with opened_instance() as instance:
        report = initialise(instance)
    lines = [
        f"database: {report.database} (schema {report.schema_to})",
        f"instance: {report.instance_id}",
    ]
    created = [f"created: {item}" for item in report.created]
    lines += created or ["nothing to do: already initialised"]
    emit(
        {
            "database": report.database,
            "schema": report.schema_to,
            "schema_before": report.schema_from,
            "instance_id": report.instance_id,
            "created": report.created,
        },
        "\n".join(lines),
    )


@command(cli, "demo")
def demo_command() -> None:
    """Seed the demonstration data set (idempotent) and print its credentials."""
    with opened_instance() as instance:
        data = seed_demo(instance)
    emit(data, "\n".join(f"{key}: {value}" for key, value in data.items()))


@command(cli, "serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="TCP port."
)
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Worker processes."
)
def serve_command(host: str, port: int, workers: int) -> None:
    """Serve HTTP until interrupted; finishes in-flight requests on SIGTERM."""
    import uvicorn

    settings: Settings = load_settings()  # fail here, once, on a bad setting
    if wants_json():
        click.echo(
            json.dumps(
                {
                    "url": f"http://{host}:{port}",
                    "workers": workers,
                    "issuer": settings.issuer,
                    "database": redacted_url(settings.database_url),
                }
            )
        )
    uvicorn.run(
        "authority.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=30,
    )


def _seal_summary(record: CertificateRecord) -> dict[str, Any]:
    return {
        "serial": record.serial,
        "subject": record.subject,
        "not_before": record.not_before.isoformat(),
        "not_after": record.not_after.isoformat(),
        "key_handle": record.key_handle,
        "status": "revoked" if record.revoked_at else "good",
        "pem": certificate_pem(record),
    }


client_group = click.Group("client", help="OAuth clients: portals and agency back-ends.")
agency_group = click.Group("agency", help="Agencies: the public bodies that issue licences.")
seal_group = click.Group("seal", help="Agency seal keys and certificates.")
keys_group = click.Group("keys", help="Keys in the key store.")
for _group in (client_group, agency_group, seal_group, keys_group):
    cli.add_command(_group)


@command(agency_group, "create")
@click.option("--code", required=True, help="Short unique code, e.g. MOT (A-Z a-z 0-9 _ -).")
@click.option("--name", required=True, help="The agency's name as on its seal.")
def agency_create_command(code: str, name: str) -> None:
    """Register an agency with a new seal key and certificate, and its API client
    (client credentials, scopes licences:issue licences:revoke licences:read)."""
    with opened_instance() as instance, instance.database.transaction() as session:
        now = utcnow()
        agency, seal = create_agency(pki_for(instance, session), code, name, now)
        client = register_agency_client(session, instance.client_secret_key, agency, now)
        data: dict[str, Any] = {
            "code": agency.code,
            "name": agency.name,
            "seal": _seal_summary(seal),
            "client": client.describe(),
        }
    emit(
        data,
        f"agency {agency.code} ({agency.name})\nseal certificate {seal.serial}, "
        f"valid until {seal.not_after.isoformat()}\n"
        f"API client_id: {data['client']['client_id']}\n"
        f"API client_secret: {data['client']['client_secret']} (shown once)",
    )


@command(seal_group, "rotate")
@click.option("--agency", "code", required=True, help="The agency's code.")
def seal_rotate_command(code: str) -> None:
    """Give an agency a new seal key and certificate; the old one stays valid for
    what it sealed."""
    with opened_instance() as instance, instance.database.transaction() as session:
        previous, seal = rotate_seal(pki_for(instance, session), code, utcnow())
        data = {
            "agency": code,
            "seal": _seal_summary(seal),
            "previous": previous.serial if previous else None,
        }
    emit(
        data,
        f"agency {code}: new seal certificate {seal.serial}"
        + (f" (replaces {previous.serial}, still valid)" if previous else ""),
    )


@command(seal_group, "revoke")
@click.option("--agency", "code", required=True, help="The agency's code.")
@click.option(
    "--reason",
    required=True,
    help="RFC 5280 reason name, e.g. keyCompromise, "
    "cessationOfOperation, superseded, affiliationChanged.",
)
@click.option("--serial", default=None, help="A specific certificate (default: the current one).")
def seal_revoke_command(code: str, reason: str, serial: str | None) -> None:
    """Revoke an agency's seal certificate; the CRL, OCSP and trust list show it at once."""
    parsed = parse_revocation_reason(reason)
    with opened_instance() as instance, instance.database.transaction() as session:
        record = revoke_seal(pki_for(instance, session), code, parsed, utcnow(), serial)
        data = {
            "agency": code,
            "serial": record.serial,
            "reason": parsed.value,
            "revoked_at": record.revoked_at.isoformat() if record.revoked_at else None,
        }
    emit(data, f"agency {code}: seal certificate {record.serial} revoked ({parsed.value})")


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
def client_create_command(
    name: str,
    redirect_uris: tuple[str, ...],
    auth_method: str,
    jwks_uri: str | None,
    jwks_file: Any,
    grant_types: tuple[str, ...],
    scopes: tuple[str, ...],
) -> None:
    """Register a client; its secret (if any) is shown once."""
    jwks = None
    if jwks_file is not None:
        try:
            jwks = json.load(jwks_file)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"--jwks is not JSON: {exc}") from None
    with opened_instance() as instance, instance.database.transaction() as session:
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
            now=utcnow(),
        )
        data = client.describe()
    text = [f"client_id: {data['client_id']}"]
    if "client_secret" in data:
        text.append(f"client_secret: {data['client_secret']} (shown once)")
    emit(data, "\n".join(text))


@command(keys_group, "rotate")
@click.option(
    "--purpose",
    required=True,
    type=click.Choice(["token"]),
    help="Which signing key: token (access tokens).",
)
def keys_rotate_command(purpose: str) -> None:
    """Sign new tokens with a new key at once; the JWKS keeps the old one until every
    token it signed has expired."""
    with opened_instance() as instance, instance.database.transaction() as session:
        previous, new = rotate_signing_key(session, instance.keystore, purpose, utcnow())
        data = {
            "purpose": purpose,
            "kid": new.kid,
            "key_handle": new.key_handle,
            "previous_kid": previous.kid if previous else None,
            "previous_published_until": previous.publish_until.isoformat()
            if previous and previous.publish_until
            else None,
        }
    emit(
        data,
        f"{purpose} signing key {new.kid}"
        + (
            f"; {previous.kid} stays published until {data['previous_published_until']}"
            if previous
            else ""
        ),
    )


@command(keys_group, "list")
def keys_list_command() -> None:
    """List the keys in the key store and the certificates that certify them."""
    with opened_instance() as instance, instance.database.session() as session:
        certified: dict[str, list[CertificateRecord]] = {}
        for record in session.scalars(select(CertificateRecord)):
            certified.setdefault(record.key_handle, []).append(record)
        signing = {k.key_handle: k for k in session.scalars(select(SigningKey))}
        rows: list[dict[str, Any]] = []
        for key in instance.keystore.all_keys():
            uses = certified.get(key.handle, [])
            rows.append(
                {
                    "handle": key.handle,
                    "label": key.label,
                    "algorithm": key.algorithm.value,
                    "created_at": key.created_at.isoformat(),
                    "keystore": instance.keystore.kind,
                    "certificates": [
                        {
                            "role": r.role,
                            "name": r.name,
                            "serial": r.serial,
                            "status": _key_status(r),
                        }
                        for r in uses
                    ],
                    "signing": _signing_use(signing.get(key.handle)),
                }
            )
    lines = [f"{r['handle']}  {r['algorithm']}  {r['label']}  {_uses(r)}" for r in rows]
    emit({"keys": rows}, "\n".join(lines) or "no keys: run `authority init`")


def _uses(row: dict[str, Any]) -> str:
    uses = [f"{c['role']}:{c['name']} ({c['status']})" for c in row["certificates"]]
    if row["signing"]:
        uses.append(f"{row['signing']['purpose']} signing ({row['signing']['status']})")
    return ", ".join(uses) or "(unused)"


def _signing_use(key: SigningKey | None) -> dict[str, Any] | None:
    if key is None:
        return None
    status = "retired" if key.retired_at else "current"
    return {
        "purpose": key.purpose,
        "kid": key.kid,
        "status": status,
        "published_until": key.publish_until.isoformat() if key.publish_until else None,
    }


def _key_status(record: CertificateRecord) -> str:
    if record.revoked_at is not None:
        return "revoked"
    return "superseded" if record.superseded_at is not None else "current"


def _fail(message: str, status: int) -> None:
    click.echo(f"authority: {message}", err=True)
    sys.exit(status)


def main(argv: list[str] | None = None) -> None:
    """Run the command line; turn every failure into one line on stderr."""
    try:
        cli.main(args=argv, prog_name="authority", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _fail("aborted", 130)
    except click.ClickException as exc:
        _fail(exc.format_message(), EXIT_USAGE)
    except AuthorityError as exc:
        _fail(f"error: {exc.detail}", EXIT_ERROR)
    except (OperationalError, InterfaceError) as exc:
        _fail(f"error: {database_unavailable(exc).detail}", EXIT_ERROR)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as exc:  # the last resort: never a traceback
        _fail(f"unexpected error: {type(exc).__name__}: {exc}", EXIT_UNEXPECTED)
