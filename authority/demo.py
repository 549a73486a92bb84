"""`authority demo`: seed a demonstration data set, idempotently, and describe it.

The printed shape is the DESIGN.md contract. Parts appear as the capabilities
behind them exist: the citizen, business and portal entries and the agency's
API client and licence type arrive with the identity, OAuth and licence work.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from authority.agencies.models import Agency
from authority.agencies.service import create_agency
from authority.bootstrap import pki_for, require_initialised
from authority.db.base import utcnow
from authority.instance import Instance

DEMO_AGENCY_CODE = "DEMO"
DEMO_AGENCY_NAME = "Demonstration Licensing Agency"


def seed_demo(instance: Instance) -> dict[str, Any]:
    """Create what the demo needs if missing; return its credentials and identifiers."""
    require_initialised(instance)
    with instance.database.transaction() as session:
        pki = pki_for(instance, session)
        agency = session.scalar(select(Agency).where(Agency.code == DEMO_AGENCY_CODE))
        if agency is None:
            agency, _ = create_agency(pki, DEMO_AGENCY_CODE, DEMO_AGENCY_NAME, utcnow())
        seal = pki.agency_seal(agency)
        return {
            "issuer": instance.settings.issuer,
            "agency": {"code": agency.code, "name": agency.name, "seal_serial": seal.serial},
        }
