"""`authority demo`: seed a demonstration data set, idempotently, and describe it.

The printed shape is the DESIGN.md contract: the citizen (who logs in with
a password alone), the business that citizen represents, the portal client,
and the agency with its licence type.

Demo secrets are derived from the installation's client-secret key (HMAC of a
fixed label), so a second run prints the same credentials while the database
still stores only their hashes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from authority.agencies.models import Agency
from authority.agencies.service import audit_new_agency, create_agency
from authority.audit import operator
from authority.audit.trail import record_client
from authority.bootstrap import pki_for, require_initialised
from authority.db.base import utcnow
from authority.identity.accounts import create_business, create_citizen
from authority.identity.models import Business, Citizen
from authority.instance import Instance
from authority.licences.models import LicenceType
from authority.licences.service import create_licence_type
from authority.oidc.clients import (
    ClientSecretKey,
    register_agency_client,
    register_client,
)
from authority.oidc.models import OAuthClient

DEMO_AGENCY_CODE = "DEMO"
DEMO_AGENCY_NAME = "Demonstration Licensing Agency"
DEMO_PORTAL_NAME = "Demonstration Portal"
DEMO_PORTAL_REDIRECT = "http://127.0.0.1:8001/callback"
DEMO_PORTAL_LOGGED_OUT = "http://127.0.0.1:8001/"
DEMO_CITIZEN_ID = "11010519491231002X"  # GB 11643's own sample number
DEMO_CITIZEN_NAME = "张三"
DEMO_BUSINESS_USCC = "91350100M000100Y43"  # GB 32100's widely cited sample code
DEMO_BUSINESS_NAME = "演示科技有限公司"
DEMO_LICENCE_TYPE = "DEMO-PERMIT"
DEMO_LICENCE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "title": "Demonstration vehicle permit",
    "properties": {
        "category": {"type": "string", "enum": ["A", "B", "C"], "title": "准驾车型 / Category"},
        "vehicle": {
            "type": "string",
            "minLength": 1,
            "maxLength": 32,
            "title": "车辆类型 / Vehicle",
        },
        "plate": {"type": "string", "pattern": "^[A-Z0-9]{5,8}$", "title": "号牌 / Plate"},
    },
    "required": ["category", "vehicle"],
    "additionalProperties": False,
}


def _demo_secret(key: ClientSecretKey, label: str) -> str:
    digest = hmac.new(key.digest(f"demo:{label}").encode(), b"demo-secret", hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def _client_by_name(session: Session, name: str) -> OAuthClient | None:
    return session.scalar(select(OAuthClient).where(OAuthClient.name == name).limit(1))


def seed_demo(instance: Instance) -> dict[str, Any]:
    """Create what the demo needs if missing; return its credentials and identifiers."""
    require_initialised(instance)
    key = instance.client_secret_key
    portal_secret = _demo_secret(key, "portal")
    agency_secret = _demo_secret(key, "agency")
    citizen_password = _demo_secret(key, "citizen")
    with instance.database.transaction() as session:
        now = utcnow()
        pki = pki_for(instance, session)
        agency = session.scalar(select(Agency).where(Agency.code == DEMO_AGENCY_CODE))
        if agency is None:
            agency, seal = create_agency(pki, DEMO_AGENCY_CODE, DEMO_AGENCY_NAME, now)
            new = register_agency_client(session, key, agency, now, secret=agency_secret)
            audit_new_agency(session, agency, seal, new.record.client_id, operator())
        agency_client = session.scalar(
            select(OAuthClient).where(OAuthClient.agency_id == agency.id)
        )
        portal = _client_by_name(session, DEMO_PORTAL_NAME)
        if portal is None:
            portal = register_client(
                session,
                key,
                name=DEMO_PORTAL_NAME,
                redirect_uris=[DEMO_PORTAL_REDIRECT],
                scopes=["openid", "profile", "email", "phone", "business"],
                post_logout_redirect_uris=[DEMO_PORTAL_LOGGED_OUT],
                now=now,
                secret=portal_secret,
            ).record
            record_client(session, portal, operator())
        assert agency_client is not None
        if session.scalar(select(Citizen).where(Citizen.id_number == DEMO_CITIZEN_ID)) is None:
            create_citizen(
                session,
                instance.authenticator.hasher,
                id_number=DEMO_CITIZEN_ID,
                name=DEMO_CITIZEN_NAME,
                password=citizen_password,
                password_only=True,
                now=now,
            )
        if session.scalar(select(Business).where(Business.uscc == DEMO_BUSINESS_USCC)) is None:
            create_business(
                session,
                uscc=DEMO_BUSINESS_USCC,
                name=DEMO_BUSINESS_NAME,
                representative=DEMO_CITIZEN_ID,
                now=now,
            )
        if session.scalar(select(LicenceType).where(LicenceType.code == DEMO_LICENCE_TYPE)) is None:
            create_licence_type(
                session,
                agency,
                code=DEMO_LICENCE_TYPE,
                name_zh="演示许可证",
                name_en="Demonstration Permit",
                schema=DEMO_LICENCE_SCHEMA,
                validity_days=365 * 5,
                now=now,
            )
        return {
            "issuer": instance.settings.issuer,
            "citizen": {"username": DEMO_CITIZEN_ID, "password": citizen_password},
            "business": {"uscc": DEMO_BUSINESS_USCC, "name": DEMO_BUSINESS_NAME},
            "portal": {
                "client_id": portal.client_id,
                "client_secret": portal_secret,
                "redirect_uris": list(portal.redirect_uris),
            },
            "agency": {
                "code": agency.code,
                "name": agency.name,
                "seal_serial": pki.agency_seal(agency).serial,
                "client_id": agency_client.client_id,
                "client_secret": agency_secret,
                "licence_type": DEMO_LICENCE_TYPE,
                "licence_example": {
                    "type": DEMO_LICENCE_TYPE,
                    "holder": {"kind": "citizen", "id": DEMO_CITIZEN_ID, "name": DEMO_CITIZEN_NAME},
                    "data": {"category": "B", "vehicle": "小型汽车", "plate": "AB12345"},
                },
            },
        }
