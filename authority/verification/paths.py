"""Certificate path validation to the pinned root (RFC 5280 §6), at a point in time.

pyhanko-certvalidator builds and validates the path (signatures, names, basic
constraints, key usage, validity at the given moment). Revocation is not its
job here: the caller compares the status it trusts (the register online, the
sealed trust list offline) with the proof of existence it has, which is what
EN 319 102-1 §5.6.2.1 asks of a validation with time.

A validated path depends on the moment only through the certificates'
validity periods, so each is cached with that window: the same seal
certificate is not validated again for another moment inside it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import (
    DisallowedAlgorithmError,
    ExpiredError,
    InvalidCertificateError,
    NotYetValidError,
    PathBuildingError,
    PathValidationError,
)

from authority.verification.cache import NotCached
from authority.verification.report import SealFailure, SubIndication

_DER = serialization.Encoding.DER
_CACHE_LIMIT = 4096


@dataclass(frozen=True)
class ValidPath:
    """A path from a certificate to the root, and the window in which all of it is valid."""

    chain: tuple[x509.Certificate, ...]  # end entity first, root last
    not_before: datetime
    not_after: datetime


def _asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(_DER))


async def _validate(
    certificate: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    root: x509.Certificate,
    moment: datetime,
) -> tuple[x509.Certificate, ...]:
    context = ValidationContext(
        trust_roots=[_asn1(root)],
        other_certs=[_asn1(c) for c in intermediates],
        moment=moment,
        allow_fetching=False,
        # Revocation is the caller's (module docstring); nothing to fetch or find here.
        revocation_mode="soft-fail",
    )
    validator = CertificateValidator(_asn1(certificate), validation_context=context)
    path = await validator.async_validate_path()
    return tuple(x509.load_der_x509_certificate(c.dump()) for c in path.iter_certs(True))[::-1]


class PathValidator:
    """Validates certificates to one root; thread-safe, with a bounded cache."""

    def __init__(self, root: x509.Certificate, intermediates: Sequence[x509.Certificate]) -> None:
        self.root = root
        self.intermediates = tuple(intermediates)
        # By certificate: equal certificates (same DER) hash and compare equal.
        self._cache: dict[x509.Certificate, ValidPath] = {}
        self._lock = threading.Lock()

    def validate(
        self, certificate: x509.Certificate, moment: datetime, check: str, *, build: bool = True
    ) -> ValidPath:
        """The path of ``certificate`` to the root, valid at ``moment``.

        Raises :class:`SealFailure` with the EN 319 102-1 sub-indication:
        NO_CERTIFICATE_CHAIN_FOUND (no path to the root),
        OUT_OF_BOUNDS_NO_POE (a certificate is not valid at ``moment``),
        CHAIN_CONSTRAINTS_FAILURE or CERTIFICATE_CHAIN_GENERAL_FAILURE.
        With ``build`` false, a path not validated before raises :class:`NotCached`
        instead of being built (building runs an event loop of its own).
        """
        with self._lock:
            cached = self._cache.get(certificate)
        if cached is None:
            if not build:
                raise NotCached("the certificate path must be validated")
            cached = self._build(certificate, moment, check)
            with self._lock:
                if len(self._cache) >= _CACHE_LIMIT:
                    self._cache.clear()
                self._cache[certificate] = cached
        if not cached.not_before <= moment <= cached.not_after:
            raise SealFailure(
                SubIndication.OUT_OF_BOUNDS_NO_POE,
                check,
                f"a certificate of the path is not valid at {moment:%Y-%m-%d %H:%M:%S} UTC",
            )
        return cached

    def _build(self, certificate: x509.Certificate, moment: datetime, check: str) -> ValidPath:
        try:
            chain = asyncio.run(_validate(certificate, self.intermediates, self.root, moment))
        except PathBuildingError:
            raise SealFailure(
                SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
                check,
                "no certification path to the authority's root",
            ) from None
        except (ExpiredError, NotYetValidError):
            raise SealFailure(
                SubIndication.OUT_OF_BOUNDS_NO_POE,
                check,
                f"a certificate of the path is not valid at {moment:%Y-%m-%d %H:%M:%S} UTC",
            ) from None
        except (DisallowedAlgorithmError, InvalidCertificateError) as exc:
            raise SealFailure(
                SubIndication.CHAIN_CONSTRAINTS_FAILURE, check, f"path not acceptable: {exc}"
            ) from None
        except (PathValidationError, ValueError, TypeError) as exc:
            raise SealFailure(
                SubIndication.CERTIFICATE_CHAIN_GENERAL_FAILURE, check, f"path invalid: {exc}"
            ) from None
        return ValidPath(
            chain=chain,
            not_before=max(c.not_valid_before_utc for c in chain),
            not_after=min(c.not_valid_after_utc for c in chain),
        )
