"""The params.yaml schema (names filled from labconfig.names) and its errors as readable lines."""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .names import SCHEMA_ENUMS

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "params.schema.yaml"


@functools.cache
def _schema() -> dict[str, Any]:
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    for name, values in SCHEMA_ENUMS.items():
        schema["$defs"][name]["enum"] = list(values)
    return schema


def load_schema() -> dict[str, Any]:
    """The JSON schema of params.yaml, its name enums filled from the torch-free names."""
    return copy.deepcopy(_schema())


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "(top level)"


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "enum":
        allowed = ", ".join(map(str, error.validator_value))
        return f"{error.instance!r} is not allowed; allowed values: {allowed}"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        return f"{error.message}; allowed keys: {', '.join(allowed)}"
    if error.validator in ("oneOf", "anyOf") and "description" in error.schema:
        return f"{error.instance!r} is not allowed; {' '.join(error.schema['description'].split())}"
    if error.validator == "minItems" and error.instance == []:
        return "the list is empty; name at least one"
    return error.message


def schema_problems(config: Mapping[str, Any]) -> list[str]:
    """One line per schema violation, each naming the key path and what is allowed."""
    validator = jsonschema.Draft202012Validator(_schema())
    problems = []
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    for error in errors:
        where = _key_path(error)
        # a propertyNames failure reports the bad name; point at it
        if "propertyNames" in error.relative_schema_path:
            where = f"{where} (key {error.instance!r})"
        problems.append(f"{where}: {_describe(error)}")
    return problems


def technique_option_problems(where: str, technique: str, options: Mapping[str, Any]) -> list[str]:
    """One line per option of a variant (``where``: techniques.KEY) that the registered
    ``technique``'s entry in the schema does not allow."""
    schema = _schema()
    techniques = schema["properties"]["techniques"]
    if technique.endswith("+clat"):
        entry = schema["$defs"]["clat"]
    else:
        entry = techniques["properties"][technique]
    sub = {"$defs": schema["$defs"], **entry}
    validator = jsonschema.Draft202012Validator(sub)
    problems = []
    for error in sorted(validator.iter_errors(dict(options)), key=lambda e: str(e.absolute_path)):
        key = ".".join([where, *map(str, error.absolute_path)])
        problems.append(f"{key}: {_describe(error)} (options of {technique})")
    return problems
