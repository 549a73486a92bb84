"""RFC 8785 JSON Canonicalization Scheme with a fast path: licence documents, audit entries.

:func:`canonical_json` gives exactly ``rfc8785.dumps``'s bytes. Licence
documents and audit entries hold only strings, integers, booleans, null,
arrays and objects; for those, RFC 8785 output is what the standard library's C encoder writes
with sorted keys, no whitespace and no ASCII escaping, provided that:

- no number is a float (RFC 8785 §3.2.2.3 uses ECMAScript's number form) or
  an integer outside ±(2**53 - 1) (I-JSON, RFC 7493 §2.2, which rfc8785 refuses);
- no object key has a character at or above U+D800, since RFC 8785 §3.2.3
  sorts keys by UTF-16 code units and Python by code points, which differ
  only from there on;
- every string is valid Unicode (no lone surrogates: RFC 8785 §3.2.2.2).

String escaping already agrees: both write ``\\"``, ``\\\\``, ``\\b``, ``\\t``,
``\\n``, ``\\f``, ``\\r`` and other controls below U+0020 as ``\\u00xx`` in lower
case, and everything else as UTF-8 (RFC 8785 §3.2.2.2). Anything else goes
to ``rfc8785`` itself.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

_INT_LIMIT = 2**53 - 1
_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
)


def _plain(value: Any) -> bool:
    """Whether ``value`` is inside the fast path's domain, lone surrogates aside (see
    the module docstring): those fail the final UTF-8 encoding instead.

    Loops rather than generators, and strings (most of a document) taken without a
    call: a licence document is checked in about 40 % of the time.
    """
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-_INT_LIMIT <= value <= _INT_LIMIT)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not (key.isascii() or max(key) < "\ud800"):
                return False
            if type(item) is not str and not _plain(item):
                return False
        return True
    if kind is list:
        for item in value:  # noqa: SIM110 - a loop, not all(): no generator per list
            if type(item) is not str and not _plain(item):
                return False
        return True
    return False


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 canonical form of ``value``, as ``rfc8785.dumps`` gives it."""
    if _plain(value):
        try:
            return _ENCODER.encode(value).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (RFC 8785 §3.2.2.2): rfc8785 refuses it
            pass
    return bytes(rfc8785.dumps(value))
