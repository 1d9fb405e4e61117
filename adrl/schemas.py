"""File contracts between stages (cohort.md section 8, method.md section 2.2).

A user can enter the pipeline at any stage by writing a file with these columns:
- ``trajectories.parquet`` (cohort -> encode): one row per ICU stay per 4-hour step;
- ``states.parquet`` (encode -> train/evaluate): one row per stay and step with the AIS state.
"""
from __future__ import annotations

from typing import Iterable

from .errors import InputError

OBS = (
    "GCS", "HR", "SysBP", "MeanBP", "DiaBP", "RR", "Temp_C", "FiO2_1", "Potassium", "Sodium",
    "Chloride", "Glucose", "Magnesium", "Calcium", "Hb", "WBC_count", "Platelets_count", "PTT", "PT",
    "Arterial_pH", "paO2", "paCO2", "Arterial_BE", "HCO3", "Arterial_lactate", "PaO2_FiO2", "SpO2",
    "BUN", "Creatinine", "SGOT", "SGPT", "Total_bili", "INR",
)
DEMOG = ("gender", "mechvent", "re_admission", "age", "Weight_kg")
OBS_COLS = tuple(f"o:{c}" for c in OBS)
DEMOG_COLS = tuple(f"m:{c}" for c in DEMOG)
BINARY_DEMOG = ("m:gender", "m:mechvent", "m:re_admission")
LOG_OBS = ("SpO2", "BUN", "Creatinine", "SGOT", "SGPT", "Total_bili", "INR")
SPLITS = ("train", "val", "test")

# cohort.md 8.1, in order. dtype names are pyarrow type names.
TRAJECTORY_COLUMNS: dict[str, str] = {
    "subject_id": "int64",
    "hadm_id": "int64",
    "icustay_id": "int64",
    "traj": "int32",
    "step": "int16",
    "bin_start": "timestamp[s]",
    "t_onset_h": "int16",
    **{c: "float" for c in OBS_COLS},  # float32
    **{c: "float" for c in DEMOG_COLS},
    "fluid_ml": "float",
    "vaso_dose": "float",
    "fluid_bin": "int8",
    "vaso_bin": "int8",
    "action": "int8",
    "reward": "float",
    "done": "bool",
    "split": "string",
    "sofa": "int8",
    "has_data": "bool",
}

# The states contract (encode -> train). z columns are z_0 .. z_{d-1} (float32).
# Row t of a stay holds the state z_t after seeing rows 0..t of the trajectory; the decision taken at
# z_t is the action of row t+1, stored here as `decision_*` on row t (and -1 on the last row).
STATES_ID_COLUMNS: dict[str, str] = {
    "subject_id": "int64",
    "icustay_id": "int64",
    "traj": "int32",
    "step": "int16",
    "split": "string",
}
STATES_DECISION_COLUMNS: dict[str, str] = {
    "decision_fluid": "int8",   # fluid bin of row t+1 (-1 on the last row)
    "decision_vaso": "int8",    # vaso bin of row t+1 (-1 on the last row)
    "decision": "int8",         # 5 * decision_fluid + decision_vaso (-1 on the last row)
    "reward": "float",          # r_{t+1}: reward of row t+1 (0 on the last row)
    "done": "bool",             # d_{t+1}: row t+1 is the last row of the stay (False on the last row)
    "last": "bool",             # row t is the stay's last row: no decision is taken there
}


def z_columns(d: int) -> list[str]:
    return [f"z_{i}" for i in range(d)]


def infer_latent_dim(columns: Iterable[str]) -> int:
    zs = sorted(int(c[2:]) for c in columns if c.startswith("z_") and c[2:].isdigit())
    if not zs or zs != list(range(len(zs))):
        raise InputError("states table: need consecutive state columns z_0 .. z_{d-1}; found "
                         f"{['z_' + str(i) for i in zs][:5]}")
    return len(zs)


def require_columns(columns: Iterable[str], required: Iterable[str], where: str) -> None:
    """Raise InputError naming the file and every missing column."""
    have = set(columns)
    missing = [c for c in required if c not in have]
    if missing:
        raise InputError(f"{where}: missing required column(s) {missing}")
