"""params.yaml block `cohort` (../shared/docs/cohort.md section 1.3).

A key left at null takes its value from `recipe` (corrected | faithful); an explicit value wins.
Use :meth:`CohortParams.resolved` to get the effective values.
"""
from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from ..params_base import Section

FIX_KEYS = ("itemids", "culture_sources", "abx_routes", "onset_search", "arterial_gases", "error_rows",
            "urine_items", "fluids", "vaso_weight", "potassium_hold", "sofa_scoring")


class Fixes(Section):
    itemids: Optional[bool] = None
    culture_sources: Optional[bool] = None
    abx_routes: Optional[bool] = None
    onset_search: Optional[bool] = None
    arterial_gases: Optional[bool] = None
    error_rows: Optional[bool] = None
    urine_items: Optional[bool] = None
    fluids: Optional[bool] = None
    vaso_weight: Optional[bool] = None
    potassium_hold: Optional[bool] = None
    sofa_scoring: Optional[bool] = None


class Population(Section):
    min_age_years: float = Field(18, ge=0, le=120)
    first_icu_stay_per_admission: bool = True
    dbsource: list[Literal["carevue", "metavision", "both"]] = ["carevue", "metavision", "both"]

    @field_validator("dbsource")
    @classmethod
    def _nonempty(cls, v):
        if not v:
            raise ValueError("must list at least one of carevue, metavision, both")
        return v


class Infection(Section):
    abx_then_culture_h: float = Field(24, gt=0)
    culture_then_abx_h: float = Field(72, gt=0)
    attach_to_icu_h: float = Field(48, ge=0)


class Sepsis(Section):
    sofa_threshold: int = Field(2, ge=0, le=24)
    window_before_h: Optional[int] = Field(None, ge=0)
    window_after_h: Optional[int] = Field(None, ge=0)


class Window(Section):
    before_onset_h: int = Field(24, ge=0)
    after_onset_h: int = Field(48, ge=0)
    bin_h: int = Field(4, ge=1, le=24)
    margin_h: Optional[int] = Field(None, ge=0)


class Exclusions(Section):
    max_urine_ml_per_bin: float = Field(12000, gt=0)
    max_fluid_ml_per_bin: float = Field(10000, gt=0)
    max_total_bili: float = Field(10000, gt=0)
    withdrawal_of_care: bool = True
    death_during_window: bool = False


class StateOpts(Section):
    exclude_current_treatment: bool = True
    ffill_beyond_hold: bool = True


def _edges(v, name):
    if isinstance(v, str):
        if v != "quartiles":
            raise ValueError(f"{name} must be 'quartiles' or a list of 3 increasing positive numbers")
        return v
    if len(v) != 3 or not all(x > 0 for x in v) or not (v[0] < v[1] < v[2]):
        raise ValueError(f"{name} must be 'quartiles' or a list of 3 increasing positive numbers, got {v}")
    return [float(x) for x in v]


class Actions(Section):
    fluid_edges_ml: Union[Literal["quartiles"], list[float]] = [500.0, 1000.0, 2000.0]
    vaso_edges: Union[Literal["quartiles"], list[float]] = "quartiles"
    vaso_factors: Literal["ai_clinician", "mimic_code"] = "ai_clinician"
    tonicity: bool = True

    @field_validator("fluid_edges_ml")
    @classmethod
    def _fe(cls, v):
        return _edges(v, "fluid_edges_ml")

    @field_validator("vaso_edges")
    @classmethod
    def _ve(cls, v):
        return _edges(v, "vaso_edges")


class Outcome(Section):
    mortality: Literal["icu48", "hospital", "icu48_or_hospital", "d90"] = "icu48_or_hospital"


class Reward(Section):
    survive: float = 100.0
    die: float = 0.0
    intermediate: float = 0.0


class Split(Section):
    fractions: list[float] = [0.70, 0.15, 0.15]
    seed: int = Field(42, ge=0)
    stratify: Literal["outcome", "none"] = "outcome"
    drop_length_1: bool = True

    @field_validator("fractions")
    @classmethod
    def _fr(cls, v):
        if len(v) != 3 or any(x <= 0 for x in v) or abs(sum(v) - 1.0) > 1e-6:
            raise ValueError(f"must be three positive fractions (train, val, test) summing to 1, got {v}")
        return v


class Export(Section):
    mimic_sepsis_csv: bool = True
    reward: Literal["pm1", "raw"] = "pm1"


RECIPES = {
    "corrected": dict(fixes=True, window_before_h=48, window_after_h=24, margin_h=0),
    "faithful": dict(fixes=False, window_before_h=24, window_after_h=48, margin_h=4),
}


class CohortParams(Section):
    recipe: Literal["corrected", "faithful"] = "corrected"
    fixes: Fixes = Fixes()
    population: Population = Population()
    infection: Infection = Infection()
    sepsis: Sepsis = Sepsis()
    window: Window = Window()
    exclusions: Exclusions = Exclusions()
    state: StateOpts = StateOpts()
    actions: Actions = Actions()
    outcome: Outcome = Outcome()
    reward: Reward = Reward()
    split: Split = Split()
    export: Export = Export()

    @model_validator(mode="after")
    def _window_in_bins(self):
        r = self.resolved_window()
        b = self.window.bin_h
        for key, val in (("cohort.window.before_onset_h", self.window.before_onset_h),
                         ("cohort.window.after_onset_h", self.window.after_onset_h),
                         ("cohort.window.margin_h", r["margin_h"])):
            if val % b:
                raise ValueError(f"{key}={val} is not a whole multiple of cohort.window.bin_h={b}")
        if self.window.before_onset_h + self.window.after_onset_h < b:
            raise ValueError(f"the window (cohort.window.before_onset_h + after_onset_h = "
                             f"{self.window.before_onset_h + self.window.after_onset_h} h) is shorter than one "
                             f"bin (cohort.window.bin_h = {b} h)")
        return self

    def fix(self, name: str) -> bool:
        """Effective value of cohort.fixes.<name> (null follows the recipe)."""
        v = getattr(self.fixes, name)
        return RECIPES[self.recipe]["fixes"] if v is None else v

    def resolved_window(self) -> dict:
        rec = RECIPES[self.recipe]
        return {
            "sepsis_window_before_h": self.sepsis.window_before_h if self.sepsis.window_before_h is not None
            else rec["window_before_h"],
            "sepsis_window_after_h": self.sepsis.window_after_h if self.sepsis.window_after_h is not None
            else rec["window_after_h"],
            "margin_h": self.window.margin_h if self.window.margin_h is not None else rec["margin_h"],
        }

    def resolved(self) -> dict:
        """Every effective cohort setting, nulls resolved: for the report and MLflow."""
        out = self.model_dump()
        out["fixes"] = {k: self.fix(k) for k in FIX_KEYS}
        w = self.resolved_window()
        out["sepsis"]["window_before_h"] = w["sepsis_window_before_h"]
        out["sepsis"]["window_after_h"] = w["sepsis_window_after_h"]
        out["window"]["margin_h"] = w["margin_h"]
        return out
