"""`authority licence-type`."""

from __future__ import annotations

import json
from typing import Any

import click

from authority.agencies.service import find_agency
from authority.cli.base import cli, command, emit, opened_instance
from authority.db.base import utcnow
from authority.errors import InvalidInput
from authority.licences.service import create_licence_type

licence_type_group = click.Group("licence-type", help="Licence types: what an agency issues.")
cli.add_command(licence_type_group)


@command(licence_type_group, "create")
@click.option("--agency", "agency_code", required=True, help="The issuing agency's code.")
@click.option("--code", required=True, help="Unique type code, e.g. MOT-DRIVING (A-Z 0-9 -).")
@click.option("--name", required=True, help="The type's name (Chinese, as printed).")
@click.option("--name-en", default=None, help="English name (default: --name).")
@click.option(
    "--schema",
    "schema_file",
    required=True,
    type=click.File("r"),
    help="JSON Schema (draft 2020-12) file of the licence's data fields.",
)
@click.option(
    "--validity-days",
    default=365,
    show_default=True,
    type=int,
    help="Default validity of a licence of this type.",
)
def licence_type_create_command(
    agency_code: str,
    code: str,
    name: str,
    name_en: str | None,
    schema_file: Any,
    validity_days: int,
) -> None:
    """Register a licence type of an agency, with the schema of its data fields."""
    try:
        schema = json.load(schema_file)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--schema is not JSON: {exc}") from None
    with opened_instance() as instance, instance.database.transaction() as session:
        agency = find_agency(session, agency_code)
        record = create_licence_type(
            session,
            agency,
            code=code,
            name_zh=name,
            name_en=name_en or name,
            schema=schema,
            validity_days=validity_days,
            now=utcnow(),
        )
        data = {
            "code": record.code,
            "agency": agency.code,
            "name_zh": record.name_zh,
            "name_en": record.name_en,
            "validity_days": record.validity_days,
            "schema": record.schema,
        }
    emit(data, f"licence type {record.code} of {agency.code}: {record.name_zh}")
