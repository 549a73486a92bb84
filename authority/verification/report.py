"""The verification report: a verdict for people and EN 319 102-1 terms for machines.

ETSI EN 319 102-1 §5.1.3 gives a signature validation three main indications
(TOTAL_PASSED, TOTAL_FAILED, INDETERMINATE) and sub-indications (Table 6, 7).
The *verdict* adds the licence's own state on top of the seal's indication:
see :func:`verdict_for` and ``docs/verifying.md``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class Verdict(enum.StrEnum):
    """What a person needs to know about the licence presented."""

    VALID = "VALID"
    INVALID = "INVALID"
    REVOKED = "REVOKED"
    SUSPENDED = "SUSPENDED"
    EXPIRED = "EXPIRED"
    UNKNOWN = "UNKNOWN"


class Indication(enum.StrEnum):
    """EN 319 102-1 §5.1.3 main status indications."""

    TOTAL_PASSED = "TOTAL_PASSED"
    TOTAL_FAILED = "TOTAL_FAILED"
    INDETERMINATE = "INDETERMINATE"


class SubIndication(enum.StrEnum):
    """EN 319 102-1 §5.1.3 Tables 6 and 7: the sub-indications we produce."""

    # with TOTAL_FAILED (Table 6)
    FORMAT_FAILURE = "FORMAT_FAILURE"
    HASH_FAILURE = "HASH_FAILURE"
    SIG_CRYPTO_FAILURE = "SIG_CRYPTO_FAILURE"
    REVOKED = "REVOKED"
    GENERIC = "GENERIC"
    # with INDETERMINATE (Table 7)
    SIG_CONSTRAINTS_FAILURE = "SIG_CONSTRAINTS_FAILURE"
    CHAIN_CONSTRAINTS_FAILURE = "CHAIN_CONSTRAINTS_FAILURE"
    CERTIFICATE_CHAIN_GENERAL_FAILURE = "CERTIFICATE_CHAIN_GENERAL_FAILURE"
    NO_SIGNING_CERTIFICATE_FOUND = "NO_SIGNING_CERTIFICATE_FOUND"
    NO_CERTIFICATE_CHAIN_FOUND = "NO_CERTIFICATE_CHAIN_FOUND"
    REVOKED_NO_POE = "REVOKED_NO_POE"
    OUT_OF_BOUNDS_NO_POE = "OUT_OF_BOUNDS_NO_POE"
    TRY_LATER = "TRY_LATER"
    CRYPTO_CONSTRAINTS_FAILURE_NO_POE = "CRYPTO_CONSTRAINTS_FAILURE_NO_POE"


#: Sub-indications that are TOTAL_FAILED (EN 319 102-1 Table 6); all others are INDETERMINATE.
FAILED = frozenset(
    {
        SubIndication.FORMAT_FAILURE,
        SubIndication.HASH_FAILURE,
        SubIndication.SIG_CRYPTO_FAILURE,
        SubIndication.REVOKED,
        SubIndication.GENERIC,
    }
)
#: INDETERMINATE sub-indications that mean "not sealed under this trust list": INVALID to a person.
NOT_OURS = frozenset(
    {SubIndication.NO_SIGNING_CERTIFICATE_FOUND, SubIndication.NO_CERTIFICATE_CHAIN_FOUND}
)


class Outcome(enum.StrEnum):
    """How one check ended."""

    PASSED = "passed"
    FAILED = "failed"
    WARNING = "warning"
    NOT_CHECKED = "not_checked"


@dataclass(frozen=True)
class Check:
    """One check made, in the order made."""

    name: str
    outcome: Outcome
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        """JSON form."""
        return {"name": self.name, "outcome": self.outcome.value, "detail": self.detail}


class SealFailure(Exception):
    """A seal check failed with ``subindication``; raised and caught inside the verifier."""

    def __init__(self, subindication: SubIndication, check: str, detail: str) -> None:
        super().__init__(detail)
        self.subindication = subindication
        self.check = check
        self.detail = detail


def iso(moment: datetime | None) -> str | None:
    """RFC 3339 UTC to the second, or None."""
    if moment is None:
        return None
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass
class Report:
    """A verification report (DESIGN.md: verification)."""

    form: str  # "qr", "document" or "pdf"
    mode: str  # "online" or "offline"
    verified_at: datetime
    verdict: Verdict = Verdict.INVALID
    indication: Indication = Indication.TOTAL_FAILED
    subindication: SubIndication | None = SubIndication.FORMAT_FAILURE
    signer: dict[str, Any] | None = None
    signing_time: datetime | None = None
    timestamp_time: datetime | None = None
    licence: dict[str, Any] | None = None
    status_as_of: datetime | None = None
    checks: list[Check] = field(default_factory=list)

    def check(self, name: str, outcome: Outcome, detail: str = "") -> None:
        """Record one check."""
        self.checks.append(Check(name, outcome, detail))

    def fail(self, failure: SealFailure) -> None:
        """End the seal's validation with ``failure``."""
        self.check(failure.check, Outcome.FAILED, failure.detail)
        self.subindication = failure.subindication
        self.indication = (
            Indication.TOTAL_FAILED if failure.subindication in FAILED else Indication.INDETERMINATE
        )

    def as_dict(self) -> dict[str, Any]:
        """The JSON report."""
        return {
            "verdict": self.verdict.value,
            "indication": self.indication.value,
            "subindication": self.subindication.value if self.subindication else None,
            "form": self.form,
            "mode": self.mode,
            "verified_at": iso(self.verified_at),
            "signer": self.signer,
            "signing_time": iso(self.signing_time),
            "timestamp_time": iso(self.timestamp_time),
            "licence": self.licence,
            "status_as_of": iso(self.status_as_of),
            "checks": [c.as_dict() for c in self.checks],
        }


LICENCE_VERDICTS = {
    "valid": Verdict.VALID,
    "revoked": Verdict.REVOKED,
    "suspended": Verdict.SUSPENDED,
    "expired": Verdict.EXPIRED,
}


def verdict_for(
    indication: Indication, subindication: SubIndication | None, licence_status: str | None
) -> Verdict:
    """The person's verdict from the seal's indication and the licence's status.

    TOTAL_FAILED and "not sealed under this trust list" are INVALID; other
    INDETERMINATE results are UNKNOWN (cannot be confirmed); a passed seal
    takes the licence's status, and UNKNOWN when the register has no such
    licence. A licence not yet in force is INVALID.
    """
    if indication is Indication.TOTAL_FAILED or subindication in NOT_OURS:
        return Verdict.INVALID
    if indication is Indication.INDETERMINATE:
        return Verdict.UNKNOWN
    if licence_status is None:
        return Verdict.UNKNOWN
    return LICENCE_VERDICTS.get(licence_status, Verdict.INVALID)
