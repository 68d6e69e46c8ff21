"""A request body read strictly: JSON with no duplicate keys or constants, validated against a protocol model."""

from __future__ import annotations

import json
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError

from hwb_sandbox.i18n import N_
from hwb_sandbox.problems import Problem

MAX_REPORTED_ERRORS: Final = 50

_M = TypeVar("_M", bound=BaseModel)


def parse_json(body: bytes) -> Any:
    """Parse a UTF-8 JSON body strictly: no duplicate keys, NaN or infinity, lone surrogates, deep nesting."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) != len(pairs):
            raise ValueError("duplicate key in a JSON object")
        return result

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not allowed")

    try:
        value = json.loads(body.decode("utf-8"), object_pairs_hook=no_duplicates, parse_constant=no_constants)
        # Refuses unpaired surrogates (not encodable as UTF-8) and numbers that overflow to infinity.
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (UnicodeError, ValueError, RecursionError) as exc:
        raise Problem("body-malformed", N_("the body is not valid UTF-8 JSON: {error}"), error=exc) from exc
    return value


def validate(model: type[_M], value: Any) -> _M:
    """Validate a parsed body against a protocol model; 422 listing where and what is wrong."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        errors = [
            {"loc": "/".join(str(part) for part in error["loc"]), "msg": error["msg"], "type": error["type"]}
            for error in exc.errors(include_url=False, include_input=False, include_context=False)
        ]
        count = exc.error_count()
        raise Problem(
            "validation-failed",
            lambda lang: lang.ngettext(
                "{count} field does not match the protocol", "{count} fields do not match the protocol", count
            ).format(count=count),
            errors=errors[:MAX_REPORTED_ERRORS],
        ) from exc
