"""params.yaml block `ais` (../shared/docs/method.md section 2).

Method profile (method.md 2.3): max_epochs 1000, patience 50. The defaults are shorter so the default
profile's `encode` finishes in a couple of minutes (benchmarks/results/ais.md).
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..params_base import Section


class AisParams(Section):
    rnn: Literal["gru", "lstm"] = "gru"
    latent_dim: int = Field(64, ge=1, le=1024, description="d: size of the AIS state z_t")
    hidden: int = Field(128, ge=1, le=4096, description="width of the input and decoder MLPs")
    lr: float = Field(5e-4, gt=0, le=1)
    batch_size: int = Field(128, ge=1, description="trajectories per batch")
    max_epochs: int = Field(500, ge=1)
    patience: int = Field(30, ge=1, description="epochs without a lower validation NLL before stopping")
    seed: int = Field(0, ge=0)
    threads: int = Field(1, ge=1, le=256, description="torch intra-op threads while training and encoding")
