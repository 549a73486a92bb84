"""Licence types' data schemas (JSON Schema draft 2020-12) and checking data against them."""

from __future__ import annotations

from typing import Any

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


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    """A validator of ``schema``, made once for the same schema object (a batch's items
    share their type's): building one costs about as much as a validation."""
    cached = _VALIDATORS.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    validator = Draft202012Validator(schema)
    if len(_VALIDATORS) >= _VALIDATORS_KEPT:
        _VALIDATORS.clear()
    # Holding ``schema`` keeps its id from being reused while the entry exists.
    _VALIDATORS[id(schema)] = (schema, validator)
    return validator


_VALIDATORS: dict[int, tuple[dict[str, Any], Draft202012Validator]] = {}
_VALIDATORS_KEPT = 64


def check_data(schema: dict[str, Any], data: Any) -> dict[str, Any]:
    """``data`` if it matches ``schema``; else :class:`InvalidLicenceData` naming each field."""
    # Valid data is the common case, and is_valid() stops at the first error it meets.
    if isinstance(data, dict) and _validator(schema).is_valid(data):
        return data
    errors = data_errors(schema, data)
    if errors:
        first = errors[0]
        raise InvalidLicenceData(f"{first['field']}: {first['message']}", errors=errors)
    assert isinstance(data, dict)
    return data
