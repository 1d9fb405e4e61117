"""params.yaml blocks `source` and `synth`."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from ..params_base import Section

PROFILE_STAYS = {"tiny": 300, "default": 4000, "mimic": 60000}


class SourceParams(Section):
    kind: Literal["synthetic", "mimic", "demo"] = Field(
        "synthetic", description="synthetic: data/raw/synthetic (written by `synthesize`); "
        "mimic: a MIMIC-III v1.4 directory at `path`; demo: the MIMIC-III demo (+ generated CHARTEVENTS)")
    path: Optional[str] = Field(None, description="MIMIC-III directory for kind=mimic; demo directory for "
                                "kind=demo (default $ADRL_MIMIC_DEMO or ../shared/data/mimic3-demo)")


class SynthParams(Section):
    profile: Literal["tiny", "default", "mimic"] = "default"
    n_stays: Optional[int] = Field(None, ge=20, description="ICU stays to simulate; null = the profile's size")
    seed: int = Field(0, ge=0)
    interaction: float = Field(0.0, ge=0.0, description="0 = separable treatment effects (fluids act on volume, "
                               "vasopressors on tone); > 0 couples them")
    confounder: float = Field(0.0, ge=0.0, description="strength of a hidden confounder of treatment and outcome "
                              "(0 = none: clinicians act only on what is charted)")

    @property
    def stays(self) -> int:
        return self.n_stays if self.n_stays is not None else PROFILE_STAYS[self.profile]
