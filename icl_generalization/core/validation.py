"""Parsing untrusted values into typed, validated objects at the package's boundary (pydantic models).

Every file and option the user hands in goes through :func:`parse`, so a bad value always gives the same kind of
message: one line naming where the value came from, the field, the value and what was expected.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from icl_generalization.core.errors import UserError

Model = TypeVar("Model", bound=BaseModel)
# A value quoted in a message is cut, so that a huge or binary value cannot flood the terminal.
_SHOWN_CHARS = 60


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."


def field_name(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as the user wrote it: ``adapter.files['a.bin']``, ``choices[2]``."""
    name = ""
    for part in loc:
        if part == "[key]":  # pydantic's marker for "the key itself", not a field
            continue
        if isinstance(part, str) and part.isidentifier():
            name += f".{part}" if name else part
        else:
            name += f"[{part!r}]"
    return name


def describe(exc: ValidationError, where: str) -> str:
    """One line for a pydantic error: ``where: field: what was expected (got value)``; several joined by ``;``."""
    parts = []
    for error in exc.errors():
        field = field_name(error["loc"])
        # pydantic prefixes the text of a ValueError raised by a validator; the text alone is the message.
        message = error["msg"].removeprefix("Value error, ")
        message = message[0].lower() + message[1:]
        if error["type"] == "extra_forbidden":
            parts.append(f"{field}: unknown field")
        elif error["type"] == "missing":
            parts.append(f"{field}: missing")
        elif not field:  # a rule over several fields: its message names them
            parts.append(message)
        else:
            parts.append(f"{field}: {message} (got {_shown(error['input'])})")
    return f"{where}: " + "; ".join(parts)


def parse(model: type[Model], data: object, where: str) -> Model:
    """``data`` validated as ``model``, or a :class:`UserError` whose message names ``where`` and each bad field."""
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a mapping of fields, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise UserError(describe(exc, where)) from None
