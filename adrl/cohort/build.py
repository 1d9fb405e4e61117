"""The `cohort` stage: interim event tables -> Sepsis-3 trajectories (cohort.md 3-8).

:func:`build_cohort` runs the recipe on in-memory interim frames and returns every output as objects;
:func:`write_outputs` writes them atomically; :func:`load_interim` reads ``data/interim/events``.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..actions import N_FLUID, N_VASO
from ..errors import EmptyResultError, InputError
from ..mimic.schema import INTERIM
from ..progress import Progress
from ..schemas import DEMOG_COLS, OBS_COLS, SPLITS, TRAJECTORY_COLUMNS
from .featurize import Featurizer, dose_bin, fit_normalization
from .grid import H, to_seconds
from .onset import antibiotics, cultures, onsets
from .params import CohortParams
from .spec import CohortSpec

log = logging.getLogger("adrl.cohort")
DAY = 86400.0
STATIC = ("patients", "admissions", "icustays")
EVENT_TABLES = ("chartevents", "labevents", "outputevents", "inputevents_mv", "inputevents_cv",
                "procedureevents_mv", "microbiologyevents", "prescriptions")


# ---------------------------------------------------------------------- input
def load_interim(events_dir: str | Path, table: str, icustay_ids=None, hadm_ids=None, subject_ids=None,
                 itemids=None) -> pd.DataFrame:
    """Read one interim table (Parquet dataset directory ``events_dir/table``), optionally filtered."""
    import pyarrow.dataset as ds

    from ..mimic.ingest import read_interim

    path = Path(events_dir) / table
    if not path.exists():
        raise InputError(f"{path}: interim table not found (run the ingest stage first)")
    names = ds.dataset(str(path), format="parquet").schema.names
    missing = [c for c in INTERIM[table] if c not in names]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}")
    flt = None
    for col, vals in (("icustay_id", icustay_ids), ("hadm_id", hadm_ids), ("subject_id", subject_ids),
                      ("itemid", itemids)):
        if vals is not None:
            f = ds.field(col).isin(list(map(int, vals)))
            flt = f if flt is None else flt & f
    return read_interim(events_dir, table, columns=list(INTERIM[table]), filter=flt).to_pandas()


def _check(df: pd.DataFrame, table: str):
    missing = [c for c in INTERIM[table] if c not in df.columns]
    if missing:
        raise InputError(f"interim table {table}: missing column(s) {missing}")


# ---------------------------------------------------------------------- the recipe
@dataclass
class CohortResult:
    trajectories: pd.DataFrame
    trajectories_raw: pd.DataFrame
    stays: pd.DataFrame
    normalization: dict
    action_edges: dict
    flow: dict
    grid_rows: pd.DataFrame       # all computed bins of the final stays (analysis / export)
    export_extra: pd.DataFrame    # per trajectory row: urine_ml, preadm_in, preadm_out (export only)


class Flow:
    def __init__(self):
        self.steps: list[dict] = []
        self.counts: Counter = Counter()

    def step(self, name: str, n: int, note: str = ""):
        prev = self.steps[-1]["stays"] if self.steps else None
        self.steps.append({"step": name, "stays": int(n), "dropped": None if prev is None else int(prev - n),
                           **({"note": note} if note else {})})
        log.info("cohort flow: %-55s %7d", name, n)
        if n == 0:
            raise EmptyResultError(f"cohort: no ICU stay left after step '{name}'")


def population(static: dict, p: CohortParams, flow: Flow, facts: dict) -> pd.DataFrame:
    icu = static["icustays"].copy()
    flow.step("ICU stays in ICUSTAYS", len(icu))
    icu = icu[icu["intime"].notna() & icu["outtime"].notna()]
    flow.step("with INTIME and OUTTIME", len(icu))
    icu = icu[icu["dbsource"].astype("string").str.lower().isin(p.population.dbsource).fillna(False).to_numpy(bool)]
    flow.step(f"DBSOURCE in {p.population.dbsource}", len(icu))
    icu = icu.merge(static["patients"][["subject_id", "dob"]], on="subject_id", how="left")
    icu["intime_s"], icu["outtime_s"] = to_seconds(icu["intime"]), to_seconds(icu["outtime"])
    age = (icu["intime_s"] - to_seconds(icu["dob"])) / (365.25 * DAY)
    age = np.where(age > facts["age_over_years"], facts["age_over_value"], age)
    icu = icu[age >= p.population.min_age_years]
    flow.step(f"age >= {p.population.min_age_years:g} years", len(icu))
    if p.population.first_icu_stay_per_admission:
        icu = icu.sort_values(["hadm_id", "intime_s", "icustay_id"], kind="stable").drop_duplicates("hadm_id")
        flow.step("first ICU stay of the admission", len(icu))
    return icu.sort_values("icustay_id").reset_index(drop=True)


def outcomes(st: pd.DataFrame, static: dict, p: CohortParams, facts: dict) -> pd.DataFrame:
    adm = static["admissions"][["hadm_id", "deathtime", "dischtime", "hospital_expire_flag"]].drop_duplicates("hadm_id")
    pat = static["patients"][["subject_id", "dod"]]
    o = st[["icustay_id", "subject_id", "hadm_id", "intime_s", "outtime_s"]].merge(adm, on="hadm_id", how="left") \
        .merge(pat, on="subject_id", how="left")
    dt, dod = to_seconds(o["deathtime"]), to_seconds(o["dod"])
    death = np.where(np.isnan(dt), dod, dt)
    out = o["outtime_s"].to_numpy()
    if p.recipe == "faithful":
        icu48 = np.abs(dod - out) < facts["icu48_h"] * H
    else:
        icu48 = death <= out + facts["icu48_h"] * H
    hosp = o["hospital_expire_flag"].fillna(0).to_numpy() == 1
    d90 = dod <= o["intime_s"].to_numpy() + facts["d90_days"] * DAY
    used = {"icu48": icu48, "hospital": hosp, "icu48_or_hospital": icu48 | hosp, "d90": d90}[p.outcome.mortality]
    return pd.DataFrame({"icustay_id": o["icustay_id"].to_numpy(), "died_icu48": icu48, "died_hosp": hosp,
                         "died_90d": d90, "died": used, "death_s": death, "dod_s": dod,
                         "dischtime_s": to_seconds(o["dischtime"])})


def withdrawal_of_care(died_90d, last_vaso, max_vaso, last_sofa, max_sofa, n_bins, K: int, max_dose: float):
    """Probable withdrawal of care (cohort.md 3.13.3): all five conditions hold."""
    return (np.asarray(died_90d, bool) & (np.asarray(last_vaso) == 0) & (np.asarray(max_vaso) > max_dose)
            & (np.asarray(last_sofa) >= 0.5 * np.asarray(max_sofa)) & (np.asarray(n_bins) < K))


def split_subjects(subjects: pd.DataFrame, p: CohortParams) -> pd.Series:
    """subjects: subject_id, died (any trajectory). -> split label per subject_id (cohort.md 7)."""
    rng = np.random.default_rng(p.split.seed)
    groups = [subjects] if p.split.stratify == "none" else [subjects[subjects["died"] == v] for v in (False, True)]
    parts = []
    cuts = np.cumsum(p.split.fractions)
    for g in groups:
        ids = np.sort(g["subject_id"].to_numpy())
        rng.shuffle(ids)
        b = np.round(cuts * len(ids)).astype(int)
        b[-1] = len(ids)
        lab = np.empty(len(ids), dtype=object)
        lab[:b[0]], lab[b[0]:b[1]], lab[b[1]:] = SPLITS
        parts.append(pd.Series(lab, index=ids))
    return pd.concat(parts).sort_index()


def fit_action_edges(train: pd.DataFrame, p: CohortParams) -> dict:
    out = {}
    for name, col, spec in (("fluid", "fluid_ml", p.actions.fluid_edges_ml), ("vaso", "vaso_dose", p.actions.vaso_edges)):
        x = train[col].to_numpy(np.float64)
        nz = x[x > 0]
        if spec == "quartiles":
            if not len(nz):
                raise EmptyResultError(f"cohort: no non-zero training {col} to fit cohort.actions."
                                       f"{'fluid_edges_ml' if name == 'fluid' else 'vaso_edges'}: quartiles")
            edges = [float(v) for v in np.percentile(nz, [25, 50, 75])]
            how = f"quartiles of the {len(nz)} non-zero training-split values"
        else:
            edges, how = [float(v) for v in spec], "fixed (params.yaml)"
        b = dose_bin(x, edges)
        med = [0.0] + [float(np.median(x[b == i])) if (b == i).any() else None for i in range(1, 5)]
        out[name] = {"column": col, "edges": edges, "how": how, "median_raw_per_bin": med,
                     "n_train_rows_per_bin": [int((b == i).sum()) for i in range(5)]}
    out["flat_index"] = "action = 5 * fluid_bin + vaso_bin"
    return out


def build_cohort(static: dict, events: dict, p: CohortParams, spec: CohortSpec, chunk_stays: int = 4000,
                 progress: bool | None = None, load_chunk=None) -> CohortResult:
    """Run the recipe on interim frames (``static``: patients/admissions/icustays; ``events``: by table name).

    ``load_chunk(stays)`` (optional) returns the event frames of a chunk of stays (columns icustay_id, hadm_id),
    so only the infection tables (prescriptions, microbiologyevents, procedureevents_mv and CHARTEVENTS culture
    items) need to be in ``events`` and memory stays bounded by the chunk size."""
    for t in STATIC:
        if t not in static:
            raise InputError(f"interim table {t} is missing")
        _check(static[t], t)
    for t, df in events.items():
        if df is not None:
            _check(df, t)
    flow = Flow()
    counts = flow.counts
    f = spec.facts
    st = population(static, p, flow, f)
    # suspected infection
    abx = antibiotics(events.get("prescriptions", pd.DataFrame(columns=list(INTERIM["prescriptions"]))), st, spec,
                      p.infection.attach_to_icu_h, counts)
    flow.step("with an antibiotic prescription", int(st["icustay_id"].isin(abx["icustay_id"]).sum()))
    cul = cultures(events.get("microbiologyevents"), events.get("chartevents"), events.get("procedureevents_mv"),
                   st, spec, p.infection.attach_to_icu_h, counts)
    has_both = st["icustay_id"].isin(abx["icustay_id"]) & st["icustay_id"].isin(cul["icustay_id"])
    flow.step("with an antibiotic and a culture", int(has_both.sum()))
    on = onsets(abx, cul, p.infection.abx_then_culture_h, p.infection.culture_then_abx_h, p.fix("onset_search"))
    st = st.merge(on, on="icustay_id", how="inner")
    flow.step("with a suspected-infection onset", len(st))
    # featurise in chunks of stays
    fz = Featurizer(p, spec)
    grids, pres = [], []
    ids = st["icustay_id"].to_numpy()
    for i in Progress(range(0, len(ids), chunk_stays), desc="cohort: featurise", unit="chunks", logger=log,
                      enabled=progress, work=chunk_stays, work_unit="stays"):
        sub = st.iloc[i:i + chunk_stays]
        ev = load_chunk(sub) if load_chunk is not None else _subset_events(events, sub)
        for t, df in ev.items():
            if df is not None:
                _check(df, t)
        pres.append(preadmission(ev, spec, sub["icustay_id"]))
        ons = pd.DataFrame({"icustay_id": sub["icustay_id"].to_numpy(),
                            "onset": pd.to_datetime(sub["onset_s"].to_numpy().astype(np.int64), unit="s")})
        b = fz.bins(static, ons, ev, counts)
        gf = fz.grid_frame(b)
        gf["icustay_id"] = b.stays["icustay_id"].to_numpy()[gf["s"].to_numpy()]
        grids.append(gf.drop(columns=["s"]))
    grid = pd.concat(grids, ignore_index=True)
    g = fz.grid
    traj = grid[grid["in_traj"].to_numpy()]
    n_bins = traj.groupby("icustay_id").size()
    st = st[st["icustay_id"].isin(n_bins.index)]
    flow.step("with a bin overlapping the ICU stay", len(st))
    a, z = g.sepsis_k
    win = grid[(grid["k"] >= a) & (grid["k"] < z)]
    maxsofa = win.groupby("icustay_id")["sofa"].max()
    septic = maxsofa[maxsofa >= p.sepsis.sofa_threshold].index
    st = st[st["icustay_id"].isin(septic)]
    flow.step(f"septic (max SOFA >= {p.sepsis.sofa_threshold} in the sepsis window)", len(st))
    traj = traj[traj["icustay_id"].isin(st["icustay_id"])]
    ex = p.exclusions
    tg = traj.groupby("icustay_id")
    for col, lim, label, unit in (("urine_ml", ex.max_urine_ml_per_bin, "urine", "mL"),
                                  ("fluid_ml", ex.max_fluid_ml_per_bin, "IV fluid", "mL"),
                                  ("bili_raw", ex.max_total_bili, "raw total bilirubin", "mg/dL")):
        bad = tg[col].max() > lim
        st = st[~st["icustay_id"].isin(bad[bad].index)]
        flow.step(f"no bin with {label} > {lim:g} {unit}", len(st))
    oc = outcomes(st, static, p, f)
    st = st.merge(oc, on="icustay_id", how="left")
    traj = traj[traj["icustay_id"].isin(st["icustay_id"])]
    tg = traj.sort_values(["icustay_id", "k"]).groupby("icustay_id")
    last = tg.tail(1).set_index("icustay_id")
    smax = tg["sofa"].max()
    vmax = tg["vaso_dose"].max()
    nb = tg.size()
    if ex.withdrawal_of_care:
        d90 = st.set_index("icustay_id")["died_90d"]
        ids_ = st["icustay_id"].to_numpy()
        w = withdrawal_of_care(d90.reindex(ids_).to_numpy(), last["vaso_dose"].reindex(ids_).to_numpy(),
                               vmax.reindex(ids_).to_numpy(), last["sofa"].reindex(ids_).to_numpy(),
                               smax.reindex(ids_).to_numpy(), nb.reindex(ids_).to_numpy(), g.K,
                               f["withdrawal_max_dose"])
        st = st[~w]
        flow.step("not a probable withdrawal of care", len(st))
    if ex.death_during_window:
        ids_ = st["icustay_id"].to_numpy()
        last_end = last["bin_start_s"].reindex(ids_).to_numpy() + g.bin_s
        died48 = st["death_s"].to_numpy() <= st["outtime_s"].to_numpy() + f["death_window_h"] * H
        near = last_end > st["dischtime_s"].to_numpy() - f["death_window_disch_h"] * H
        st = st[~(died48 & near)]
        flow.step("not died during data collection", len(st))
    st = st.sort_values("icustay_id").reset_index(drop=True)
    traj = traj[traj["icustay_id"].isin(st["icustay_id"])].sort_values(["icustay_id", "k"], kind="stable")
    # split by patient
    subj = st.groupby("subject_id")["died"].any().reset_index()
    lab = split_subjects(subj, p)
    st["split"] = st["subject_id"].map(lab)
    st["n_steps"] = st["icustay_id"].map(traj.groupby("icustay_id").size()).astype(int)
    split_counts = {s_: int((st["split"] == s_).sum()) for s_ in SPLITS}
    st["max_sofa"] = st["icustay_id"].map(maxsofa).astype(int)
    st["kept"] = True
    if p.split.drop_length_1:
        one = st["n_steps"] == 1
        st.loc[one, "kept"] = False
        counts["stays dropped after the split (trajectory of length 1)"] += int(one.sum())
    final = st[st["kept"]].reset_index(drop=True)
    flow.step("after dropping length-1 trajectories" if p.split.drop_length_1 else "final", len(final))
    final["traj"] = np.arange(len(final), dtype=np.int32)
    rows = traj[traj["icustay_id"].isin(final["icustay_id"])].copy()
    rows = rows.merge(final[["icustay_id", "subject_id", "hadm_id", "traj", "split", "onset_s", "died"]],
                      on="icustay_id", how="left")
    kfirst = rows.groupby("icustay_id")["k"].transform("min")
    rows["step"] = (rows["k"] - kfirst).astype(np.int16)
    rows["bin_start"] = pd.to_datetime(rows["bin_start_s"].to_numpy().astype(np.int64), unit="s")
    rows["t_onset_h"] = ((rows["bin_start_s"] - rows["onset_s"]) / H).round().astype(np.int16)
    # missingness before imputation (state columns, all final rows)
    missing = {c: float(rows[c].isna().mean()) for c in OBS_COLS + DEMOG_COLS}
    # fit on training rows only
    train = rows[rows["split"] == "train"]
    if not len(train):
        raise EmptyResultError("cohort: the training split is empty (too few stays for cohort.split.fractions)")
    norm = fit_normalization(train)
    norm["log_offset"] = 0.1
    edges = fit_action_edges(train, p)
    fz.normalization, fz.action_edges = norm, edges
    rows = fz.bin_actions(fz.normalise(rows))
    rows = rows.sort_values(["traj", "step"], kind="stable").reset_index(drop=True)
    L = rows.groupby("traj")["step"].transform("max")
    rows["done"] = (rows["step"] == L).to_numpy()
    r = p.reward
    rows["reward"] = np.where(rows["done"], np.where(rows["died"], r.die, r.survive), r.intermediate).astype(np.float32)
    traj_out = _contract(rows, raw=False)
    raw_out = _contract(rows, raw=True)
    check_invariants(traj_out, p)
    check_invariants(raw_out, p, normalised=False)
    final = final.assign(onset=pd.to_datetime(final["onset_s"].astype(np.int64), unit="s"),
                         abx_time=pd.to_datetime(final["abx_s"].astype(np.int64), unit="s"),
                         culture_time=pd.to_datetime(final["culture_s"].astype(np.int64), unit="s"),
                         outcome=p.outcome.mortality)
    stays_out = st.assign(traj=st["icustay_id"].map(final.set_index("icustay_id")["traj"]).astype("Int32"),
                          onset=pd.to_datetime(st["onset_s"].astype(np.int64), unit="s"),
                          abx_time=pd.to_datetime(st["abx_s"].astype(np.int64), unit="s"),
                          culture_time=pd.to_datetime(st["culture_s"].astype(np.int64), unit="s"),
                          outcome=p.outcome.mortality)
    stays_out = stays_out[["subject_id", "hadm_id", "icustay_id", "traj", "dbsource", "intime", "outtime", "onset",
                           "onset_kind", "abx_time", "culture_time", "n_steps", "max_sofa", "died_hosp", "died_icu48",
                           "died_90d", "outcome", "died", "split", "kept"]]
    flow_doc = _flow_report(flow, final, rows, split_counts, missing, p)
    grid_final = grid[grid["icustay_id"].isin(final["icustay_id"])]
    pre = pd.concat(pres)
    extra = pd.DataFrame({"urine_ml": rows["urine_ml"].to_numpy(),
                          "preadm_in": rows["icustay_id"].map(pre["in"]).fillna(0.0).to_numpy(),
                          "preadm_out": rows["icustay_id"].map(pre["out"]).fillna(0.0).to_numpy()})
    return CohortResult(traj_out, raw_out, stays_out, norm, edges, flow_doc, grid_final, extra)


def preadmission(events: dict, spec: CohortSpec, ids) -> pd.DataFrame:
    """Pre-admission intake (MetaVision sum preferred, else CareVue) and output per stay (export only)."""
    out = pd.DataFrame(index=pd.Index(ids, name="icustay_id"))
    pi = spec.preadm_items
    sums = {}
    for table in ("inputevents_mv", "inputevents_cv"):
        df = events.get(table)
        items = pi.loc[(pi["table"] == table) & (pi["kind"] == "input"), "itemid"]
        if df is None or not len(df) or not len(items):
            sums[table] = pd.Series(dtype=float)
            continue
        d = df[df["itemid"].isin(items) & df["icustay_id"].isin(ids)]
        sums[table] = d.groupby("icustay_id")["amount"].sum()
    out["in"] = sums["inputevents_mv"].reindex(out.index)
    out["in"] = out["in"].fillna(sums["inputevents_cv"].reindex(out.index))
    oe = events.get("outputevents")
    items = pi.loc[(pi["table"] == "outputevents") & (pi["kind"] == "output"), "itemid"]
    if oe is not None and len(oe) and len(items):
        d = oe[oe["itemid"].isin(items) & oe["icustay_id"].isin(ids)]
        out["out"] = d.groupby("icustay_id")["value"].sum().reindex(out.index)
    else:
        out["out"] = np.nan
    return out.fillna(0.0)


def write_outputs(res: CohortResult, p: CohortParams, processed: Path, flow_path: Path) -> dict:
    """Write every output of cohort.md 8 atomically; returns {name: path}."""
    from ..io import atomic_path, write_json, write_parquet
    from .export import export_frames

    processed = Path(processed)
    paths = {"trajectories": processed / "trajectories.parquet",
             "trajectories_raw": processed / "trajectories_raw.parquet",
             "stays": processed / "stays.parquet",
             "normalization": processed / "cohort" / "normalization.json",
             "action_edges": processed / "cohort" / "action_edges.json",
             "flow": Path(flow_path)}
    write_parquet(paths["trajectories"], _arrow(res.trajectories))
    write_parquet(paths["trajectories_raw"], _arrow(res.trajectories_raw))
    write_parquet(paths["stays"], res.stays)
    write_json(paths["normalization"], res.normalization)
    write_json(paths["action_edges"], res.action_edges)
    if p.export.mimic_sepsis_csv:
        rawx, normx = export_frames(res.trajectories_raw, res.export_extra, res.stays, p.state.exclude_current_treatment,
                                    p.export.reward, p.reward)
        for name, df in (("sepsis_final_data_RAW_withTimes.csv", rawx), ("sepsis_final_data_withTimes.csv", normx)):
            paths[name] = processed / "export" / name
            with atomic_path(paths[name]) as tmp:
                df.to_csv(tmp, index=False)
        sp = res.stays.loc[res.stays["kept"], ["icustay_id", "subject_id", "split"]].rename(
            columns={"icustay_id": "icustayid"})
        paths["splits.csv"] = processed / "export" / "splits.csv"
        with atomic_path(paths["splits.csv"]) as tmp:
            sp.to_csv(tmp, index=False)
    write_json(paths["flow"], res.flow)
    return paths


def _arrow(df: pd.DataFrame):
    import pyarrow as pa

    fields = []
    for c, t in TRAJECTORY_COLUMNS.items():
        typ = {"float": pa.float32(), "timestamp[s]": pa.timestamp("s"), "string": pa.string(), "bool": pa.bool_(),
               "int64": pa.int64(), "int32": pa.int32(), "int16": pa.int16(), "int8": pa.int8()}[t]
        fields.append(pa.field(c, typ))
    schema = pa.schema(fields)
    cols = [pa.array(df[f.name].to_numpy() if f.type != pa.string() else df[f.name].astype(str).to_numpy(
        dtype=object), type=f.type if not pa.types.is_timestamp(f.type) else None).cast(f.type) for f in fields]
    return pa.Table.from_arrays(cols, schema=schema)


def _subset_events(events: dict, sub: pd.DataFrame) -> dict:
    out = {}
    ids, hadm = set(sub["icustay_id"]), set(sub["hadm_id"])
    for t, df in events.items():
        if df is None or t in ("prescriptions", "microbiologyevents"):
            continue
        if t == "labevents":
            out[t] = df[df["hadm_id"].isin(hadm)]
        else:
            out[t] = df[df["icustay_id"].isin(ids)]
    return out


def _contract(rows: pd.DataFrame, raw: bool) -> pd.DataFrame:
    out = pd.DataFrame(index=rows.index)
    for c, t in TRAJECTORY_COLUMNS.items():
        src = ("raw:" + c) if raw and (c.startswith("o:") or c.startswith("m:")) else c
        x = rows[src]
        if t == "float":
            out[c] = x.astype(np.float32)
        elif t == "timestamp[s]":
            out[c] = pd.to_datetime(x).astype("datetime64[s]")
        elif t == "string":
            out[c] = x.astype(str)
        else:
            out[c] = x.astype(t)
    return out.reset_index(drop=True)


def check_invariants(df: pd.DataFrame, p: CohortParams, normalised: bool = True) -> None:
    """cohort.md 8.3; raises InputError naming the violated invariant."""
    def fail(msg):
        raise InputError(f"trajectories: invariant violated: {msg}")
    if list(df.columns) != list(TRAJECTORY_COLUMNS):
        fail("columns differ from adrl.schemas.TRAJECTORY_COLUMNS")
    if df.duplicated(["icustay_id", "step"]).any():
        fail("(icustay_id, step) is not unique")
    g = df.groupby("traj")
    n = g.size()
    if not ((g["step"].min() == 0).all() and (g["step"].max() == n - 1).all()):
        fail("steps do not run 0 .. L-1")
    if not (g["done"].sum() == 1).all():
        fail("not exactly one done per trajectory")
    last = df["step"] == df.groupby("traj")["step"].transform("max")
    if not (df["done"] == last).all():
        fail("done is not on the last row")
    if (df.loc[~df["done"], "reward"] != p.reward.intermediate).any():
        fail("reward differs from intermediate on a non-terminal row")
    if not (df["action"] == 5 * df["fluid_bin"].astype(int) + df["vaso_bin"]).all():
        fail("action != 5 * fluid_bin + vaso_bin")
    if not ((df["fluid_bin"] == 0) == (df["fluid_ml"] == 0)).all():
        fail("fluid_bin == 0 is not equivalent to fluid_ml == 0")
    if not ((df["vaso_bin"] == 0) == (df["vaso_dose"] == 0)).all():
        fail("vaso_bin == 0 is not equivalent to vaso_dose == 0")
    st = df[list(OBS_COLS + DEMOG_COLS)].to_numpy(np.float64)
    if not np.isfinite(st).all():
        fail("o:/m: columns hold NaN or infinity")
    if (df.groupby("subject_id")["split"].nunique() > 1).any():
        fail("a subject has rows in more than one split")
    if not (df["traj"].is_monotonic_increasing and g["step"].apply(lambda s: s.is_monotonic_increasing).all()):
        fail("rows are not sorted by (traj, step)")


def _flow_report(flow: Flow, final: pd.DataFrame, rows: pd.DataFrame, split_counts: dict, missing: dict,
                 p: CohortParams) -> dict:
    L = final["n_steps"]
    tab = np.zeros((N_FLUID, N_VASO), dtype=int)
    np.add.at(tab, (rows["fluid_bin"].to_numpy(int), rows["vaso_bin"].to_numpy(int)), 1)
    mort = {s: (float(final.loc[final["split"] == s, "died"].mean()) if (final["split"] == s).any() else None)
            for s in SPLITS}
    return {
        "recipe": p.recipe,
        "resolved": p.resolved(),
        "steps": flow.steps,
        "split_stays_before_length_filter": split_counts,
        "split_stays": {s: int((final["split"] == s).sum()) for s in SPLITS},
        "split_subjects": {s: int(final.loc[final["split"] == s, "subject_id"].nunique()) for s in SPLITS},
        "split_rows": {s: int((rows["split"] == s).sum()) for s in SPLITS},
        "split_transitions": {s: int((rows["split"] == s).sum() - (final["split"] == s).sum()) for s in SPLITS},
        "mortality": {"outcome": p.outcome.mortality, "overall": float(final["died"].mean()), **mort},
        "trajectory_length": {"mean": float(L.mean()), "min": int(L.min()), "max": int(L.max()),
                              "histogram": {int(k): int(v) for k, v in L.value_counts().sort_index().items()}},
        "action_table": {"rows": "fluid_bin 0-4", "cols": "vaso_bin 0-4", "counts": tab.tolist()},
        "missingness_before_imputation": missing,
        "dropped": {k: int(v) for k, v in sorted(flow.counts.items())},
        "onset_kind": {k: int(v) for k, v in final["onset_kind"].value_counts().items()},
    }
