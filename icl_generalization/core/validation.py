"""Parsing untrusted values into typed, validated objects at the package's boundary (pydantic models).

Every file and option the user hands in goes through :func:`parse` (or a model's own ``model_validate`` with
:func:`describe` on failure), so a bad value always gives the same kind of message: one line naming where the
value came from, the field, what was expected and the value itself.
"""

from __future__ import annotations

from typing import Annotated, TypeVar

from pydantic import BaseModel, Field, PositiveInt, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from icl_generalization.core.errors import UserError

Model = TypeVar("Model", bound=BaseModel)
# A value quoted in a message is cut, so that a huge or binary value cannot flood the terminal.
_SHOWN_CHARS = 60
# A message names at most this many problems; the rest are counted.
_MOST_PROBLEMS = 3
# pydantic names the alternative of a union it tried (`str`, `list[int]`...) in the location; that says
# nothing to the user and is left out.
_UNION_LABELS = ("str", "int", "float", "bool", "none")
_UNION_LABEL_PREFIXES = ("list[", "dict[", "tuple[", "literal[", "constrained-", "function-", "json-or-python[",
                         "nullable[", "lax-or-strict[")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS - 3] + "..."


def field_name(error: ErrorDetails) -> str:
    """Where the error is, as the user wrote it: ``adapter.files['a.bin']``, ``choices[2]``, ``results.t.acc``.

    A validator that checks values under keys it does not know in advance (metric names) reports the key in
    its context as ``field``, since pydantic's location stops at the object holding it.
    """
    parts: list[int | str] = [p for p in error["loc"] if not (isinstance(p, str) and (
        p == "[key]" or p in _UNION_LABELS or p.startswith(_UNION_LABEL_PREFIXES)))]
    ctx = error.get("ctx") or {}
    if "field" in ctx:
        parts.append(str(ctx["field"]))
    name = ""
    for part in parts:
        if isinstance(part, str) and part.replace(",", "").replace("-", "").isidentifier():
            name += f".{part}" if name else part
        else:
            name += f"[{part!r}]"
    return name


def _expected(error: ErrorDetails) -> str:
    # pydantic prefixes the text of a ValueError raised by a validator; the text alone is the message.
    message = error["msg"].removeprefix("Value error, ")
    if message.startswith("Input should be "):
        return "expected " + message.removeprefix("Input should be ").rstrip(".")
    return message[:1].lower() + message[1:]


def _grouped(errors: list[ErrorDetails]) -> list[list[ErrorDetails]]:
    """Consecutive errors about one value from the alternatives of a union are one problem."""
    groups: list[list[ErrorDetails]] = []
    for error in errors:
        last = groups[-1][-1] if groups else None
        if (last is not None and error["type"] != "missing" and field_name(last) == field_name(error)
                and last["input"] is error["input"]):
            groups[-1].append(error)
        else:
            groups.append([error])
    return groups


def _problem(group: list[ErrorDetails]) -> str:
    first = group[0]
    field = field_name(first)
    if first["type"] == "extra_forbidden":
        return f"{field}: unknown field"
    if first["type"] == "missing":
        return f"{field}: missing"
    expected = " or ".join(dict.fromkeys(_expected(e) for e in group)).replace(" or expected ", " or ")
    if not field:  # a rule over several fields: its message names them
        return expected
    ctx = first.get("ctx") or {}
    value = ctx["value"] if "field" in ctx and "value" in ctx else first["input"]
    return f"{field}: {expected} (got {_shown(value)})"


def describe(exc: ValidationError, where: str) -> str:
    """One line for a pydantic error: ``where: field: what was expected (got value)``, problems joined by ``;``."""
    groups = _grouped(exc.errors())
    more = f" (and {len(groups) - _MOST_PROBLEMS} more)" if len(groups) > _MOST_PROBLEMS else ""
    return f"{where}: " + "; ".join(_problem(g) for g in groups[:_MOST_PROBLEMS]) + more


def parse(model: type[Model], data: object, where: str) -> Model:
    """``data`` validated as ``model``, or a :class:`UserError` whose message names ``where`` and each bad field."""
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a mapping of fields, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise UserError(describe(exc, where)) from None


_FLAG: TypeAdapter[bool] = TypeAdapter(bool)
_POSITIVE: TypeAdapter[PositiveInt] = TypeAdapter(PositiveInt)
_NON_NEGATIVE: TypeAdapter[float] = TypeAdapter(Annotated[float, Field(ge=0, allow_inf_nan=False)])


def flag(value: object, name: str) -> bool:
    """A yes/no option as users type it (``True``, ``false``, ``1``, ``no``...), or one line naming it."""
    try:
        return _FLAG.validate_python(value)
    except ValidationError:
        raise UserError(f"{name} must be true or false, got {_shown(value)}") from None


def positive_int(value: object, name: str) -> int:
    """A count as users type it (``8``, ``"8"``), or one line naming the option."""
    try:
        return _POSITIVE.validate_python(value)
    except ValidationError:
        raise UserError(f"{name} must be a positive integer, got {_shown(value)}") from None


def non_negative_float(value: object, name: str) -> float:
    """An amount as users type it (``0.05``, ``"0"``), finite and at least zero, or one line naming the option."""
    try:
        return _NON_NEGATIVE.validate_python(value)
    except ValidationError:
        raise UserError(f"{name} must be a finite number of at least 0, got {_shown(value)}") from None
