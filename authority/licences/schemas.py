"""Licence types' data schemas (JSON Schema draft 2020-12) and checking data against them."""

from __future__ import annotations

import math
import re
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from authority.errors import InvalidInput

MAX_SCHEMA_PROPERTIES = 64


class InvalidSchema(InvalidInput):
    """A licence type's schema is not a usable JSON Schema for licence data."""

    slug = "invalid-schema"
    title = "Invalid licence schema"


class InvalidLicenceData(InvalidInput):
    """A licence's data fields do not match its type's schema; ``errors`` lists each."""

    slug = "invalid-licence-data"
    title = "Invalid licence data"


def check_schema(schema: Any) -> dict[str, Any]:
    """``schema`` if it is a draft 2020-12 schema of a flat-enough object, else raise."""
    if not isinstance(schema, dict):
        raise InvalidSchema("the schema must be a JSON object")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise InvalidSchema(f"the schema is not valid JSON Schema: {exc.message}") from None
    if schema.get("type") != "object" or not isinstance(schema.get("properties"), dict):
        raise InvalidSchema(
            'the schema must describe an object: {"type": "object", "properties": {...}}'
        )
    if len(schema["properties"]) > MAX_SCHEMA_PROPERTIES:
        raise InvalidSchema(f"a licence type may have at most {MAX_SCHEMA_PROPERTIES} fields")
    # Remote references would make validation fetch from the network.
    if '"$ref": "http' in str(schema).replace("'", '"'):
        raise InvalidSchema("the schema may not reference remote schemas")
    return schema


def data_errors(schema: dict[str, Any], data: Any) -> list[dict[str, str]]:
    """Every way ``data`` fails ``schema``: ``[{"field", "message"}]`` (empty if valid)."""
    validator = Draft202012Validator(schema)
    errors = []
    for error in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(part) for part in error.absolute_path)
        errors.append({"field": f"data.{path}" if path else "data", "message": error.message})
    return errors


class _Checker:
    """A schema's validators: jsonschema's, and jsonschema-rs's where it gives the same
    verdicts (:func:`_compiled_agrees`). jsonschema-rs (Rust) accepts valid data in about
    2 µs where jsonschema takes about 20; only acceptance is asked of it."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema  # held: keeps its id from being reused while cached
        self.validator = Draft202012Validator(schema)
        self.compiled = _compiled(schema) if _compiled_agrees(schema) else None

    def accepts(self, data: Any) -> bool:
        """Whether ``data`` is valid, as jsonschema decides.

        jsonschema-rs's "valid" is final; its "invalid" goes to jsonschema, whose
        verdict stands (the two differ where Python's regular expressions are looser,
        e.g. ``$`` matching before a final newline), as does any error of its own
        (text it cannot take, such as a lone surrogate).
        """
        return self._compiled_accepts(data) or self.validator.is_valid(data)

    def _compiled_accepts(self, data: Any) -> bool:
        # Python's JSON reader takes NaN and Infinity, which JSON lacks: jsonschema-rs
        # lets an infinite number through a bound that jsonschema refuses.
        if self.compiled is None or not _finite(data):
            return False
        try:
            return self.compiled.is_valid(data)
        except Exception:  # jsonschema decides instead
            return False


def _finite(value: Any) -> bool:
    """Whether ``value`` holds no infinite or NaN number."""
    kind = type(value)
    if kind is float:
        return math.isfinite(value)
    if kind is dict:
        return all(_finite(item) for item in value.values())
    if kind is list:
        return all(_finite(item) for item in value)
    return True


# Keywords jsonschema-rs decides as jsonschema does, the subset licence types use: each
# only ever narrows what is valid (no not, oneOf, if/then: under those a stricter
# part would make the whole looser), and none depends on regular expressions beyond
# SAFE_PATTERN nor on equality of 1 and true (enum and const compare as JSON does in
# both, checked in tests/unit/licences/test_schemas.py).
_ANNOTATIONS = frozenset(
    ("$schema", "$comment", "title", "description", "default", "examples", "deprecated",
     "readOnly", "writeOnly", "format")  # format: an annotation in both (no format checker)
)  # fmt: skip
_LEAVES = frozenset(
    ("type", "enum", "const", "required", "minLength", "maxLength", "minimum", "maximum",
     "exclusiveMinimum", "exclusiveMaximum", "minItems", "maxItems")
)  # fmt: skip
# Patterns of ASCII letters, digits, anchors, plain classes, groups and quantifiers:
# none of what the two regular expression dialects read differently (escapes such as
# \\s and \\w, ".", negated classes, which ECMA-262 lets match half of an astral
# character, braces that are not a quantifier, which Python reads in "{,5}", and
# "(?" flags and extensions).
SAFE_PATTERN = re.compile(
    r"(?!.*\(\?)"
    r"(?:[A-Za-z0-9_ -]|[\^$|()?*+]|\{[0-9]+(?:,[0-9]*)?\}|\[[A-Za-z0-9_ -]+\])*"
)


def _compiled_agrees(schema: Any) -> bool:
    """Whether ``schema`` uses only keywords on which jsonschema-rs agrees with jsonschema."""
    if isinstance(schema, bool):
        return True
    if not isinstance(schema, dict):
        return False
    for keyword, value in schema.items():
        if keyword in _ANNOTATIONS or keyword in _LEAVES or keyword.startswith("x-"):
            continue
        if keyword == "pattern":
            if not (isinstance(value, str) and SAFE_PATTERN.fullmatch(value)):
                return False
        elif keyword == "properties":
            if not isinstance(value, dict) or not all(map(_compiled_agrees, value.values())):
                return False
        elif keyword in ("items", "additionalProperties"):
            if not _compiled_agrees(value):
                return False
        else:
            return False
    return True


def _compiled(schema: dict[str, Any]) -> jsonschema_rs.Draft202012Validator | None:
    try:
        return jsonschema_rs.Draft202012Validator(schema)
    except Exception:  # a schema it cannot read: jsonschema alone decides
        return None


def _checker(schema: dict[str, Any]) -> _Checker:
    """The checker of ``schema``, made once for the same schema object (a batch's items
    share their type's): building one costs more than a validation."""
    cached = _CHECKERS.get(id(schema))
    if cached is not None and cached.schema is schema:
        return cached
    checker = _Checker(schema)
    if len(_CHECKERS) >= _CHECKERS_KEPT:
        _CHECKERS.clear()
    _CHECKERS[id(schema)] = checker
    return checker


_CHECKERS: dict[int, _Checker] = {}
_CHECKERS_KEPT = 64


def check_data(schema: dict[str, Any], data: Any) -> dict[str, Any]:
    """``data`` if it matches ``schema``; else :class:`InvalidLicenceData` naming each field."""
    # Valid data is the common case, and accepting it stops at the first error met.
    if isinstance(data, dict) and _checker(schema).accepts(data):
        return data
    errors = data_errors(schema, data)
    if errors:
        first = errors[0]
        raise InvalidLicenceData(f"{first['field']}: {first['message']}", errors=errors)
    assert isinstance(data, dict)
    return data
