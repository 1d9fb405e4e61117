"""params.yaml block `train` (../shared/docs/method.md sections 3 and 4)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ..params_base import Section

Algorithm = Literal["bcq", "factored_bcq", "adbcq"]
Profile = Literal["default", "tang"]

# Value-learning settings per train.profile; a key set to null in params.yaml takes its profile's value.
#   tang: method.md 3.1 as written (rewards 0/100, Huber delta 1, Adam 3e-4, Polyak 0.005, 10,000 steps), kept for
#         parity; measured not to learn values (benchmarks/results/convergence.md);
#   default: rewards divided by R_max during training (values of order one), squared TD error, and the step budget
#         and optimiser that converged in that measurement.
PROFILES: dict[str, dict] = {
    "tang": {"steps": 10000, "lr": 3e-4, "loss": "huber", "value_scale": 1.0, "polyak": 0.005, "target_every": 0,
             "weight_decay": 1e-3, "lr_schedule": "constant", "mixer_w0": 0.5, "q_clip": "none"},
    "default": {"steps": 10000, "lr": 1e-3, "loss": "mse", "value_scale": "r_max", "polyak": 0.005,
                "target_every": 0, "weight_decay": 0.0, "lr_schedule": "linear", "mixer_w0": 1.0,
                "q_clip": "auto"},
}
Mixer = Literal["mean", "sum", "linear", "mlp2", "relu"]


def _nonempty(v, name):
    if len(v) == 0:
        raise ValueError(f"train.{name} is an empty list; give at least one value")
    return v


class DynamicsParams(Section):
    """The projected dynamics + reward ensemble of method.md 4.4 (fitted once per states table and seed)."""

    ensemble: int = Field(5, ge=1, le=50)
    hidden: int = Field(256, ge=1)
    layers: int = Field(1, ge=1, le=10)   # method.md fixes 3; 1 fits better on our data sizes (see params.yaml)
    linear_skip: bool = True
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-5, ge=0)
    batch_size: int = Field(256, ge=1)
    max_epochs: int = Field(200, ge=1)
    patience: int = Field(20, ge=1)
    # the survival head's input (a fit setting) and the model batch B_k (method.md 4.5, E3's controls)
    survival_input: Literal["next_state", "action"] = "next_state"   # action: method.md's original head on (z, a)
    termination: Literal["soft", "sample", "logged"] = "soft"
    next_state: Literal["sample", "mean"] = "sample"
    control: Literal["none", "shuffle", "noise"] = "none"
    noise_scale: float = Field(1.0, ge=0, description="control noise: std of the noise on z-hat, in validation "
                                                        "residual stds")


class TrainParams(Section):
    # the sweep: algorithms x (mixers x augment, adbcq only) x thresholds x seeds
    algorithms: list[Algorithm] = ["bcq", "factored_bcq", "adbcq"]
    mixers: list[Mixer] = ["linear"]
    augment: list[bool] = [True]
    thresholds: list[float] = [0.3]
    seeds: list[int] = [0]
    # optimisation (method.md 3.1); null: the profile's value (PROFILES above)
    profile: Profile = "default"
    steps: int | None = Field(None, ge=1)
    checkpoint_every: int = Field(100, ge=1)
    batch_size: int = Field(100, ge=1)
    lr: float | None = Field(None, gt=0)
    weight_decay: float | None = Field(None, ge=0)
    lr_schedule: Literal["constant", "linear", "cosine"] | None = None
    gamma: float = Field(0.99, gt=0, le=1)
    polyak: float | None = Field(None, gt=0, le=1)
    loss: Literal["huber", "mse"] | None = None
    value_scale: float | None = Field(None, gt=0, description="rewards are divided by it during training")
    target_every: int | None = Field(None, ge=0, description="0: Polyak every step; n: hard target copy every n")
    value_check_split: Literal["val", "test", "train", "none"] = "val"
    mixer_w0: float | None = Field(None, gt=0, description="linear mixer's initial w_k (tang: 1/K; default: 1)")
    q_clip: Literal["auto", "none"] | None = None   # auto: bootstrap targets clipped to the returns the data allow
    hidden: int = Field(256, ge=1)
    # AD-BCQ (method.md 4)
    lambda_proj: float = Field(1.0, ge=0)
    r_max: float = Field(100.0, gt=0, description="reward scale R_max (terminal reward of a survivor)")
    state_bias: Literal["auto", "on", "off"] = "auto"  # auto: b(z) on for linear/mlp2/relu, off for mean/sum
    reuse_real: bool = True
    mixer_grad_to_heads: bool = True
    # AD-BCQ configurable options (method.md 4.1-4.3); the defaults are the fixed method
    heads: Literal["shared", "separate"] = "shared"
    state_cond: Literal["auto", "none", "bias", "hyper"] = "auto"  # auto: as state_bias; hyper: w(z), linear only
    relu_monotone: bool = False
    mlp2_activation: Literal["none", "tanh"] = "none"
    bc_filter: Literal["factored", "joint"] = "factored"
    tau_per_head: tuple[float, float] | None = None  # (tau_F, tau_V): replaces the thresholds sweep of the factored filters
    # execution
    threads: int = Field(1, ge=1, le=64, description="torch threads per training process")
    workers: int = Field(2, ge=1, le=64, description="processes running batched groups and dynamics fits in parallel")
    device: Literal["cpu", "cuda", "auto"] = "auto"   # auto: cuda where torch sees one, else cpu (said in the log)
    group_size: int = Field(1, ge=1, description="most runs of one architecture trained as one batched model")
    group_memory_mb: int = Field(2048, ge=1, description="memory budget of one batched group; larger groups are split")
    flush_denormal: bool = Field(
        True, description="train with subnormal floats flushed to zero (Adam's moments of rarely updated weights decay "
        "into them and cost a batched BCQ group 10-16% of its CPU); false: IEEE subnormals, as before")
    group_split: Literal["balanced", "seeds"] = Field(
        "balanced", description="balanced: a learner's runs in the fewest groups of at most group_size, of equal size "
        "(a seed may span two groups); seeds: groups cut between seeds")
    precision: Literal["float32", "bfloat16"] = Field(
        "float32", description="float32, or bfloat16: each update's forward and backward pass under torch.autocast "
        "(matrix products in bfloat16; parameters, optimiser and checkpoints float32)")
    checkpoint_dtype: Literal["float32", "float16"] = "float32"
    dynamics: DynamicsParams = DynamicsParams()

    @model_validator(mode="after")
    def _profile(self):
        """Fill every null value-learning key from train.profile."""
        for key, v in PROFILES[self.profile].items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, self.r_max if v == "r_max" else v)
        return self

    @field_validator("algorithms", "mixers", "augment", "thresholds", "seeds")
    @classmethod
    def _ne(cls, v, info):
        return _nonempty(v, info.field_name)

    @field_validator("thresholds")
    @classmethod
    def _tau(cls, v):
        bad = [t for t in v if not (0 <= t < 1)]
        if bad:
            raise ValueError(f"BCQ thresholds must lie in [0, 1), got {bad}")
        return v

    @field_validator("tau_per_head")
    @classmethod
    def _tau_k(cls, v):
        if v is not None and not all(0 <= t < 1 for t in v):
            raise ValueError(f"train.tau_per_head: both thresholds must lie in [0, 1), got {list(v)}")
        return v

    @model_validator(mode="after")
    def _adbcq_options(self):
        if "adbcq" not in self.algorithms:
            return self
        bad = [m for m in self.mixers if m != "linear"]
        if self.state_cond == "hyper" and bad:
            raise ValueError(f"train.state_cond: hyper supports only the linear mixer, but train.mixers has "
                             f"{bad}; use state_cond bias or none for mean, sum, mlp2 and relu")
        if self.state_bias != "auto" and self.state_cond != "auto" and \
                (self.state_bias == "on") != (self.state_cond != "none"):
            raise ValueError(f"train.state_cond: {self.state_cond} contradicts train.state_bias: "
                             f"{self.state_bias}; set state_bias: auto")
        if self.bc_filter == "joint" and self.tau_per_head is not None:
            raise ValueError("train.tau_per_head applies to the factored filter, but train.bc_filter is joint "
                             "(AD-BCQ's 25-way filter uses train.thresholds); set tau_per_head: null")
        return self

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v):
        bad = [s for s in v if s < 0]
        if bad:
            raise ValueError(f"seeds must be >= 0, got {bad}")
        return v
