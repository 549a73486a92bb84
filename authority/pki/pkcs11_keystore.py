"""The PKCS#11 key store: keys generated on, and never leaving, a token (an HSM).

A key is an EC key pair generated on the token (``CKM_EC_KEY_PAIR_GEN``) and
stored there (``CKA_TOKEN``), its private half ``CKA_PRIVATE``,
``CKA_SENSITIVE``, not ``CKA_EXTRACTABLE`` and usable only to sign. Both
halves carry the same ``CKA_ID`` (16 random bytes) and ``CKA_LABEL``:

* handle: the lower-case hex of ``CKA_ID``;
* label: ``CKA_LABEL``;
* algorithm: read back from ``CKA_EC_PARAMS`` (P-256 or P-384);
* public key: ``CKA_EC_POINT`` of the public half;
* created_at: kept to the microsecond in a private data object on the token
  (``CKO_DATA``, ``CKA_APPLICATION`` ``authority-keystore``, ``CKA_LABEL`` the
  handle, ``CKA_VALUE`` ``{"created_at": ISO 8601 UTC}``). ``CKA_START_DATE``
  only has day resolution (too coarse to order keys rotated the same day) and
  SoftHSM2 fails to read it back. A key created by another tool, with no such
  object, reports 1970-01-01T00:00:00Z.

Signing hashes the message in software and has the token compute
``CKM_ECDSA`` over the digest (SoftHSM2 offers no ``CKM_ECDSA_SHA256``); the
token's ``r || s`` is re-encoded as the DER ``Ecdsa-Sig-Value`` callers get.

The store keeps one logged-in read/write session, used by one thread at a
time, and opens it again when the token reports it closed. PKCS#11 login is
per application, not per session: a second store on the same token in one
process shares the first one's login, and only if it was given the same PIN.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pkcs11
from asn1crypto.core import OctetString
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11
from pkcs11.types import Object, Session, SignMixin
from pkcs11.util.ec import encode_named_curve_parameters

from authority.errors import ConfigurationError
from authority.pki.file_keystore import validate_key_label
from authority.pki.keystore import (
    KeyAlgorithm,
    KeyInfo,
    KeyNotFound,
    KeyStore,
    KeyStoreError,
    KeyStoreUnavailable,
)

SOFTHSM2_PATHS = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)
"""Where Debian and a source build install the SoftHSM2 PKCS#11 module."""

HANDLE_PATTERN = re.compile(r"(?:[0-9a-f]{2}){1,64}")
"""A PKCS#11 store handle: the hex of a ``CKA_ID`` of 1 to 64 bytes."""

APPLICATION = "authority-keystore"
"""``CKA_APPLICATION`` of the data objects holding key metadata."""

_MODULE_SETTING = "AUTHORITY_PKCS11_MODULE"
_TOKEN_SETTING = "AUTHORITY_PKCS11_TOKEN"  # noqa: S105 - a setting name
_PIN_SETTING = "AUTHORITY_PKCS11_PIN"
_UNKNOWN_CREATION = datetime(1970, 1, 1, tzinfo=UTC)
_CURVES = {
    encode_named_curve_parameters("secp256r1"): KeyAlgorithm.EC_P256,
    encode_named_curve_parameters("secp384r1"): KeyAlgorithm.EC_P384,
}
_CURVE_PARAMS = {algorithm: params for params, algorithm in _CURVES.items()}
_COORDINATE_BYTES = {KeyAlgorithm.EC_P256: 32, KeyAlgorithm.EC_P384: 48}
# Errors after which the session is gone or logged out: open a new one and retry once.
_STALE_SESSION = (
    p11.SessionClosed,
    p11.SessionHandleInvalid,
    p11.UserNotLoggedIn,
    p11.DeviceRemoved,
    p11.TokenNotPresent,
    p11.ObjectHandleInvalid,
    p11.KeyHandleInvalid,
)

T = TypeVar("T")

# Who logged this process in to which token, and with which PIN (salted digest).
_LOGIN_SALT = secrets.token_bytes(32)
_LOGINS: dict[tuple[str, str], tuple[object, bytes]] = {}
_LOGINS_LOCK = threading.Lock()


def find_softhsm2_module() -> str | None:
    """The path of the installed SoftHSM2 module, or None if there is none."""
    for path in SOFTHSM2_PATHS:
        if os.path.isfile(path):
            return path
    return None


class _UnsupportedKeyError(KeyStoreError):
    """A key on the token this store cannot use (another curve, no public half)."""


class Pkcs11KeyStore(KeyStore):
    """Keys on a PKCS#11 token, found by ``CKA_ID``; the token does every signature."""

    kind = "pkcs11"

    def __init__(self, module_path: str, token_label: str, pin: str) -> None:
        settings = {_MODULE_SETTING: module_path, _TOKEN_SETTING: token_label, _PIN_SETTING: pin}
        for setting, value in settings.items():
            if not value:
                raise ConfigurationError(f"{setting} must be set for the PKCS#11 key store")
        self.module_path = module_path
        self.token_label = token_label
        self._pin = pin
        self._lock = threading.RLock()
        self._session: Session | None = None
        self._borrowed = False  # the session relies on another store's login
        self._owner = object()
        self._token_key = (os.path.realpath(module_path), token_label)
        self._pin_digest = hmac.digest(_LOGIN_SALT, pin.encode("utf-8"), hashlib.sha256)
        self._infos: dict[str, KeyInfo] = {}
        self._keys: dict[str, SignMixin] = {}

    def __repr__(self) -> str:
        return f"Pkcs11KeyStore(module_path={self.module_path!r}, token_label={self.token_label!r})"

    # -- the KeyStore interface ------------------------------------------------

    def generate(self, label: str, algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256) -> KeyInfo:
        """Generate a key pair on the token labelled ``label`` and describe it."""
        validate_key_label(label)
        created_at = datetime.now(UTC)
        handle, point = self._call(
            lambda session: self._generate(session, label, algorithm, created_at)
        )
        info = KeyInfo(handle, label, algorithm, created_at, _public_key(point, algorithm))
        self._infos[handle] = info
        return info

    def get(self, handle: str) -> KeyInfo:
        """Describe key ``handle`` from its attributes on the token."""
        info = self._infos.get(handle)
        if info is not None:
            return info
        _require_handle(handle)
        info = self._call(lambda session: self._describe(session, handle))
        self._infos[handle] = info
        return info

    def sign(self, handle: str, data: bytes) -> bytes:
        """Sign ``data`` with key ``handle`` on the token; return a DER ECDSA signature."""
        info = self.get(handle)
        digest = hashes.Hash(info.algorithm.hash_algorithm)
        digest.update(data)
        message_digest = digest.finalize()

        def sign_on_token(session: Session) -> bytes:
            key = self._keys.get(handle)
            if key is None:
                found = self._find(session, ObjectClass.PRIVATE_KEY, handle)
                if not isinstance(found, SignMixin):
                    raise KeyStoreError(f"key {handle} on the token may not sign (CKA_SIGN)")
                key = self._keys[handle] = found
            # PKCS#11 v2.40 Current Mechanisms §2.3.6 (v3.1 §6.3.12): CKM_ECDSA signs
            # the given digest and returns r || s, each the byte length of the order.
            raw: bytes = key.sign(message_digest, mechanism=Mechanism.ECDSA)
            return raw

        raw = self._call(sign_on_token)
        half = len(raw) // 2
        if half == 0 or len(raw) != 2 * half:
            raise KeyStoreError(f"the token returned a malformed signature for key {handle}")
        # RFC 3279 §2.2.3: DER SEQUENCE { r INTEGER, s INTEGER }.
        return encode_dss_signature(
            int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        )

    def all_keys(self) -> list[KeyInfo]:
        """Describe every usable EC key on the token, oldest first."""

        def ids(session: Session) -> list[bytes]:
            template = {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.KEY_TYPE: KeyType.EC}
            return [bytes(obj[Attribute.ID]) for obj in list(session.get_objects(template))]

        infos = []
        for ident in self._call(ids):
            handle = ident.hex()
            if not HANDLE_PATTERN.fullmatch(handle):
                continue  # no CKA_ID: not addressable, not ours
            try:
                infos.append(self.get(handle))
            except _UnsupportedKeyError:
                continue
        return sorted(infos, key=lambda info: (info.created_at, info.handle))

    def check(self) -> None:
        """Raise :class:`KeyStoreUnavailable` unless the token is present and logged in."""

        def probe(session: Session) -> None:
            template = {Attribute.CLASS: ObjectClass.PRIVATE_KEY}
            list(session.get_objects(template))

        self._call(probe)

    def close(self) -> None:
        """Close the session (which logs the process out of the token)."""
        with self._lock:
            self._drop()

    # -- sessions --------------------------------------------------------------

    def _call(self, operation: Callable[[Session], T]) -> T:
        """Run ``operation`` in the session, reopening it once if the token dropped it."""
        with self._lock:
            if self._borrowed and self._session is not None:
                with _LOGINS_LOCK:
                    lent = self._token_key in _LOGINS
                if not lent:
                    self._drop()  # the store that logged in has logged out
            for attempt in (1, 2):
                session = self._session if self._session is not None else self._open()
                try:
                    return operation(session)
                except _STALE_SESSION as exc:
                    self._drop()
                    if attempt == 2:
                        raise KeyStoreUnavailable(
                            f"the PKCS#11 token {self.token_label!r} keeps dropping the "
                            f"session ({type(exc).__name__})"
                        ) from exc
                except p11.PKCS11Error as exc:
                    raise KeyStoreError(
                        f"the PKCS#11 token {self.token_label!r} refused the operation "
                        f"({type(exc).__name__})"
                    ) from exc
            raise AssertionError("unreachable")  # pragma: no cover

    def _open(self) -> Session:
        """Open a read/write session on the token and log in as its user."""
        if not os.path.isfile(self.module_path):
            raise KeyStoreUnavailable(
                f"PKCS#11 module {self.module_path} does not exist; check {_MODULE_SETTING}"
            )
        try:
            lib = pkcs11.lib(self.module_path)
        except p11.PKCS11Error as exc:
            raise KeyStoreUnavailable(
                f"cannot load PKCS#11 module {self.module_path}; check {_MODULE_SETTING}"
            ) from exc
        try:
            token = lib.get_token(token_label=self.token_label)
        except p11.PKCS11Error as exc:  # NoSuchToken, MultipleTokensReturned, ...
            raise KeyStoreUnavailable(
                f"no single PKCS#11 token labelled {self.token_label!r} in {self.module_path} "
                f"({type(exc).__name__}); check {_TOKEN_SETTING}"
            ) from exc
        try:
            session = token.open(rw=True, user_pin=self._pin)
        except p11.UserAlreadyLoggedIn as exc:
            # PKCS#11 v2.40 base §5.6 (C_Login): login is per application, so another store
            # of this process holds it; share it only if that store used the same PIN.
            with _LOGINS_LOCK:
                entry = _LOGINS.get(self._token_key)
            if entry is None or not hmac.compare_digest(entry[1], self._pin_digest):
                raise KeyStoreUnavailable(
                    f"PKCS#11 token {self.token_label!r} is already logged in by this process "
                    f"under another PIN; check {_PIN_SETTING}"
                ) from exc
            self._session, self._borrowed = token.open(rw=True), True
            return self._session
        except p11.PKCS11Error as exc:  # PinIncorrect, PinLocked, PinExpired, ...
            raise KeyStoreUnavailable(
                f"PKCS#11 token {self.token_label!r} refused the login ({type(exc).__name__}); "
                f"check {_PIN_SETTING}"
            ) from exc
        with _LOGINS_LOCK:
            _LOGINS[self._token_key] = (self._owner, self._pin_digest)
        self._session, self._borrowed = session, False
        return self._session

    def _drop(self) -> None:
        """Forget the session and every object handle found in it."""
        session, self._session = self._session, None
        self._keys.clear()
        if session is not None and not self._borrowed:
            with _LOGINS_LOCK:  # closing our session logs the process out (C_Logout)
                entry = _LOGINS.get(self._token_key)
                if entry is not None and entry[0] is self._owner:
                    del _LOGINS[self._token_key]
        if session is not None:
            with contextlib.suppress(p11.PKCS11Error):  # already gone: nothing to release
                session.close()

    # -- token objects ---------------------------------------------------------

    def _generate(
        self, session: Session, label: str, algorithm: KeyAlgorithm, created_at: datetime
    ) -> tuple[str, bytes]:
        ident = secrets.token_bytes(16)
        handle = ident.hex()
        params = session.create_domain_parameters(
            KeyType.EC, {Attribute.EC_PARAMS: _CURVE_PARAMS[algorithm]}, local=True
        )
        public, private = params.generate_keypair(
            id=ident,
            label=label,
            store=True,
            capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
            mechanism=Mechanism.EC_KEY_PAIR_GEN,
            public_template={Attribute.TOKEN: True, Attribute.PRIVATE: False},
            # PKCS#11 v3.1 §4.9: CKA_SENSITIVE keeps the value from ever being read,
            # CKA_EXTRACTABLE=False from ever being wrapped out; both are one-way.
            private_template={
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.SIGN: True,
                Attribute.DERIVE: False,
                Attribute.DECRYPT: False,
                Attribute.UNWRAP: False,
            },
        )
        try:
            if private[Attribute.SENSITIVE] is not True or private[Attribute.EXTRACTABLE]:
                raise KeyStoreError("the token ignored CKA_SENSITIVE / CKA_EXTRACTABLE")
            session.create_object(
                {
                    Attribute.CLASS: ObjectClass.DATA,
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: True,
                    Attribute.APPLICATION: APPLICATION,
                    Attribute.LABEL: handle,
                    Attribute.VALUE: json.dumps(
                        {"created_at": _iso(created_at)}, separators=(",", ":")
                    ).encode(),
                }
            )
            point = bytes(public[Attribute.EC_POINT])
        except BaseException:
            for obj in (private, public):
                with contextlib.suppress(p11.PKCS11Error):  # the first error is the one to report
                    obj.destroy()
            raise
        return handle, point

    def _find(self, session: Session, object_class: ObjectClass, handle: str) -> Object:
        template = {Attribute.CLASS: object_class, Attribute.ID: bytes.fromhex(handle)}
        found = list(session.get_objects(template))  # exhaust: ends C_FindObjects
        if not found:
            if object_class is ObjectClass.PRIVATE_KEY:
                raise KeyNotFound(f"no key with handle {handle!r} on the PKCS#11 token")
            raise _UnsupportedKeyError(f"key {handle} has no {object_class.name} on the token")
        if len(found) > 1:
            raise KeyStoreError(f"several {object_class.name} objects share the id {handle}")
        return found[0]

    def _describe(self, session: Session, handle: str) -> KeyInfo:
        private = self._find(session, ObjectClass.PRIVATE_KEY, handle)
        label = str(private[Attribute.LABEL] or "")
        public = self._find(session, ObjectClass.PUBLIC_KEY, handle)
        algorithm = _CURVES.get(bytes(public[Attribute.EC_PARAMS]))
        if algorithm is None:
            raise _UnsupportedKeyError(f"key {handle} is not on P-256 or P-384")
        point = bytes(public[Attribute.EC_POINT])
        created_at = self._created_at(session, handle)
        return KeyInfo(handle, label, algorithm, created_at, _public_key(point, algorithm))

    @staticmethod
    def _created_at(session: Session, handle: str) -> datetime:
        template: dict[Attribute, Any] = {
            Attribute.CLASS: ObjectClass.DATA,
            Attribute.APPLICATION: APPLICATION,
            Attribute.LABEL: handle,
        }
        for obj in list(session.get_objects(template)):
            try:
                created_at = datetime.fromisoformat(json.loads(obj[Attribute.VALUE])["created_at"])
            except (ValueError, KeyError, TypeError) as exc:
                raise KeyStoreError(f"metadata of key {handle} on the token is corrupt") from exc
            if created_at.tzinfo is not None:
                return created_at.astimezone(UTC)
        return _UNKNOWN_CREATION


def _require_handle(handle: str) -> None:
    if not isinstance(handle, str) or not HANDLE_PATTERN.fullmatch(handle):
        raise KeyNotFound(f"no key with handle {handle!r} on the PKCS#11 token")


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _public_key(point: bytes, algorithm: KeyAlgorithm) -> ec.EllipticCurvePublicKey:
    """The public key whose ``CKA_EC_POINT`` is ``point``.

    PKCS#11 v2.40 Current Mechanisms §2.3.3 makes ``CKA_EC_POINT`` the DER OCTET STRING of the X9.62
    point; some tokens give the bare point, which is accepted too.
    """
    if len(point) != 1 + 2 * _COORDINATE_BYTES[algorithm]:
        try:
            point = bytes(OctetString.load(point).native)
        except ValueError as exc:
            raise KeyStoreError("the token returned a malformed CKA_EC_POINT") from exc
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(algorithm.curve, point)
    except ValueError as exc:
        raise KeyStoreError("the token returned an invalid EC public key") from exc
