"""The compact QR seal: a licence's essential fields, sealed, in a URL.

A licence's QR code holds one URL, ``{issuer}/v/{payload}``: a phone camera
opens it on the verification page, and an offline verifier checks the seal
it carries against the trust list with no network. ``docs/formats-qr.md``
documents the format byte by byte; in short:

- the *payload* is a fixed binary layout (not CBOR/COSE: a hand-written
  layout is 38 bytes smaller on the demo licence and needs no parser), in the
  spirit of ICAO 9303-13 Visible Digital Seals: a version byte, an 8-byte key
  identifier, the fields (upper-case text packed three characters to two
  bytes like C40, identity numbers packed as integers, dates as day counts)
  and a raw ES256 signature ``r || s`` (RFC 7518 §3.4) over a domain
  separation prefix and everything before it;
- the binary is written with the RFC 9285 (Base45) algorithm over a 42
  character alphabet: Base45's alphabet without space, ``%`` and ``/``,
  which a URL path cannot carry literally. Every character stays in the
  ISO/IEC 18004 §7.4.4 alphanumeric set, so an upper-case URL
  (``HTTPS://ID.EXAMPLE.GOV/V/...``) is coded at 5.5 bits a character.

The decoder bounds every length before it reads, and reports anything it
cannot read as :class:`MalformedQrSeal`, never another exception.
"""

from __future__ import annotations

import array
import functools
import hashlib
import operator
import struct
import sys
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import NamedTuple
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from authority.errors import InvalidInput
from authority.identity.identifiers import USCC_ALPHABET
from authority.pki.keystore import KeyAlgorithm, Signer

FORMAT_VERSION = 1
#: Prefixed to the signed bytes so a QR signature can never be taken for another kind.
DOMAIN = b"AUTHORITY-QR-1"
KEY_ID_LENGTH = 8
SIGNATURE_LENGTH = 64  # ES256 r || s, 32 octets each (RFC 7518 §3.4)
MAX_TEXT = 127  # characters (packed) or UTF-8 bytes of one text field
MAX_FIELDS = 32
MAX_PAYLOAD_BYTES = 1024
MAX_PAYLOAD_CHARS = MAX_PAYLOAD_BYTES * 3 // 2
MAX_INPUT_CHARS = 4096  # a whole URL: issuer, "/v/" and payload
NO_DATE = 0xFFFF  # valid_until of a licence that does not expire
_EPOCH = date(1970, 1, 1).toordinal()

#: RFC 9285 §4 alphabet without " ", "%" and "/" (not literal in a URL path), same order.
PAYLOAD_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ$*+-.:"
#: Packed text: 40 symbols, so three characters fit two bytes (40**3 = 64000), as ICAO C40.
TEXT_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ -./"
RESIDENT_ID_ALPHABET = "0123456789X"  # GB 11643: 17 digits and a check character
ID_LENGTH = 18  # resident identity number and unified social credit code alike
#: ISO/IEC 18004 §7.4.4 Table 5: the alphanumeric mode character set.
QR_ALPHANUMERIC = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")

_BASE = len(PAYLOAD_ALPHABET)
_BASE_SQUARED = _BASE * _BASE
_DIGITS = {c: i for i, c in enumerate(PAYLOAD_ALPHABET)}
_PAYLOAD_CHARS = frozenset(PAYLOAD_ALPHABET)
_TEXT_CHARS = frozenset(TEXT_ALPHABET)
_ID_CHARS = {"citizen": frozenset(RESIDENT_ID_ALPHABET), "business": frozenset(USCC_ALPHABET)}
_PACKED = 0x80


@functools.cache
def _groups() -> array.array[int]:
    """The characters ``c d e`` of each two-byte value ``n`` (RFC 9285 §4), by ``n``: the
    three ASCII bytes and a zero, as one 4-byte machine word (256 KB, made on first use).

    One look-up a group instead of a division, a remainder and two look-ups; a compact
    array rather than 65,536 string objects, so the table stays in the processor's cache.
    """
    typecode = next(code for code in "IL" if array.array(code).itemsize == 4)
    alphabet = PAYLOAD_ALPHABET.encode("ascii")
    return array.array(
        typecode,
        (
            int.from_bytes(
                bytes(
                    (
                        alphabet[n % _BASE],
                        alphabet[n // _BASE % _BASE],
                        alphabet[n // _BASE_SQUARED],
                        0,
                    )
                ),
                sys.byteorder,
            )
            for n in range(0x10000)
        ),
    )


# str.translate tables from each packing alphabet's characters to chr(their index).
_INDEXES = {
    alphabet: {ord(c): i for i, c in enumerate(alphabet)}
    for alphabet in (TEXT_ALPHABET, RESIDENT_ID_ALPHABET, USCC_ALPHABET)
}
# Holder byte: the kind, and how its identity number is written.
_HOLDER_FORMS: dict[int, tuple[str, str | None]] = {
    0x01: ("citizen", RESIDENT_ID_ALPHABET),
    0x02: ("business", USCC_ALPHABET),
    0x11: ("citizen", None),  # any other form: a text field
    0x12: ("business", None),
}
HOLDER_KINDS = ("citizen", "business")


class MalformedQrSeal(InvalidInput):
    """The text is not a QR seal this version can read."""

    slug = "malformed-qr-seal"
    title = "Malformed QR seal"


class QrSealSignatureInvalid(InvalidInput):
    """The QR seal's signature does not verify with the certificate its key id names."""

    slug = "qr-seal-signature-invalid"
    title = "QR seal signature invalid"


class QrSealUnknownKey(InvalidInput):
    """No certificate offered has the QR seal's key id."""

    slug = "qr-seal-unknown-key"
    title = "QR seal key unknown"


class QrClaimsInvalid(InvalidInput):
    """The claims cannot be written in a QR seal (too long, out of range, control characters)."""

    slug = "invalid-qr-claims"
    title = "Claims not encodable in a QR seal"


@dataclass(frozen=True)
class QrClaims:
    """A licence's essential fields, as the QR seal carries them.

    ``fields`` are type-specific (short key, value) pairs in the caller's
    order; keys and values made of ``TEXT_ALPHABET`` (upper case) pack smaller.
    """

    number: str
    type_code: str
    holder_kind: str  # "citizen" or "business"
    holder_id: str
    holder_name: str
    issued_on: date
    valid_from: date
    valid_until: date | None
    fields: tuple[tuple[str, str], ...] = ()


class DecodedQr(NamedTuple):
    """What :func:`decode_qr_seal` read; ``signed`` is the exact input of the signature.

    A tuple ``(claims, key_id, signed, signature)``: ``signed`` is
    :data:`DOMAIN` followed by every payload byte before the signature.
    """

    claims: QrClaims
    key_id: bytes
    signed: bytes
    signature: bytes


@dataclass(frozen=True)
class VerifiedQr:
    """A QR seal whose signature verified with ``certificate`` (not yet path-validated)."""

    claims: QrClaims
    key_id: bytes
    certificate: x509.Certificate


def qr_key_id(certificate: x509.Certificate) -> bytes:
    """The key id naming ``certificate``: the first 8 bytes of SHA-256 over its DER."""
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).digest()[
        :KEY_ID_LENGTH
    ]


# -- the text form: the RFC 9285 algorithm over a URL-safe 42-symbol alphabet ----------


def to_text(data: bytes) -> str:
    """Write ``data`` as RFC 9285 §4 does, with :data:`PAYLOAD_ALPHABET`.

    Two bytes ``a, b`` make ``n = 256a + b = c + 42d + 42²e``, written ``c d e``
    (42³ = 74088 > 65535); a last single byte makes two characters.
    """
    groups = len(data) // 2
    values = struct.unpack(f">{groups}H", data[: 2 * groups])
    table = _groups()
    # Each group's word from the table, written out in machine order (c d e 0), the zero
    # padding then deleted: no Python code runs per group.
    words = operator.itemgetter(*values)(table) if groups > 1 else [table[v] for v in values]
    text = array.array(table.typecode, words).tobytes().translate(None, b"\0").decode("ascii")
    if len(data) % 2:
        e, c = divmod(data[-1], _BASE)
        text += PAYLOAD_ALPHABET[c] + PAYLOAD_ALPHABET[e]
    return text


def from_text(text: str) -> bytes:
    """Read :func:`to_text`'s output; :class:`MalformedQrSeal` on any other text."""
    if len(text) > MAX_PAYLOAD_CHARS:
        raise MalformedQrSeal(f"the payload is longer than {MAX_PAYLOAD_CHARS} characters")
    if len(text) % 3 == 1:
        raise MalformedQrSeal("the payload's length is not a whole number of groups")
    try:
        values = [_DIGITS[c] for c in text]
    except KeyError:
        raise MalformedQrSeal("the payload has a character outside its alphabet") from None
    out = bytearray()
    whole = len(values) - len(values) % 3
    for i in range(0, whole, 3):
        n = values[i] + values[i + 1] * _BASE + values[i + 2] * _BASE_SQUARED
        if n > 0xFFFF:  # RFC 9285 §4: a group over its byte range
            raise MalformedQrSeal("the payload has a group out of range")
        out += bytes((n >> 8, n & 0xFF))
    if whole < len(values):
        n = values[whole] + values[whole + 1] * _BASE
        if n > 0xFF:
            raise MalformedQrSeal("the payload has a group out of range")
        out.append(n)
    return bytes(out)


# -- binary fields ------------------------------------------------------------------------


def _packed_size(count: int, base: int) -> int:
    """Bytes holding any ``count`` symbols of a ``base``-symbol alphabet as one integer."""
    largest: int = base**count - 1
    return (largest.bit_length() + 7) // 8


def _pack(text: str, alphabet: str) -> bytes:
    n = 0
    base = len(alphabet)
    # Each character as its index in the alphabet (str.translate), one byte each.
    for digit in text.translate(_INDEXES[alphabet]).encode("latin-1"):
        n = n * base + digit
    return n.to_bytes(_packed_size(len(text), base), "big")


def _unpack(data: bytes, alphabet: str, count: int) -> str:
    n = int.from_bytes(data, "big")
    if n >= len(alphabet) ** count:
        raise MalformedQrSeal("a packed text is out of range")
    chars: list[str] = []
    for _ in range(count):
        n, i = divmod(n, len(alphabet))
        chars.append(alphabet[i])
    return "".join(reversed(chars))


def _has_controls(value: str) -> bool:
    # isprintable() is false for every control (Cc) and surrogate (Cs) character, and for
    # others besides (format, separators...): only then does each character need a look.
    if value.isprintable():
        return False
    return any(unicodedata.category(c) in ("Cc", "Cs") for c in value)


def _text(what: str, value: str) -> bytes:
    """A text field: a header byte (bit 7: packed; bits 0-6: length), then its bytes."""
    if _has_controls(value):
        raise QrClaimsInvalid(f"{what} has control characters")
    if value and len(value) <= MAX_TEXT and _TEXT_CHARS.issuperset(value):
        return bytes([_PACKED | len(value)]) + _pack(value, TEXT_ALPHABET)
    raw = value.encode("utf-8")
    if len(raw) > MAX_TEXT:
        raise QrClaimsInvalid(f"{what} is longer than {MAX_TEXT} bytes of UTF-8")
    return bytes([len(raw)]) + raw


def _day(what: str, value: date | None) -> bytes:
    if value is None:
        return NO_DATE.to_bytes(2, "big")
    days = value.toordinal() - _EPOCH
    if not 0 <= days < NO_DATE:
        raise QrClaimsInvalid(f"{what} {value} is outside 1970-01-01 .. 2149-06-05")
    return days.to_bytes(2, "big")


def _holder(kind: str, number: str) -> bytes:
    if kind not in HOLDER_KINDS:
        raise QrClaimsInvalid(f"holder kind {kind!r} is neither citizen nor business")
    form = 0x01 if kind == "citizen" else 0x02
    alphabet = RESIDENT_ID_ALPHABET if kind == "citizen" else USCC_ALPHABET
    if len(number) == ID_LENGTH and _ID_CHARS[kind].issuperset(number):
        return bytes([form]) + _pack(number, alphabet)
    return bytes([form | 0x10]) + _text("holder id", number)


def _body(claims: QrClaims, key_id: bytes) -> bytes:
    if len(claims.fields) > MAX_FIELDS:
        raise QrClaimsInvalid(f"a QR seal carries at most {MAX_FIELDS} type-specific fields")
    parts = [
        bytes([FORMAT_VERSION]),
        key_id,
        _text("licence number", claims.number),
        _text("licence type", claims.type_code),
        _holder(claims.holder_kind, claims.holder_id),
        _text("holder name", claims.holder_name),
        _day("issue date", claims.issued_on),
        _day("valid_from", claims.valid_from),
        _day("valid_until", claims.valid_until),
        bytes([len(claims.fields)]),
    ]
    for key, value in claims.fields:
        parts += (_text(f"field key {key!r}", key), _text(f"field {key!r}", value))
    return b"".join(parts)


class QrSealer:
    """Seals QR claims with one key; the key checks and key id are done once, here.

    Raises ``ValueError`` unless ``signer`` holds a P-256 key that
    ``seal_certificate`` certifies. Instances are immutable and may be shared.
    """

    def __init__(self, signer: Signer, seal_certificate: x509.Certificate) -> None:
        if signer.algorithm is not KeyAlgorithm.EC_P256:
            raise ValueError("the QR seal is ES256: the signer must hold a P-256 key")
        public = seal_certificate.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey) or public.public_numbers() != (
            signer.public_key.public_numbers()
        ):
            raise ValueError("the seal certificate does not certify the signer's key")
        self._signer = signer
        self._key_id = qr_key_id(seal_certificate)

    def seal(self, claims: QrClaims) -> str:
        """The payload text for the URL path (see :func:`qr_url`) of ``claims``, sealed.

        Raises :class:`QrClaimsInvalid` when the claims cannot be written.
        """
        return self.seal_many([claims])[0]

    def seal_many(self, claims: Iterable[QrClaims]) -> list[str]:
        """:meth:`seal` of each claims, in order; every body is written before the first
        signature, and the signatures are made back to back."""
        bodies = []
        for item in claims:
            body = _body(item, self._key_id)
            if len(body) + SIGNATURE_LENGTH > MAX_PAYLOAD_BYTES:
                raise QrClaimsInvalid(f"the claims make a seal over {MAX_PAYLOAD_BYTES} bytes")
            bodies.append(body)
        to_sign = [DOMAIN + body for body in bodies]
        sign = self._signer.sign
        signatures = [sign(data) for data in to_sign]
        texts = []
        for body, signature in zip(bodies, signatures, strict=True):
            r, s = decode_dss_signature(signature)
            texts.append(to_text(body + r.to_bytes(32, "big") + s.to_bytes(32, "big")))
        return texts


def encode_qr_seal(claims: QrClaims, signer: Signer, seal_certificate: x509.Certificate) -> str:
    """Seal ``claims`` with ``signer`` (a P-256 key certified by ``seal_certificate``).

    Returns the payload text for the URL path (see :func:`qr_url`). Raises
    :class:`QrClaimsInvalid` when the claims cannot be written.
    """
    return QrSealer(signer, seal_certificate).seal(claims)


def qr_url(issuer: str, payload: str) -> str:
    """The QR's URL: ``{ISSUER}/V/{payload}`` in upper case when that is safe, else as given.

    Upper case is safe when the issuer is only a scheme, host and port (all
    case-insensitive, RFC 3986 §3.1 and §3.2.2) written in the QR alphanumeric
    set; the whole URL is then alphanumeric-mode text (ISO/IEC 18004 §7.4.4).
    Otherwise the issuer is kept as given (a path is case-sensitive) and the
    renderer codes it as a byte segment before the alphanumeric payload.
    """
    if not payload or not _PAYLOAD_CHARS.issuperset(payload):
        raise MalformedQrSeal("the payload has a character outside its alphabet")
    return _url_head(issuer) + payload


@functools.lru_cache(maxsize=16)
def _url_head(issuer: str) -> str:
    """What :func:`qr_url` writes before the payload for ``issuer``."""
    base = issuer.rstrip("/")
    parts = urlsplit(base)
    origin = f"{parts.scheme}://{parts.netloc}".upper()
    if (
        parts.scheme.lower() in ("http", "https")
        and parts.netloc
        and "@" not in parts.netloc
        and not (parts.path or parts.query or parts.fragment)
        and all(c in QR_ALPHANUMERIC for c in origin)
    ):
        return f"{origin}/V/"
    return f"{base}/v/"


def payload_of(payload_or_url: str) -> str:
    """The payload text of a URL made by :func:`qr_url`, or of the bare payload."""
    if not isinstance(payload_or_url, str):
        raise MalformedQrSeal("a QR seal is text")
    if len(payload_or_url) > MAX_INPUT_CHARS:
        raise MalformedQrSeal(f"a QR seal is at most {MAX_INPUT_CHARS} characters")
    text = payload_or_url.strip()
    if "://" in text:
        head, _, text = text.rpartition("/")
        if not head.lower().endswith("/v"):
            raise MalformedQrSeal("a QR seal URL ends in /v/ and the payload")
    return text


class _Reader:
    """Reads the binary layout; every overrun is :class:`MalformedQrSeal`."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, count: int) -> bytes:
        if self.at + count > len(self.data):
            raise MalformedQrSeal("the payload ends inside a field")
        chunk = self.data[self.at : self.at + count]
        self.at += count
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def text(self) -> str:
        header = self.byte()
        count = header & ~_PACKED
        if header & _PACKED:
            return _unpack(self.take(_packed_size(count, len(TEXT_ALPHABET))), TEXT_ALPHABET, count)
        value = self.take(count).decode("utf-8")  # UnicodeDecodeError: see decode_qr_seal
        if _has_controls(value):
            raise MalformedQrSeal("a text field has control characters")
        return value

    def day(self) -> date | None:
        days = int.from_bytes(self.take(2), "big")
        return None if days == NO_DATE else date.fromordinal(_EPOCH + days)

    def required_day(self) -> date:
        value = self.day()
        if value is None:
            raise MalformedQrSeal("a required date is absent")
        return value


def _read_claims(reader: _Reader) -> QrClaims:
    number, type_code = reader.text(), reader.text()
    form = reader.byte()
    if form not in _HOLDER_FORMS:
        raise MalformedQrSeal(f"unknown holder form 0x{form:02x}")
    kind, alphabet = _HOLDER_FORMS[form]
    if alphabet is None:
        holder_id = reader.text()
    else:
        size = _packed_size(ID_LENGTH, len(alphabet))
        holder_id = _unpack(reader.take(size), alphabet, ID_LENGTH)
    name = reader.text()
    issued_on, valid_from, valid_until = reader.required_day(), reader.required_day(), reader.day()
    count = reader.byte()
    if count > MAX_FIELDS:
        raise MalformedQrSeal(f"more than {MAX_FIELDS} type-specific fields")
    fields = tuple((reader.text(), reader.text()) for _ in range(count))
    return QrClaims(
        number, type_code, kind, holder_id, name, issued_on, valid_from, valid_until, fields
    )


def decode_qr_seal(payload_or_url: str) -> DecodedQr:
    """Read a QR seal (its URL or bare payload) without checking its signature.

    Raises :class:`MalformedQrSeal` on anything it cannot read.
    """
    data = from_text(payload_of(payload_or_url))
    if len(data) < 1 + KEY_ID_LENGTH + SIGNATURE_LENGTH:
        raise MalformedQrSeal("the payload is too short to be a QR seal")
    if data[0] != FORMAT_VERSION:
        raise MalformedQrSeal(f"unsupported QR seal version {data[0]}")
    body, signature = data[:-SIGNATURE_LENGTH], data[-SIGNATURE_LENGTH:]
    reader = _Reader(body)
    reader.take(1)
    key_id = reader.take(KEY_ID_LENGTH)
    try:
        claims = _read_claims(reader)
    except (UnicodeError, ValueError, OverflowError) as exc:  # bad UTF-8; defence in depth
        raise MalformedQrSeal(f"the payload has an unreadable field ({exc})") from None
    if reader.at != len(body):
        raise MalformedQrSeal("the payload has bytes after its last field")
    return DecodedQr(claims, key_id, DOMAIN + body, signature)


def verify_qr_seal(payload_or_url: str, certificates: Iterable[x509.Certificate]) -> VerifiedQr:
    """Check a QR seal's ES256 signature with the certificate its key id names.

    ``certificates`` are candidates, typically the trust list's seal
    certificates. Whether that certificate is trusted, valid and unrevoked is
    for the caller (the verification module) to decide.

    Raises :class:`MalformedQrSeal`, :class:`QrSealUnknownKey` or
    :class:`QrSealSignatureInvalid`.
    """
    return check_qr_signature(decode_qr_seal(payload_or_url), certificates)


def check_qr_signature(decoded: DecodedQr, certificates: Iterable[x509.Certificate]) -> VerifiedQr:
    """:func:`verify_qr_seal` for a seal already decoded; the same errors but malformed."""
    matching = [c for c in certificates if qr_key_id(c) == decoded.key_id]
    if not matching:
        raise QrSealUnknownKey(
            f"no seal certificate has key id {decoded.key_id.hex()}", key_id=decoded.key_id.hex()
        )
    der_signature = encode_dss_signature(
        int.from_bytes(decoded.signature[:32], "big"), int.from_bytes(decoded.signature[32:], "big")
    )
    for certificate in matching:
        public = certificate.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
            continue
        try:
            public.verify(der_signature, decoded.signed, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            continue
        return VerifiedQr(decoded.claims, decoded.key_id, certificate)
    raise QrSealSignatureInvalid(
        f"the QR seal's signature does not verify with the certificate of key id "
        f"{decoded.key_id.hex()}",
        key_id=decoded.key_id.hex(),
    )
