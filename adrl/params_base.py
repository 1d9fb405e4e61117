"""Base for the typed views of params.yaml sections (each room owns its section in <room>/params.py)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A params.yaml block: unknown keys are errors, values are validated, the model is frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
