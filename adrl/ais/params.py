"""params.yaml block `ais` (../shared/docs/method.md section 2)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..params_base import Section


class AisParams(Section):
    rnn: Literal["gru", "lstm"] = "gru"
    latent_dim: int = Field(64, ge=1, le=1024)
    hidden: int = Field(128, ge=1, le=4096, description="width of the input and decoder MLPs")
    lr: float = Field(5e-4, gt=0, le=1)
    batch_size: int = Field(128, ge=1)
    max_epochs: int = Field(300, ge=1)
    patience: int = Field(30, ge=1)
    seed: int = Field(0, ge=0)
