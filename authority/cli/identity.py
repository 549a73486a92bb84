"""`authority citizen` and `authority business`."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta

import click

from authority.cli.base import cli, command, emit, opened_instance
from authority.db.base import utcnow
from authority.errors import InvalidInput
from authority.identity import totp
from authority.identity.accounts import ROLES, create_business, create_citizen, find_citizen

citizen_group = click.Group("citizen", help="Citizens' accounts.")
business_group = click.Group("business", help="Businesses and their representatives.")
cli.add_command(citizen_group)
cli.add_command(business_group)


def _read_password() -> str:
    """The first line of standard input, without its line ending."""
    line = sys.stdin.readline()
    password = line.rstrip("\r\n")
    if not password:
        raise InvalidInput("--password-stdin: standard input holds no password")
    return password


@command(citizen_group, "create")
@click.option("--id-number", required=True, help="Resident identity number (GB 11643).")
@click.option("--name", required=True, help="Name as on the identity card.")
@click.option(
    "--password-stdin", is_flag=True, help="Read the initial password from standard input."
)
@click.option("--email", default=None, help="E-mail address (not verified).")
@click.option("--phone", default=None, help="Phone number (not verified).")
@click.option(
    "--password-only",
    is_flag=True,
    help="A password alone completes a login (level low); default: a second factor is required.",
)
def citizen_create_command(
    id_number: str,
    name: str,
    password_stdin: bool,
    email: str | None,
    phone: str | None,
    password_only: bool,
) -> None:
    """Register a citizen."""
    password = _read_password() if password_stdin else None
    with opened_instance() as instance, instance.database.transaction() as session:
        citizen = create_citizen(
            session,
            instance.authenticator.hasher,
            id_number=id_number,
            name=name,
            password=password,
            email=email,
            phone=phone,
            password_only=password_only,
            now=utcnow(),
        )
        data = {
            "id_number": citizen.id_number,
            "name": citizen.name,
            "email": citizen.email,
            "phone": citizen.phone,
            "password": citizen.password_hash is not None,
            "second_factor_required": not citizen.password_only,
        }
    emit(data, f"citizen {data['id_number']} ({data['name']}) created")


@command(citizen_group, "enrol-totp")
@click.option("--id-number", required=True, help="Resident identity number (GB 11643).")
def citizen_enrol_totp_command(id_number: str) -> None:
    """Give a citizen a new TOTP secret (RFC 6238); prints the otpauth:// URI once."""
    with opened_instance() as instance, instance.database.transaction() as session:
        citizen = find_citizen(session, id_number)
        citizen.totp_secret = totp.new_secret()
        citizen.totp_last_step = None
        uri = totp.provisioning_uri(
            citizen.totp_secret, citizen.id_number, instance.settings.issuer
        )
        data = {"id_number": citizen.id_number, "otpauth_uri": uri}
    emit(data, f"otpauth URI (shown once): {uri}")


@command(business_group, "create")
@click.option("--uscc", required=True, help="Unified social credit code (GB 32100).")
@click.option("--name", required=True, help="Registered name.")
@click.option(
    "--representative", required=True, help="Identity number of the citizen who acts for it."
)
@click.option(
    "--role",
    default="legal_representative",
    show_default=True,
    type=click.Choice(ROLES),
    help="The representative's role.",
)
@click.option(
    "--valid-until",
    default=None,
    type=click.DateTime(["%Y-%m-%d"]),
    help="Last day of the representation (default: open-ended).",
)
def business_create_command(
    uscc: str, name: str, representative: str, role: str, valid_until: datetime | None
) -> None:
    """Register a business and the citizen who represents it."""
    now = utcnow()
    # The representation holds through the whole last day (UTC).
    until = (
        (valid_until + timedelta(days=1)).replace(tzinfo=now.tzinfo)
        if valid_until is not None
        else None
    )
    with opened_instance() as instance, instance.database.transaction() as session:
        business, representation = create_business(
            session,
            uscc=uscc,
            name=name,
            representative=representative,
            role=role,
            valid_until=until,
            now=now,
        )
        data = {
            "uscc": business.uscc,
            "name": business.name,
            "representative": {
                "id_number": find_citizen(session, representative).id_number,
                "role": representation.role,
                "valid_from": representation.valid_from.isoformat(),
                "valid_until": until.isoformat() if until else None,
            },
        }
    emit(data, f"business {data['uscc']} ({data['name']}) created")
