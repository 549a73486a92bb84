"""HTML form fields generated from a licence type's JSON Schema (draft 2020-12), and
the form's answer turned back into licence data with each error tied to its field.

Strings become text inputs (``enum``: a select; ``format: date``: a date input),
integers and numbers number inputs, booleans checkboxes. Anything else is typed
as JSON text; the schema is checked on the server whatever the browser did.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

PREFIX = "data."


@dataclass(frozen=True)
class FormField:
    """One input of the form: its name, label, kind and constraints."""

    key: str
    label: str
    kind: str  # text | number | select | checkbox | date | json
    required: bool
    options: tuple[str, ...] = ()
    max_length: int | None = None
    step: str | None = None
    hint: str | None = None

    @property
    def name(self) -> str:
        """The input's name (and id) in the form."""
        return PREFIX + self.key


def _kind(spec: Mapping[str, Any]) -> str:
    kind = spec.get("type")
    if "enum" in spec:
        return "select"
    if kind == "string":
        return "date" if spec.get("format") == "date" else "text"
    if kind in ("integer", "number"):
        return "number"
    if kind == "boolean":
        return "checkbox"
    return "json"


def fields_of(schema: Mapping[str, Any]) -> list[FormField]:
    """The form fields of ``schema``'s properties, in the schema's order."""
    required = set(schema.get("required", ()))
    fields = []
    for key, raw in schema.get("properties", {}).items():
        spec: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        kind = _kind(spec)
        fields.append(
            FormField(
                key=key,
                label=str(spec.get("title") or key),
                kind=kind,
                required=key in required,
                options=tuple(str(v) for v in spec.get("enum", ())),
                max_length=spec.get("maxLength")
                if isinstance(spec.get("maxLength"), int)
                else None,
                step="1"
                if spec.get("type") == "integer"
                else ("any" if kind == "number" else None),
                hint=str(spec["description"]) if spec.get("description") else None,
            )
        )
    return fields


def _value(field: FormField, spec: Mapping[str, Any], text: str) -> Any:
    if field.kind == "checkbox":
        return text in ("on", "true", "1")
    if field.kind == "number":
        try:
            return int(text) if spec.get("type") == "integer" else float(text)
        except ValueError:
            return text  # the schema check names the field
    if field.kind == "select" and spec.get("type") in ("integer", "number"):
        try:
            return json.loads(text)
        except ValueError:
            return text
    if field.kind == "json":
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def data_from_form(schema: Mapping[str, Any], form: Mapping[str, str]) -> dict[str, Any]:
    """The licence data the form's answer gives (empty optional fields left out)."""
    properties = schema.get("properties", {})
    data: dict[str, Any] = {}
    for field in fields_of(schema):
        text = form.get(field.name, "")
        if field.kind == "checkbox":
            data[field.key] = _value(field, properties[field.key], text)
        elif text.strip():
            data[field.key] = _value(field, properties[field.key], text.strip())
    return data


def field_errors(schema: Mapping[str, Any], data: Any) -> dict[str, str]:
    """Each field's first error (``""`` for errors of the whole object), in the
    validator's words; a missing required field's message is ``"required"``."""
    errors: dict[str, str] = {}
    for error in Draft202012Validator(dict(schema)).iter_errors(data):
        if error.validator == "required" and not error.absolute_path:
            for key in error.validator_value:
                if isinstance(data, dict) and key not in data:
                    errors.setdefault(key, "required")
            continue
        key = str(error.absolute_path[0]) if error.absolute_path else ""
        errors.setdefault(key, error.message)
    return errors
