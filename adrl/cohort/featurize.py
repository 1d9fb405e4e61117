"""Per-bin featurisation, usable incrementally and vectorised over many stays (cohort.md 3.6-3.11, 3.14, 5).

:class:`Featurizer` turns static rows (interim ``patients`` / ``admissions`` / ``icustays``), each stay's onset
time and the events recorded so far (interim-schema frames, any number of stays at once) into one row per
completed bin: held raw values, derived values, SOFA, fluid and vasopressor doses, and (given the fitted
artefacts) the normalised ``o:`` / ``m:`` state and the action bins. The cohort stage computes its
trajectories through this class; the synthetic world's roll-outs call it bin by bin::

    fz = Featurizer(params, spec, normalization=json.load(...), action_edges=json.load(...))
    rows = fz(static, onsets, events, until=now)      # normalised rows of every bin ending <= now

Causality: a record enters only the bin containing its time and, through holds and forward fills, later
bins; static facts are those of ICU admission; normalisation uses saved training statistics. Calling the
featuriser again with more (later) events never changes rows already emitted (tests/cohort/test_causality.py).
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..actions import to_flat
from ..errors import InputError
from ..schemas import BINARY_DEMOG, DEMOG_COLS, LOG_OBS, OBS, OBS_COLS
from . import sofa as sofa_mod
from .grid import H, GridSpec, dense_aggregate, ffill_index, ffill_unlimited, hold, take_ffill, to_seconds
from .params import FIX_KEYS, CohortParams
from .records import clean_events
from .spec import CohortSpec
from .treatments import fluid_per_bin, fluid_rows, vaso_per_bin, vaso_rows

log = logging.getLogger("adrl.cohort")

RAW_PREFIX = "raw:"
STATIC_REQUIRED = {
    "patients": ("subject_id", "gender", "dob"),
    "admissions": ("hadm_id", "deathtime"),
    "icustays": ("subject_id", "hadm_id", "icustay_id", "intime", "outtime"),
}
CHARTED = [c for c in OBS if c != "PaO2_FiO2"]
INTERNAL_AGG = {"Total_bili_raw": "max", "Weight_mv": "mean", "mechvent": "max", "extubation": "max",
                "urine": "sum", "O2_device": "last", "Specimen_type": "last"}


def _require(df: pd.DataFrame, cols, where: str):
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InputError(f"{where}: missing required column(s) {missing}")


@dataclass
class Bins:
    """Dense per-bin arrays of a batch of stays; slot j = 0 is the pre slot, slot j is bin kmin - 1 + j."""
    stays: pd.DataFrame            # s, subject_id, hadm_id, icustay_id, onset_s, g0, intime_s, outtime_s, end_s, static m:
    grid: GridSpec
    values: dict                   # name -> [S, nj] float (held raw, derived, SOFA inputs)
    state: np.ndarray              # [S, nj, 38] raw o:/m: state values (holds + optional unlimited ffill)
    fluid: np.ndarray              # [S, nj]
    vaso: np.ndarray               # [S, nj]
    urine: np.ndarray              # [S, nj] (NaN when no urine record)
    sofa: np.ndarray               # [S, nj] int8
    has_data: np.ndarray           # [S, nj] bool
    bili_raw: np.ndarray           # [S, nj] max raw total bilirubin (before the range check)


class Featurizer:
    def __init__(self, params: CohortParams, spec: CohortSpec, normalization: dict | None = None,
                 action_edges: dict | None = None):
        self.p = params
        self.spec = spec
        self.grid = GridSpec.from_params(params)
        self.fixes = {k: params.fix(k) for k in FIX_KEYS}
        self.normalization = normalization
        self.action_edges = action_edges
        names = list(dict.fromkeys(list(spec.concept_info.index) + list(INTERNAL_AGG)))
        self.concepts = names
        self.cidx = {c: i for i, c in enumerate(names)}
        ci = spec.concept_info
        wh = float(ci.loc["Weight_kg", "hold_h"]) if "Weight_kg" in ci.index else 0.0
        hold_h = []
        for c in names:
            if c == "Weight_mv":
                hold_h.append(wh)
            elif c == "mechvent":
                hold_h.append(spec.vent_hold_h)
            elif c in ("urine", "Total_bili_raw", "extubation"):
                hold_h.append(-1.0)  # never held
            else:
                h = ci.loc[c, "hold_h"] if c in ci.index else np.nan
                hold_h.append(float(h) if pd.notna(h) else -1.0)
        self.hold_s = np.asarray(hold_h) * H
        self.agg = np.array([INTERNAL_AGG.get(c, ci.loc[c, "agg"] if (c in ci.index and "agg" in ci.columns
                                                                        and pd.notna(ci.loc[c, "agg"])) else "mean")
                             for c in names])

    @classmethod
    def load(cls, params: CohortParams, artifacts_dir=None) -> "Featurizer":
        """The featuriser of a built cohort: concept data resolved for ``params`` and the fitted artefacts
        (normalization.json, action_edges.json) read from ``artifacts_dir`` (default data/processed/cohort)."""
        import json
        from pathlib import Path

        from ..paths import COHORT_ARTIFACTS
        from .mimic_adapter import build_spec

        d = Path(artifacts_dir) if artifacts_dir is not None else COHORT_ARTIFACTS
        arts = {}
        for name in ("normalization.json", "action_edges.json"):
            f = d / name
            if not f.exists():
                raise InputError(f"{f}: cohort artefact not found (run the cohort stage)")
            arts[name] = json.loads(f.read_text())
        return cls(params, build_spec(params), arts["normalization.json"], arts["action_edges.json"])

    # ------------------------------------------------------------------ static facts
    def stay_frame(self, static: dict, onsets: pd.DataFrame) -> pd.DataFrame:
        for t, cols in STATIC_REQUIRED.items():
            if t not in static:
                raise InputError(f"static rows: missing table {t!r}")
            _require(static[t], cols, f"static table {t}")
        _require(onsets, ("icustay_id", "onset"), "onsets")
        icu = static["icustays"]
        st = onsets[["icustay_id", "onset"]].merge(icu[["subject_id", "hadm_id", "icustay_id", "intime", "outtime"]],
                                                   on="icustay_id", how="left")
        if st["subject_id"].isna().any():
            bad = st.loc[st["subject_id"].isna(), "icustay_id"].head(5).tolist()
            raise InputError(f"onsets: icustay_id(s) {bad} not in the static icustays rows")
        st = st.merge(static["patients"][["subject_id", "gender", "dob"]], on="subject_id", how="left")
        st = st.merge(static["admissions"][["hadm_id", "deathtime"]].drop_duplicates("hadm_id"), on="hadm_id",
                      how="left")
        st = st.reset_index(drop=True)
        st["s"] = np.arange(len(st), dtype=np.int64)
        onset_s = to_seconds(st["onset"])
        if np.isnan(onset_s).any():
            raise InputError("onsets: onset time missing for some stays")
        st["onset_s"] = onset_s
        st["g0"] = onset_s - self.grid.lead_s
        st["intime_s"] = to_seconds(st["intime"])
        st["outtime_s"] = to_seconds(st["outtime"])
        death = to_seconds(st["deathtime"])
        end = st["outtime_s"].to_numpy()
        end = np.where(np.isnan(end), np.inf, end)
        st["end_s"] = np.where(~np.isnan(death), np.minimum(end, death), end)
        f = self.spec.facts
        age = (st["intime_s"] - to_seconds(st["dob"])) / (86400.0 * 365.25)
        st["m:age"] = np.where(age > f["age_over_years"], f["age_over_value"], age)
        st["m:gender"] = (st["gender"].astype("string").str.upper() == "F").astype(np.float64).to_numpy()
        # re_admission: an ICU OUTTIME of the same subject within readmission_days before this INTIME
        allst = icu[["subject_id", "icustay_id", "intime", "outtime"]].copy()
        allst["in_s"], allst["out_s"] = to_seconds(allst["intime"]), to_seconds(allst["outtime"])
        allst = allst.sort_values(["subject_id", "in_s"], kind="stable")
        prev = allst.groupby("subject_id")["out_s"].shift()
        gap = allst["in_s"] - prev
        allst["re"] = ((gap >= 0) & (gap <= f["readmission_days"] * 86400.0)).astype(np.float64)
        st["m:re_admission"] = st["icustay_id"].map(allst.set_index("icustay_id")["re"]).fillna(0.0).to_numpy()
        return st

    # ------------------------------------------------------------------ binning
    def bins(self, static: dict, onsets: pd.DataFrame, events: dict, counts: Counter | None = None) -> Bins:
        counts = Counter() if counts is None else counts
        st = self.stay_frame(static, onsets)
        g, spec = self.grid, self.spec
        rec = clean_events(events, st, spec, self.fixes, counts, spec.facts["lab_pad_h"])
        s, t, c, v = self.record_arrays(rec)
        g0 = st["g0"].to_numpy(np.float64)
        mean, lastv, lastt, vmax, cnt = dense_aggregate(s, t, c, v, g0, g, len(self.concepts))
        # treatments
        mv = events.get("inputevents_mv")
        cv = events.get("inputevents_cv")
        pos = pd.Series(st["s"].to_numpy(), index=st["icustay_id"].to_numpy())
        mv = _attach(mv, pos)
        cv = _attach(cv, pos)
        fr = fluid_rows(mv, cv, spec, self.fixes["fluids"], self.p.actions.tonicity, counts)
        fluid = fluid_per_bin(fr, g0, g, counts)
        vr = vaso_rows(mv, cv, spec, counts)
        f = self.slot_features(st, g.bin_start(g0), mean, lastv, lastt, vmax, cnt, fluid,
                               lambda w: vaso_per_bin(vr, g0, g, w, spec, self.fixes["vaso_weight"]))
        state = f["state"]
        if self.p.state.ffill_beyond_hold:
            n = len(OBS)
            state[:, :, :n] = ffill_unlimited(state[:, :, :n])
            state[:, :, n + 4] = ffill_unlimited(state[:, :, n + 4:n + 5])[:, :, 0]
        return Bins(stays=st, grid=g, values=f["values"], state=state, fluid=fluid, vaso=f["vaso"],
                    urine=f["urine"], sofa=f["sofa"], has_data=f["has_data"], bili_raw=f["bili_raw"])

    def record_arrays(self, rec: pd.DataFrame):
        """Cleaned records -> (stay position, time s, concept index, value) arrays of the featurised concepts."""
        conc = rec["concept"].astype("category")
        lut = np.array([self.cidx.get(x, -1) for x in conc.cat.categories] + [-1], dtype=np.int64)
        c = lut[conc.cat.codes.to_numpy()]  # code -1 (NaN) -> the appended -1
        keep = c >= 0
        return (rec["s"].to_numpy(np.int64)[keep], rec["t"].to_numpy(np.float64)[keep], c[keep],
                rec["value"].to_numpy(np.float64)[keep])

    def slot_values(self, mean, lastv, vmax, cnt) -> np.ndarray:
        """[..., C] value of each concept in each slot by its aggregation (mean, last, max, sum)."""
        val = mean.copy()
        for i, a in enumerate(self.agg):
            if a == "last":
                val[..., i] = lastv[..., i]
            elif a == "max":
                val[..., i] = vmax[..., i]
            elif a == "sum":
                val[..., i] = np.where(cnt[..., i] > 0, mean[..., i] * cnt[..., i], np.nan)
        return val

    def slot_features(self, st: pd.DataFrame, bstart, mean, lastv, lastt, vmax, cnt, fluid, vaso_of) -> dict:
        """Held and derived values, SOFA and the raw state (before any forward fill beyond the hold) of every
        slot [S, J] of a grid. ``fluid``: [S, J] mL; ``vaso_of(weight [S, J]) -> [S, J]`` NE-eq doses."""
        val = self.slot_values(mean, lastv, vmax, cnt)
        held = val.copy()
        hmask = self.hold_s >= 0
        held[:, :, hmask] = hold(val[:, :, hmask], lastt[:, :, hmask], bstart, self.hold_s[hmask])
        # mechanical ventilation: times of the latest evidence and extubation at or before each slot
        vi, xi = self.cidx["mechvent"], self.cidx["extubation"]
        vin = cnt[:, :, vi] > 0
        tv = take_ffill(lastt[:, :, vi:vi + 1], ffill_index(vin[:, :, None]))[:, :, 0]
        tx = take_ffill(lastt[:, :, xi:xi + 1], ffill_index((cnt[:, :, xi] > 0)[:, :, None]))[:, :, 0]
        return self.features_from_held(st, bstart, val, held, cnt, vin, tv, tx, vaso_of)

    def features_from_held(self, st: pd.DataFrame, bstart, val, held, cnt, vin, tv, tx, vaso_of) -> dict:
        """Everything after the holds, cell by cell (any leading shape [S, ...]): ``val`` / ``held`` [..., C]
        slot and held values; ``vin`` ventilation evidence in the slot, ``tv`` / ``tx`` times of the latest
        ventilation evidence and extubation at or before it."""
        spec = self.spec
        V = {name: held[..., i] for name, i in self.cidx.items()}
        # has_data: any charted/lab observation in the bin (not urine, inputs or the raw-bilirubin copy)
        obs_idx = [i for n, i in self.cidx.items() if n not in ("urine", "Weight_mv", "Total_bili_raw")]
        has_data = cnt[..., obs_idx].sum(axis=-1) > 0
        # mechanical ventilation: evidence in the bin, or held vent_hold_h unless an extubation came after it
        held_v = (bstart - tv <= spec.vent_hold_h * H) & ~(tx >= tv)
        mech = (vin | held_v).astype(np.float64)
        V["mechvent"] = mech
        V["Weight_kg"] = np.where(np.isnan(V["Weight_kg"]), V["Weight_mv"], V["Weight_kg"])
        self._derive(V)
        vaso = vaso_of(V["Weight_kg"])
        urine = val[..., self.cidx["urine"]]
        sofa = sofa_mod.sofa_total(V["PaO2_FiO2"], mech > 0, V["Platelets_count"], V["Total_bili"], V["MeanBP"],
                                   vaso, V["GCS"], V["Creatinine"], urine, self.p.window.bin_h,
                                   standard=self.fixes["sofa_scoring"])
        # raw state: 33 observations + 5 demographics
        state = np.full(mech.shape + (len(OBS) + len(DEMOG_COLS),), np.nan)
        for i, o in enumerate(OBS):
            state[..., i] = V[o]
        n = len(OBS)
        per_stay = (-1,) + (1,) * (mech.ndim - 1)
        state[..., n + 0] = st["m:gender"].to_numpy().reshape(per_stay)
        state[..., n + 1] = mech
        state[..., n + 2] = st["m:re_admission"].to_numpy().reshape(per_stay)
        state[..., n + 3] = st["m:age"].to_numpy().reshape(per_stay)
        state[..., n + 4] = V["Weight_kg"]
        return {"values": V, "state": state, "vaso": vaso, "urine": urine, "sofa": sofa, "has_data": has_data,
                "bili_raw": val[..., self.cidx["Total_bili_raw"]]}

    def _derive(self, V: dict) -> None:
        """cohort.md 3.10, in order, on held values (in place)."""
        spec, f = self.spec, self.spec.facts
        shape = V["HR"].shape
        nan = np.full(shape, np.nan)
        get = lambda k: V.get(k, nan)  # noqa: E731
        # 1. GCS from RASS
        gcs, rass = V["GCS"], get("RASS")
        r = np.round(rass)
        fromr = np.full(shape, np.nan)
        for key, gv in spec.rass_to_gcs.items():
            fromr = np.where((r >= 0) if key == 0 else (r == key), gv, fromr)
        V["GCS"] = np.where(np.isnan(gcs), fromr, gcs)
        # 2. FiO2 from O2 flow and device class
        fio2, flow, dev = V["FiO2_1"], get("O2_flow"), get("O2_device")
        est = np.full(shape, np.nan)
        tab = spec.fio2_table
        for cls, rows in tab.groupby("device_class", sort=False):
            rows = rows.sort_values("flow_max", ascending=False, kind="stable")
            code = float(cls)
            e = np.full(shape, np.nan)
            top = rows.iloc[0]
            e = np.where(flow > top["flow_max"], top["fio2"], e)
            for _, rw in rows.iterrows():
                cond = (flow < rw["flow_max"]) if rw["strict"] else (flow <= rw["flow_max"])
                e = np.where(cond, rw["fio2"], e)
            zero = rows[rows["flow_max"] == 0]
            if len(zero):
                e = np.where(np.isnan(flow), zero["fio2"].iloc[0], e)
            est = np.where(dev == code, e, est)
        V["FiO2_1"] = np.where(np.isnan(fio2), est, fio2)
        # 3. blood pressure when exactly one of the three is missing
        sb, mb, db = V["SysBP"], V["MeanBP"], V["DiaBP"]
        miss = np.isnan(sb).astype(int) + np.isnan(mb) + np.isnan(db)
        one = miss == 1
        V["MeanBP"] = np.where(one & np.isnan(mb), (sb + 2 * db) / 3, mb)
        V["DiaBP"] = np.where(one & np.isnan(db), (3 * mb - sb) / 2, db)
        V["SysBP"] = np.where(one & np.isnan(sb), 3 * mb - 2 * db, sb)
        # 4. Hb from Ht; 5. total bilirubin from direct
        V["Hb"] = np.where(np.isnan(V["Hb"]), (get("Ht") - f["hb_ht_a"]) / f["hb_ht_b"], V["Hb"])
        V["Total_bili"] = np.where(np.isnan(V["Total_bili"]), (get("Direct_bili") + f["bili_a"]) / f["bili_b"],
                                   V["Total_bili"])
        # 6. P/F
        with np.errstate(divide="ignore", invalid="ignore"):
            V["PaO2_FiO2"] = V["paO2"] / V["FiO2_1"]

    # ------------------------------------------------------------------ rows
    def grid_frame(self, b: Bins) -> pd.DataFrame:
        """One row per stay and computed bin k = kmin .. kmax-1 (raw values; SOFA window and exclusions)."""
        g, st = b.grid, b.stays
        S, nj = len(st), g.nj
        s = np.repeat(np.arange(S), nj - 1)
        j = np.tile(np.arange(1, nj), S)
        return grid_columns(g, st, s, j, lambda x: x[s, j], b.state, b.fluid, b.vaso, b.urine, b.sofa, b.has_data,
                            b.bili_raw, b.values)

    def trajectory_rows(self, b: Bins, until=None) -> pd.DataFrame:
        """Rows of the trajectory bins (overlapping the ICU stay, truncated at death), completed by ``until``
        (scalar or per-stay array of timestamps / seconds; None = all), with ids, step and t_onset_h."""
        df = self.grid_frame(b)
        df = df[df["in_traj"].to_numpy()]
        if until is not None:
            u = until_seconds(until, len(b.stays))
            done = df["bin_start_s"].to_numpy() + b.grid.bin_s <= u[df["s"].to_numpy()]
            df = df[done]
        kfirst = df.groupby("s")["k"].transform("min").to_numpy()
        return self.rows_frame(b.stays, df, kfirst)

    @staticmethod
    def rows_frame(st: pd.DataFrame, df: pd.DataFrame, kfirst: np.ndarray) -> pd.DataFrame:
        """Trajectory rows from grid-frame rows ``df`` (columns of :meth:`grid_frame`) and each row's first
        trajectory bin ``kfirst``: ids, step, bin_start, t_onset_h, then the grid columns."""
        s = df["s"].to_numpy()
        out = pd.DataFrame({"subject_id": st["subject_id"].to_numpy(np.int64)[s],
                            "hadm_id": st["hadm_id"].to_numpy(np.int64)[s],
                            "icustay_id": st["icustay_id"].to_numpy(np.int64)[s],
                            "step": (df["k"].to_numpy() - kfirst).astype(np.int16),
                            "bin_start": pd.to_datetime(df["bin_start_s"].to_numpy().astype(np.int64), unit="s"),
                            "t_onset_h": ((df["bin_start_s"].to_numpy() - st["onset_s"].to_numpy()[s]) / H)
                            .round().astype(np.int16)})
        out = pd.concat([out, df.drop(columns=["s", "in_traj", "bin_start_s"]).reset_index(drop=True)], axis=1)
        return out.reset_index(drop=True)

    # ------------------------------------------------------------------ fitted artefacts
    def normalise(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Impute with training medians, recompute P/F, transform (cohort.md 3.14). Adds ``raw:`` copies of the
        physical values (after imputation) and replaces o:/m: with the normalised values."""
        if self.normalization is None:
            raise InputError("featuriser: normalization.json statistics are needed to normalise states")
        raw = impute(rows, self.normalization)
        norm = transform(raw, self.normalization)
        state = set(OBS_COLS + DEMOG_COLS)
        cols = {c: (norm[c].to_numpy(np.float32) if c in state else rows[c]) for c in rows.columns}
        cols.update({RAW_PREFIX + c: raw[c].to_numpy(np.float32) for c in OBS_COLS + DEMOG_COLS})
        return pd.DataFrame(cols, index=rows.index)

    def bin_actions(self, rows: pd.DataFrame) -> pd.DataFrame:
        if self.action_edges is None:
            raise InputError("featuriser: action_edges.json is needed to bin actions")
        out = rows.copy()
        out["fluid_bin"] = dose_bin(out["fluid_ml"].to_numpy(), self.action_edges["fluid"]["edges"])
        out["vaso_bin"] = dose_bin(out["vaso_dose"].to_numpy(), self.action_edges["vaso"]["edges"])
        out["action"] = to_flat(out["fluid_bin"].astype(np.int8), out["vaso_bin"].astype(np.int8)).astype(np.int8)
        return out

    def __call__(self, static: dict, onsets: pd.DataFrame, events: dict, until=None,
                 counts: Counter | None = None) -> pd.DataFrame:
        """Normalised state rows (o:/m:), raw:o:/raw:m: values, fluid_ml, vaso_dose, bins and SOFA for every
        trajectory bin completed by ``until``."""
        b = self.bins(static, onsets, events, counts)
        rows = self.trajectory_rows(b, until)
        rows = self.normalise(rows)
        return self.bin_actions(rows)


# ---------------------------------------------------------------------- helpers shared with the cohort stage
HELD_COLUMNS = ("MeanBP", "HR", "SysBP", "RR", "Temp_C", "WBC_count", "paCO2", "GCS")


def grid_columns(g: GridSpec, st: pd.DataFrame, s: np.ndarray, j: np.ndarray, at, state, fluid, vaso, urine, sofa,
                 has_data, bili_raw, values) -> pd.DataFrame:
    """The grid frame of rows (stay position ``s``, slot ``j``); ``at(x)`` picks those rows of a per-slot array."""
    k = g.kmin - 1 + j
    g0 = st["g0"].to_numpy()[s]
    bs = g0 + k * g.bin_s
    intime = st["intime_s"].to_numpy()[s]
    end = st["end_s"].to_numpy()[s]
    intime = np.where(np.isnan(intime), -np.inf, intime)
    in_traj = (k >= 0) & (k < g.K) & (bs + g.bin_s > intime) & (bs < end)
    cols = {"s": s, "k": k.astype(np.int16), "bin_start_s": bs, "in_traj": in_traj}
    X = at(state)
    for i, col in enumerate(OBS_COLS + DEMOG_COLS):
        cols[col] = X[:, i]
    cols.update(fluid_ml=at(fluid), vaso_dose=at(vaso), urine_ml=at(urine), sofa=at(sofa), has_data=at(has_data),
                bili_raw=at(bili_raw))
    for name in HELD_COLUMNS:
        cols["held:" + name] = at(values[name])
    return pd.DataFrame(cols)


def until_seconds(until, n: int) -> np.ndarray:
    """``until`` (scalar or per-stay timestamps or seconds) as float64 seconds, one per stay."""
    return np.asarray(to_seconds(pd.Series(np.broadcast_to(np.asarray(until), (n,))))
                      if not np.issubdtype(np.asarray(until).dtype, np.number) else
                      np.broadcast_to(np.asarray(until, np.float64), (n,)))

def _attach(df, pos):
    if df is None or not len(df):
        return None
    s = df["icustay_id"].map(pos)
    ok = s.notna().to_numpy()
    return df[ok].assign(s=s.to_numpy()[ok].astype(np.int64))


def dose_bin(x: np.ndarray, edges) -> np.ndarray:
    """0 for x == 0 (or below), else 1 + number of edges strictly below x: (0,e1], (e1,e2], (e2,e3], (e3,inf)."""
    x = np.asarray(x, np.float64)
    e = np.asarray(edges, np.float64)
    b = np.searchsorted(e, x, side="left") + 1
    return np.where(x > 0, b, 0).astype(np.int8)


def column_transform(col: str) -> str:
    if col in BINARY_DEMOG:
        return "binary"
    if col.startswith("o:") and col[2:] in LOG_OBS:
        return "log_z"
    return "z"


def fit_normalization(train_rows: pd.DataFrame) -> dict:
    """Medians of raw values, then mean/std of the transformed imputed values, on training rows only."""
    med = {c: float(np.nanmedian(train_rows[c].to_numpy(np.float64))) if train_rows[c].notna().any() else 0.0
           for c in OBS_COLS + DEMOG_COLS}
    stats = {"columns": {c: {"transform": column_transform(c), "median": med[c]} for c in OBS_COLS + DEMOG_COLS}}
    raw = impute(train_rows, stats)
    for c in OBS_COLS + DEMOG_COLS:
        t = stats["columns"][c]["transform"]
        x = raw[c].to_numpy(np.float64)
        if t == "log_z":
            x = np.log(np.maximum(x, 0) + 0.1)
        if t == "binary":
            stats["columns"][c].update(mean=0.0, std=1.0)
            continue
        sd = float(np.std(x)) if len(x) else 1.0
        stats["columns"][c].update(mean=float(np.mean(x)) if len(x) else 0.0, std=sd if sd > 0 else 1.0)
    stats["fitted_on"] = "train"
    stats["n_rows"] = int(len(train_rows))
    return stats


def impute(rows: pd.DataFrame, stats: dict) -> pd.DataFrame:
    out = {}
    for c in OBS_COLS + DEMOG_COLS:
        x = rows[c].to_numpy(np.float64, na_value=np.nan)
        out[c] = np.where(np.isnan(x), stats["columns"][c]["median"], x)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["o:PaO2_FiO2"] = out["o:paO2"] / out["o:FiO2_1"]
    return pd.DataFrame(out, index=rows.index)


def transform(raw: pd.DataFrame, stats: dict) -> pd.DataFrame:
    out = {}
    for c in OBS_COLS + DEMOG_COLS:
        st = stats["columns"][c]
        x = raw[c].to_numpy(np.float64)
        if st["transform"] == "binary":
            out[c] = x - 0.5
            continue
        if st["transform"] == "log_z":
            x = np.log(np.maximum(x, 0) + 0.1)
        out[c] = (x - st["mean"]) / st["std"]
    return pd.DataFrame(out, index=raw.index)
