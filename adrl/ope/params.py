"""params.yaml block `evaluate` (../shared/docs/method.md section 5)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..params_base import Section


class TruthParams(Section):
    n_patients: int = Field(1000, ge=0, description="simulated patients per ground-truth roll-out (0 = none)")
    seed: int = Field(12345, ge=0)


SelectBy = Literal["wis_ess_pareto", "fqe", "wdr", "combined"]


class FqeParams(Section):
    """Fitted Q evaluation of candidate checkpoints (adrl/rl/fqe.py), fitted on train, scored on val / test."""

    candidates: int = Field(60, ge=0, description="checkpoints that get FQE: every run's final one, the WIS "
                            "rule's picks, then evenly spaced ones up to this many (0 = no FQE)")
    steps: int = Field(3000, ge=1)
    batch_size: int = Field(1024, ge=1)
    lr: float = Field(1e-3, gt=0)
    hidden: int = Field(128, ge=1)
    layers: int = Field(2, ge=1, le=6)
    target_every: int = Field(100, ge=1, description="hard target copy (one FQE iteration) every this many steps")
    clip_values: bool = Field(True, description="bootstrap values clipped to [0, R_max] (returns are bounded)")
    gamma: float = Field(1.0, gt=0, le=1, description="1: the undiscounted survival rate, as WIS and the truth")
    tol: float = Field(1.0, gt=0, description="converged: start value moved <= tol points over trend_window copies")
    trend_window: int = Field(5, ge=2)
    seed: int = Field(0, ge=0)


class AuditParams(Section):
    """The selection audit against the simulator's truth (synthetic source only)."""

    candidates: int = Field(20, ge=0, description="FQE'd checkpoints rolled out for the audit: every run's "
                            "final one, then evenly spaced ones (0 = no audit)")
    n_patients: int = Field(200, ge=0, description="simulated patients per audit roll-out (0 = no audit)")


class ModelCheckParams(Section):
    """AD-BCQ's dynamics model against the simulator's true sub-action effects (synthetic source only;
    adrl/modelcheck.py). Uses evaluate.truth.seed."""

    n_patients: int = Field(1000, ge=0, description="simulated patients treated by the clinician up to the decision "
                            "bin, each then copied per arm (0 = no model check)")
    decision_bin: int = Field(7, ge=1, le=17, description="the 4-h bin (0 = onset - 24 h) at which each arm acts")


class EvaluateParams(Section):
    knn_k: int = Field(100, ge=1, description="neighbours of the kNN behaviour policy (method 5.1)")
    behaviour: Literal["joint", "factored"] = "joint"
    epsilon: float = Field(0.01, ge=0, le=1, description="softening of the greedy evaluation policy (5.2)")
    weight_clip: float = Field(1000.0, gt=0, description="episode weights are min(prod rho, clip) (5.3)")
    bootstrap: int = Field(1000, ge=10, description="episode bootstrap resamples (5.4); 100 for Tang parity")
    ess_cutoff_c: float = Field(0.069, ge=0, description="selection needs ESS >= c * N_val (5.6)")
    seed: int = Field(0, ge=0)
    truth: TruthParams = TruthParams()
    # what happens when the behaviour model gives a logged action probability 0 (or non-finite):
    # error -> InputError; floor -> set it to 1/knn_k, counted and reported in evaluate.json
    zero_behaviour: Literal["error", "floor"] = "error"
    calibration_rows: int = Field(20000, ge=100, description="rows sampled per split for calibration metrics")
    calibration_bins: int = Field(10, ge=2, le=100)
    cutoff_grid: int = Field(51, ge=2, description="cutoffs in [0, 1.25 c N_val] for the sensitivity sweep")
    warn_max_weight_share: float = Field(0.1, gt=0, le=1, description="warn when one episode holds more weight")
    chunk_candidates: int = Field(256, ge=1, description="candidate policies per vectorised block (memory bound)")
    select_by: SelectBy = "fqe"
    fqe: FqeParams = FqeParams()
    audit: AuditParams = AuditParams()
    model_check: ModelCheckParams = ModelCheckParams()
