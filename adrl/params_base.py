"""Base for the typed views of params.yaml sections (each room owns its section in <room>/params.py)."""
from __future__ import annotations

import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


def bool_mismatch(ann: Any, value: Any) -> str | None:
    """Why ``value`` is the wrong kind for ``ann`` on the boolean/number border, or None.

    YAML reads ``true`` as a boolean and pydantic would take it as the number 1 (and ``1`` as ``true``):
    booleans are not numbers here, in either direction, also inside lists and tuples.
    """
    origin = get_origin(ann)
    if ann is Any:
        return None
    if origin is Annotated:
        return bool_mismatch(get_args(ann)[0], value)
    if origin in (Union, types.UnionType):
        # None and text never take a boolean or a number (pydantic does not convert them to str)
        arms = [a for a in get_args(ann) if a not in (type(None), str)] or list(get_args(ann))
        reasons = [bool_mismatch(a, value) for a in arms]
        return None if any(r is None for r in reasons) else reasons[0]
    if origin is Literal:
        if isinstance(value, bool) and not any(isinstance(a, bool) for a in get_args(ann)):
            return f"a boolean ({str(value).lower()}) is not one of the allowed values"
        return None
    if origin in (list, set, frozenset) and isinstance(value, (list, tuple)):
        (item,) = get_args(ann) or (Any,)
        return next((r for r in (bool_mismatch(item, v) for v in value) if r), None)
    if origin is tuple and isinstance(value, (list, tuple)):
        args = get_args(ann)
        items = [args[0]] * len(value) if len(args) == 2 and args[1] is Ellipsis else list(args)
        return next((r for r in (bool_mismatch(a, v) for a, v in zip(items, value)) if r), None)
    if ann is bool and isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"expected true or false, got the number {value!r}"
    if ann in (int, float) and isinstance(value, bool):
        return f"a boolean ({str(value).lower()}) is not a number"
    return None


class Section(BaseModel):
    """A params.yaml block: unknown keys are errors, values are validated, the model is frozen.

    Booleans and numbers are never converted into each other (``steps: true`` is an error naming the key).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    @field_validator("*", mode="before")
    @classmethod
    def _strict_booleans(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name) if info.field_name else None
        if field is not None:
            why = bool_mismatch(field.annotation, value)
            if why:
                raise ValueError(why)
        return value
