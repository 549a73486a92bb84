"""`authority agency`, `seal` and `keys`."""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy import select

from authority.agencies.service import audit_new_agency, create_agency, revoke_seal, rotate_seal
from authority.agencies.staff import ROLES, grant_staff
from authority.audit import operator, record
from authority.audit.trail import (
    KEY_ROTATED,
    SEAL_REVOKED,
    SEAL_ROTATED,
)
from authority.bootstrap import pki_for
from authority.cli.base import cli, command, emit, opened_instance
from authority.db.base import utcnow
from authority.oidc.clients import register_agency_client
from authority.oidc.models import SigningKey
from authority.oidc.tokens import rotate_signing_key
from authority.pki.crl import parse_revocation_reason
from authority.pki.models import CertificateRecord
from authority.pki.service import certificate_pem


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


agency_group = click.Group("agency", help="Agencies: the public bodies that issue licences.")
seal_group = click.Group("seal", help="Agency seal keys and certificates.")
keys_group = click.Group("keys", help="Keys in the key store.")
staff_group = click.Group("staff", help="Agency staff: who may use an agency's console.")
for _group in (agency_group, seal_group, keys_group):
    cli.add_command(_group)
agency_group.add_command(staff_group)


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
        audit_new_agency(session, agency, seal, client.record.client_id, operator())
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


@command(staff_group, "add")
@click.option("--agency", "code", required=True, help="The agency's code.")
@click.option("--id-number", required=True, help="The citizen's resident identity number.")
@click.option(
    "--role",
    type=click.Choice(ROLES),
    default="officer",
    show_default=True,
    help="clerk: issue and search; officer: also suspend, reinstate and revoke.",
)
def agency_staff_add_command(code: str, id_number: str, role: str) -> None:
    """Let a citizen use the agency's console (/agency) in a role; run again to change it."""
    with opened_instance() as instance, instance.database.transaction() as session:
        record = grant_staff(
            session, agency_code=code, id_number=id_number, role=role, now=utcnow()
        )
        data = {"agency": code, "id_number": id_number, "role": record.role}
    emit(data, f"{id_number} is {role} of agency {code}")


@command(seal_group, "rotate")
@click.option("--agency", "code", required=True, help="The agency's code.")
def seal_rotate_command(code: str) -> None:
    """Give an agency a new seal key and certificate; the old one stays valid for
    what it sealed."""
    with opened_instance() as instance, instance.database.transaction() as session:
        previous, seal = rotate_seal(pki_for(instance, session), code, utcnow())
        record(
            session,
            SEAL_ROTATED,
            operator(),
            f"agency:{code}",
            {"serial": seal.serial, "previous": previous.serial if previous else None},
        )
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
        revoked = revoke_seal(pki_for(instance, session), code, parsed, utcnow(), serial)
        data = {
            "agency": code,
            "serial": revoked.serial,
            "reason": parsed.value,
            "revoked_at": revoked.revoked_at.isoformat() if revoked.revoked_at else None,
        }
        record(session, SEAL_REVOKED, operator(), f"agency:{code}", data)
    emit(data, f"agency {code}: seal certificate {revoked.serial} revoked ({parsed.value})")


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
        record(
            session,
            KEY_ROTATED,
            operator(),
            f"key:{purpose}",
            {"kid": new.kid, "previous_kid": previous.kid if previous else None},
        )
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
