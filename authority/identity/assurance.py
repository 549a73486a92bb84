"""Levels of assurance: eIDAS LoA URIs for ``acr`` and RFC 8176 values for ``amr``."""

from __future__ import annotations

from collections.abc import Sequence

LOA_LOW = "http://eidas.europa.eu/LoA/low"
LOA_SUBSTANTIAL = "http://eidas.europa.eu/LoA/substantial"
LOA_HIGH = "http://eidas.europa.eu/LoA/high"
LEVELS = (LOA_LOW, LOA_SUBSTANTIAL, LOA_HIGH)

# RFC 8176 §2 authentication method reference values.
AMR_PASSWORD = "pwd"  # noqa: S105 - an RFC 8176 method name
AMR_OTP = "otp"
AMR_MFA = "mfa"
AMR_HARDWARE_KEY = "hwk"


def level_of(amr: Sequence[str]) -> str:
    """The eIDAS level the methods used reach: two factors are substantial.

    Nothing here reaches high: that needs an identity verified in person and a
    certified authenticator, which a synced passkey is not.
    """
    if AMR_MFA in amr:
        return LOA_SUBSTANTIAL
    return LOA_LOW


def satisfies(acr: str, wanted: str) -> bool:
    """Whether an authentication at ``acr`` meets a request for ``wanted`` (or higher)."""
    if wanted not in LEVELS or acr not in LEVELS:
        return False
    return LEVELS.index(acr) >= LEVELS.index(wanted)
