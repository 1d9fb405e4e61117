"""params.yaml block `evaluate` (../shared/docs/method.md section 5)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..params_base import Section


class TruthParams(Section):
    n_patients: int = Field(1000, ge=10, description="simulated patients per ground-truth roll-out")
    seed: int = Field(12345, ge=0)


class EvaluateParams(Section):
    knn_k: int = Field(100, ge=1)
    behaviour: Literal["joint", "factored"] = "joint"
    epsilon: float = Field(0.01, ge=0, le=1)
    weight_clip: float = Field(1000.0, gt=0)
    bootstrap: int = Field(1000, ge=10)
    ess_cutoff_c: float = Field(0.069, ge=0)
    seed: int = Field(0, ge=0)
    truth: TruthParams = TruthParams()
