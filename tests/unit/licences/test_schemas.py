"""Licence data checked with jsonschema-rs where it agrees: the same verdicts and errors
as jsonschema alone, on valid and invalid samples of every keyword it is trusted with."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from authority.demo import DEMO_LICENCE_SCHEMA
from authority.licences.schemas import (
    InvalidLicenceData,
    _checker,
    _compiled_agrees,
    check_data,
    data_errors,
)

BIG = 2**70
SAFE = 2**53

# (schema, samples): each schema within the trusted subset, samples valid and not.
CASES: list[tuple[dict[str, Any], list[Any]]] = [
    (
        DEMO_LICENCE_SCHEMA,
        [
            {"category": "A", "vehicle": "car"},
            {"category": "B", "vehicle": "v" * 32, "plate": "AB12345"},
            {"category": "a", "vehicle": "car"},
            {"category": "A", "vehicle": ""},
            {"category": "A", "vehicle": "v" * 33},
            {"category": "A", "vehicle": "car", "plate": "AB123\n"},  # Python's $: valid
            {"category": "A", "vehicle": "car", "plate": "ab123"},
            {"category": "A", "vehicle": "car", "plate": "AB1234567"},
            {"category": "A", "vehicle": "car", "extra": 1},
            {"category": "A"},
            {"category": "A", "vehicle": "\ud800"},  # a lone surrogate (JSON allows it)
            {"category": "A", "vehicle": "😀" * 32},  # 32 characters, 64 UTF-16 units
            {"category": "A", "vehicle": "e\u0301" * 16},
            {"category": 1, "vehicle": None},
        ],
    ),
    (
        {
            "type": "object",
            "properties": {
                "count": {"type": "integer", "minimum": 0, "maximum": SAFE},
                "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                "flag": {"type": "boolean"},
                "level": {"enum": [1, 2, "three", None, True]},
                "fixed": {"const": 1},
                "note": {"type": ["string", "null"], "format": "email"},
                "big": {"type": "integer", "maximum": BIG},
            },
            "required": ["count"],
        },
        [
            {"count": 0},
            {"count": 1.0},
            {"count": True},
            {"count": -1},
            {"count": SAFE},
            {"count": SAFE + 1},
            {"count": 1.5},
            {"count": 1, "ratio": 0.5},
            {"count": 1, "ratio": 0},
            {"count": 1, "ratio": 1.0},
            {"count": 1, "ratio": True},
            {"count": 1, "flag": 0},
            {"count": 1, "level": 1.0},
            {"count": 1, "level": True},
            {"count": 1, "level": False},
            {"count": 1, "level": "Three"},
            {"count": 1, "fixed": True},
            {"count": 1, "fixed": 1.0},
            {"count": 1, "note": "not an address"},
            {"count": 1, "note": 5},
            {"count": 1, "big": BIG},
            {"count": 1, "big": BIG + 1},
            {"count": 1, "big": -(2**200)},
            {},
        ],
    ),
    (
        # Python's JSON reader takes NaN and Infinity: bounds without a type see them.
        {"type": "object", "properties": {"fee": {"minimum": 0, "maximum": 1}}},
        [
            {"fee": 0.5},
            {"fee": 2},
            {"fee": float("inf")},
            {"fee": float("-inf")},
            {"fee": float("nan")},
            {"fee": [float("inf")]},
            {"fee": {"a": float("-inf")}},
        ],
    ),
    (
        {
            "type": "object",
            "properties": {
                "codes": {
                    "type": "array",
                    "items": {"type": "string", "pattern": "^(AB|CD)-[0-9]{4}$"},
                    "minItems": 1,
                    "maxItems": 2,
                },
                "nested": {
                    "type": "object",
                    "properties": {"x": {"type": "string", "minLength": 2}},
                    "additionalProperties": {"type": "integer"},
                },
            },
            "additionalProperties": False,
            "x-qr": True,
        },
        [
            {"codes": ["AB-1234"]},
            {"codes": ["AB-1234", "CD-0000", "AB-1111"]},
            {"codes": []},
            {"codes": ["ab-1234"]},
            {"codes": ["AB-123"]},
            {"codes": ["XAB-1234"]},
            {"codes": ["AB-١٢٣٤"]},  # Arabic-Indic digits: not [0-9] in either
            {"nested": {"x": "é"}},
            {"nested": {"x": "ab", "y": 1}},
            {"nested": {"x": "ab", "y": "1"}},
            {"other": 1},
        ],
    ),
]


def _reference(schema: dict[str, Any], data: Any) -> tuple[bool, list[dict[str, str]]]:
    """jsonschema alone: the verdict and the errors a 422 lists."""
    return Draft202012Validator(schema).is_valid(data), data_errors(schema, data)


@pytest.mark.parametrize(
    ("schema", "data"),
    [(schema, data) for schema, samples in CASES for data in samples],
)
def test_same_verdict_and_errors_as_jsonschema(schema: dict[str, Any], data: Any) -> None:
    assert _checker(schema).compiled is not None  # jsonschema-rs is in play here
    valid, errors = _reference(schema, data)
    if valid:
        assert check_data(schema, data) is data
    else:
        with pytest.raises(InvalidLicenceData) as caught:
            check_data(schema, data)
        assert caught.value.extensions["errors"] == errors
        assert caught.value.detail == f"{errors[0]['field']}: {errors[0]['message']}"


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"not": {"pattern": "^[A-Z]+$"}}}},
        {"type": "object", "properties": {"a": {"oneOf": [{"type": "string"}]}}},
        {"type": "object", "properties": {"a": {"type": "string", "pattern": "^\\w+$"}}},
        {"type": "object", "properties": {"a": {"type": "string", "pattern": "^.{2}$"}}},
        {"type": "object", "properties": {"a": {"type": "string", "pattern": "^[^A-Z]{2}$"}}},
        {"type": "object", "properties": {"a": {"type": "string", "pattern": "^a{,5}$"}}},
        {"type": "object", "properties": {"a": {"type": "string", "pattern": "(?i)^ab$"}}},
        {"type": "object", "properties": {"a": {"type": "number", "multipleOf": 0.1}}},
        {"type": "object", "properties": {"a": {"type": "array", "uniqueItems": True}}},
        {"type": "object", "patternProperties": {"^a": {"type": "string"}}},
        {
            "type": "object",
            "$defs": {"s": {"type": "string"}},
            "properties": {"a": {"$ref": "#/$defs/s"}},
        },
    ],
)
def test_keywords_read_differently_are_left_to_jsonschema(schema: dict[str, Any]) -> None:
    assert not _compiled_agrees(schema)
    assert _checker(schema).compiled is None


def test_where_python_is_looser_jsonschema_decides() -> None:
    # ECMA-262's $ does not match before a final newline; Python's does, and stands.
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": "^[A-Z]+$"}}}
    assert _checker(schema).compiled is not None
    assert check_data(schema, {"a": "AB\n"}) == {"a": "AB\n"}
    # Under "not", that looseness refuses: jsonschema-rs is not used there at all.
    negated = {"type": "object", "properties": {"a": {"not": {"pattern": "^[A-Z]+$"}}}}
    with pytest.raises(InvalidLicenceData):
        check_data(negated, {"a": "AB\n"})
