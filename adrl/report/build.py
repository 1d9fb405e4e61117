"""The report: one self-contained HTML page (and a markdown twin) from the pipeline's outputs.

Only aggregates reach the report: counts, rates, summary statistics, figures. No patient-level rows.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .. import paths  # noqa: E402
from ..actions import N_FLUID, N_VASO, from_flat  # noqa: E402
from ..errors import InputError  # noqa: E402
from .html import Figure, Section, Table, fig_png  # noqa: E402

log = logging.getLogger("adrl.report")
HEADLINE = ("clinician", "bcq", "factored_bcq", "adbcq")
NAMES = {"clinician": "Clinician (observed)", "bcq": "Discrete BCQ", "factored_bcq": "Factored BCQ",
         "adbcq": "AD-BCQ", "no_treatment": "No treatment"}

CAVEATS = [
    "Only test numbers are results: the selected checkpoint's validation WIS is a maximum over many candidates.",
    "WIS with epsilon-softening is, in effect, the survival rate of the test episodes in which the policy agreed "
    "with the clinician at every step; a high WIS with a small ESS is a selection artefact, not evidence.",
    "Support mismatch: actions clinicians never take get weight 0, so WIS estimates a value conditional on staying "
    "inside clinical practice.",
    "The behaviour policy is a kNN estimate on AIS states; its errors move every weight. Its calibration is shown.",
    "On real MIMIC-III there is no ground truth, and residual confounding (what was never charted: bedside "
    "examination, notes, goals of care) is the main threat to validity. None of these estimates is a clinical "
    "recommendation.",
]


SOURCES = {"synthetic": "a synthetic ICU world (MIMIC-III v1.4 layout)", "mimic": "MIMIC-III v1.4",
           "demo": "the MIMIC-III demo (100 patients, generated CHARTEVENTS)"}


def report_title(cfg) -> str:
    """report.title plus the data source actually used ("... from a synthetic ICU world"), so that a report of
    synthetic data never reads "from MIMIC-III"."""
    return f"{cfg.report.title} from {SOURCES.get(cfg.source.kind, cfg.source.kind)}"


def _read_json(path: Path, required: bool = True):
    if not path.exists():
        if required:
            raise InputError(f"{path}: not found (run the stage that writes it: dvc repro)")
        return None
    return json.loads(path.read_text())


def file_digest(path: Path) -> str | None:
    if not path.exists():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:12]


def _ci(ci) -> str:
    return "" if not ci or ci[0] is None else f"({ci[0]:.1f}, {ci[1]:.1f})"


def _num(v, fmt="{:.2f}"):
    return "" if v is None or (isinstance(v, float) and not np.isfinite(v)) else fmt.format(v)


# ------------------------------------------------------------------ figures
def flow_figure(flow: dict, dpi: int) -> bytes:
    steps = flow["steps"]
    names = [s["step"] for s in steps]
    n = [s["stays"] for s in steps]
    fig, ax = plt.subplots(figsize=(8.5, 0.32 * len(steps) + 1))
    y = np.arange(len(steps))[::-1]
    ax.barh(y, n, color="#4c78a8")
    for yi, v, s in zip(y, n, steps):
        d = s.get("dropped")
        ax.text(v, yi, f" {v:,}" + (f"  (-{d:,})" if d else ""), va="center", fontsize=8)
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlabel("ICU stays")
    ax.set_xlim(0, max(n) * 1.25)
    ax.set_title("Cohort flow")
    ax.spines[["top", "right"]].set_visible(False)
    return fig_png(fig, dpi)


def _edge(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.2g}"


def bin_labels(edges) -> list[str]:
    """Dose ranges of the 5 bins: 0 = none, then (0, e1], (e1, e2], (e2, e3], (e3, inf) (cohort.md 5.3)."""
    e = [_edge(float(x)) for x in edges]
    return ["0: none", f"1: 0-{e[0]}", f"2: {e[0]}-{e[1]}", f"3: {e[1]}-{e[2]}", f"4: > {e[2]}"]


def heatmap_figure(tables: dict[str, np.ndarray], dpi: int, edges: dict | None = None, bin_h: int = 4) -> bytes:
    """Share of decisions per (fluid bin, vasopressor bin); bins labelled with their dose ranges when the cohort's
    action_edges.json is given."""
    k = len(tables)
    cols = 2 if k > 2 else k
    rows = -(-k // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.6 * rows), squeeze=False)
    fl = bin_labels(edges["fluid"]["edges"]) if edges else [str(i) for i in range(N_FLUID)]
    va = bin_labels(edges["vaso"]["edges"]) if edges else [str(i) for i in range(N_VASO)]
    for ax in axes.ravel()[k:]:
        ax.set_visible(False)
    for ax, (name, counts) in zip(axes.ravel(), tables.items()):
        share = counts / max(counts.sum(), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=max(share.max(), 1e-9))
        for f in range(N_FLUID):
            for v in range(N_VASO):
                ax.text(v, f, f"{100 * share[f, v]:.0f}", ha="center", va="center", fontsize=9,
                        color="white" if share[f, v] > 0.6 * share.max() else "black")
        ax.set_title(NAMES.get(name, name), fontsize=11)
        ax.set_xlabel("vasopressor, NE-eq \u00b5g/kg/min (bin maximum)" if edges else "vasopressor bin", fontsize=9)
        ax.set_ylabel(f"IV fluid, mL per {bin_h} h" if edges else "IV fluid bin", fontsize=9)
        ax.set_xticks(range(N_VASO), va, fontsize=8, rotation=30, ha="right")
        ax.set_yticks(range(N_FLUID), fl, fontsize=8)
    fig.suptitle("Actions on the test split (% of decisions)", fontsize=12)
    fig.tight_layout()
    return fig_png(fig, dpi)


def test_table_figure(rows: list[dict], dpi: int) -> bytes:
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(rows) + 1.2))
    y = np.arange(len(rows))[::-1]
    for yi, r in zip(y, rows):
        if r.get("wis") is not None:
            lo, hi = r.get("wis_ci") or (r["wis"], r["wis"])
            ax.errorbar(r["wis"], yi + 0.12, xerr=[[r["wis"] - lo], [hi - r["wis"]]], fmt="o", color="#4c78a8",
                        label="WIS (95% CI)" if yi == y[0] else None)
        if r.get("true_value") is not None:
            se = r.get("true_value_se") or 0
            ax.errorbar(r["true_value"], yi - 0.12, xerr=1.96 * se, fmt="s", color="#e45756",
                        label="true value (simulator)" if yi == y[0] else None)
    ax.set_yticks(y, [NAMES.get(r["policy"], r["policy"]) for r in rows])
    ax.set_xlabel("value (100 x survival)")
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("Test estimates beside the truth")
    return fig_png(fig, dpi)


def training_figure(runs_dir: Path, selected: dict, dpi: int) -> bytes | None:
    keys = [k for k in ("bcq", "factored_bcq", "adbcq") if k in selected]
    if not keys:
        return None
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3), squeeze=False)
    for ax, k in zip(axes[0], keys):
        rec = _read_json(runs_dir / selected[k]["run_id"] / "run.json", required=False) or {}
        h = rec.get("history") or {}
        steps = h.get("step")
        if not steps:
            ax.set_visible(False)
            continue
        for name, vals in h.items():
            if name.startswith("loss/"):
                ax.plot(steps, vals, label=name[5:])
        ax.axvline(selected[k]["step"], color="grey", ls="--", lw=1)
        ax.set_title(f"{NAMES[k]} ({selected[k]['run_id']})", fontsize=8)
        ax.set_xlabel("gradient step")
        _loss_axis(ax, [v for n, vals in h.items() if n.startswith("loss/") for v in vals])
        ax.legend(fontsize=7)
    fig.suptitle("Training losses of the selected runs (dashed: selected checkpoint)", fontsize=10)
    fig.tight_layout()
    return fig_png(fig, dpi)


def _loss_axis(ax, values) -> None:
    """A y axis with labelled ticks whatever the losses' range: log scale with 1-2-3-5-7 ticks when all are positive."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    v = np.asarray([x for x in values if np.isfinite(x)])
    if len(v) and (v > 0).all():
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0, 7.0), numticks=12))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylabel("loss (log scale)")
    else:
        ax.set_ylabel("loss")
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="y", alpha=0.3)


# ------------------------------------------------------------------ tables
TABLE1_COLUMNS = ["traj", "step", "m:age", "m:gender", "m:Weight_kg", "m:mechvent", "o:Arterial_lactate",
                  "o:MeanBP", "vaso_dose", "sofa"]


def _median_iqr(x: pd.Series, fmt: str = "{:.0f}") -> str:
    x = x.dropna()
    if not len(x):
        return ""
    q = x.quantile([0.25, 0.5, 0.75]).to_numpy()
    return f"{fmt.format(q[1])} ({fmt.format(q[0])}-{fmt.format(q[2])})"


def clinical_table(stays: pd.DataFrame, raw: pd.DataFrame, outcome: str | None = None,
                   bin_h: int = 4) -> Table:
    """Table 1: who the patients are, per split (stays of the final cohort). ``raw``: the raw (unnormalised)
    trajectory rows, TABLE1_COLUMNS; values as in the state (held forward / imputed where not charted)."""
    st = stays[stays["kept"].astype(bool)] if "kept" in stays.columns else stays
    g = raw.sort_values(["traj", "step"]).groupby("traj")
    per = pd.DataFrame({"age": g["m:age"].first(), "female": g["m:gender"].first(), "weight": g["m:Weight_kg"].first(),
                        "lactate": g["o:Arterial_lactate"].max(), "map": g["o:MeanBP"].min(),
                        "vaso": g["vaso_dose"].max() > 0, "vent": g["m:mechvent"].max() > 0.5,
                        "sofa_first": g["sofa"].first()})
    st = st.merge(per, left_on="traj", right_index=True, how="left")
    los = (pd.to_datetime(st["outtime"]) - pd.to_datetime(st["intime"])).dt.total_seconds() / 86400
    st = st.assign(los_days=los.to_numpy())
    splits = [s for s in ("train", "val", "test") if (st["split"] == s).any()] + ["all"]
    parts = {s: (st if s == "all" else st[st["split"] == s]) for s in splits}

    def pct(col):
        return [f"{100 * d[col].mean():.1f}" if len(d) else "" for d in parts.values()]

    rows = [
        ["ICU stays", *[f"{len(d):,}" for d in parts.values()]],
        ["patients", *[f"{d['subject_id'].nunique():,}" for d in parts.values()]],
        ["age, years, median (IQR)", *[_median_iqr(d["age"]) for d in parts.values()]],
        ["female, %", *pct("female")],
        ["weight, kg, median (IQR)", *[_median_iqr(d["weight"]) for d in parts.values()]],
        ["SOFA at the first step, median (IQR)", *[_median_iqr(d["sofa_first"]) for d in parts.values()]],
        ["max SOFA in the sepsis window, median (IQR)", *[_median_iqr(d["max_sofa"]) for d in parts.values()]],
        ["max lactate, mmol/L, median (IQR)", *[_median_iqr(d["lactate"], "{:.1f}") for d in parts.values()]],
        ["min MAP, mmHg, median (IQR)", *[_median_iqr(d["map"]) for d in parts.values()]],
        ["ever on vasopressors, %", *pct("vaso")],
        ["ever mechanically ventilated, %", *pct("vent")],
        ["ICU length of stay, days, median (IQR)", *[_median_iqr(d["los_days"], "{:.1f}") for d in parts.values()]],
        [f"{bin_h}-h steps in the trajectory, median (IQR)", *[_median_iqr(d["n_steps"]) for d in parts.values()]],
        [f"mortality ({outcome}), %" if outcome else "mortality, %", *pct("died")],
    ]
    return Table(["", *splits], rows, "Table 1: patients of the final cohort by split. Lactate, MAP and SOFA are the "
                 "stay's values per step as in the state (held forward or imputed where not charted); mortality is "
                 "the cohort's outcome")


def test_table(rows: list[dict]) -> Table:
    out = []
    for r in rows:
        out.append([NAMES.get(r["policy"], r["policy"]), _num(r.get("wis")),
                    "not estimable" if r.get("wis_ci_note") else _ci(r.get("wis_ci")),
                    _num(r.get("ess"), "{:.1f}"), _ci(r.get("ess_ci")), _num(r.get("fqe")), _ci(r.get("fqe_ci")),
                    _num(r.get("wdr")), _ci(r.get("wdr_ci")), _num(r.get("agreement"), "{:.3f}"),
                    _num(r.get("true_value")), _num(r.get("true_value_se")), r.get("n_episodes"),
                    r.get("variant", "") or "", "; ".join(r.get("flags") or [])])
    return Table(["policy", "WIS", "WIS 95% CI", "ESS", "ESS 95% CI", "FQE", "FQE 95% CI", "WDR", "WDR 95% CI",
                  "agreement", "true value", "true SE", "episodes", "selected", "flags"], out,
                 "Test split: WIS and ESS with episode-bootstrap 95% CIs (below the ESS cutoff a WIS CI is one or "
                 "two episodes: not estimable); FQE (fitted on train) and WDR with episode-bootstrap CIs (the FQE "
                 "fit itself is not refitted); agreement with clinician actions; true value from simulator "
                 "roll-outs (synthetic source only); flags: why a policy is not promoted to champion")


AUDIT_TEXT = ("How far can each estimator be trusted to choose? Every audited candidate (each run's final "
              "checkpoint and evenly spaced others) is rolled out in the simulator; each panel puts its validation "
              "estimate against that truth. WIS reweights whole episodes; PDWIS normalises the weights step by step "
              "(with a terminal-only reward it differs from WIS only through those per-step normalisers); FQE is a "
              "value network of the candidate's own policy fitted on train; WDR corrects FQE with the per-step "
              "weights (weighted doubly robust). Regret: best true value among the candidates minus the one the "
              "estimator's rule selects.")


def audit_blocks(audit: dict | None, info: dict, points_csv: Path, dpi: int) -> list:
    """The selection audit: estimate against truth per estimator, and the Spearman / regret / top-5 table."""
    if not audit:
        return [("note", f"No selection audit: {info.get('skipped', 'not run')}")] if info else []
    from ..ope.plots import audit_figure

    blocks: list = [AUDIT_TEXT]
    if points_csv.exists():
        pts = pd.read_csv(points_csv)
        if len(pts):
            blocks.append(Figure(fig_png(audit_figure(pts, audit), dpi), "Selection audit: validation estimate "
                                 "against the simulator's true value, one point per candidate", "audit"))
    blocks.append(Table(["estimator", "Spearman", "regret", "top-5 precision", "selects (true value)"],
                        [[e, _num(r["spearman"]), _num(r["regret"]), _num(r["top5_precision"]),
                          f"{r['selected_run_id']} @ {r['selected_step']} ({r['selected_true']:.1f})"]
                         for e, r in audit.items()],
                        f"Selection audit on {info.get('n_candidates')} candidates, {info.get('n_patients')} "
                        f"simulated patients each; winner: {info.get('winner')}"))
    return blocks


# ------------------------------------------------------------------ assembly
def dynamics_table(dyn: dict) -> Table:
    """Validation metrics of the projected dynamics ensembles (one row per seed)."""
    cols = [("ensemble/dz_r2", "dz R^2"), ("linear_baseline/dz_r2", "ridge dz R^2"), ("ensemble/dz_nll", "dz NLL"),
            ("noop_other_F/dz_r2", "dz R^2, vaso no-op rows"), ("noop_other_V/dz_r2", "dz R^2, fluid no-op rows"),
            ("ensemble/term_auroc", "end AUROC"), ("ensemble/surv_auroc", "survival AUROC"),
            ("interaction_index_rel", "I (relative)"), ("best_epoch", "best epoch")]
    rows = [[name] + [_num(rep.get(k), "{:.3f}" if k != "best_epoch" else "{:.0f}") for k, _ in cols]
            for name, rep in sorted(dyn.items())]
    return Table(["ensemble"] + [c for _, c in cols], rows, "Projected dynamics and reward model, validation")


MODEL_CHECK_TEXT = ("The dynamics model against the simulator (adrl/modelcheck.py): new patients treated by the "
                    "clinician up to one decision bin, then each copied per arm (a fluid bin at vasopressor no-op, a "
                    "vasopressor bin at fluid no-op) for one bin, the clinician after it. Model: its P(end) and "
                    "P(survive) at (z, arm) and the change of MAP (mmHg) and lactate (mmol/L) from z to its mean next "
                    "state, read through a linear readout of z fitted on the train rows. Simulator: the same patients' "
                    "share ending in the bin, survival, and the change of the noise-free MAP and lactate over the bin "
                    "(patients still in the ICU). Effects are against the no-op arm, paired per patient. A sign "
                    "disagreement is marked *; 'clear' when the simulator's value is beyond 2 Monte-Carlo SE.")


def model_check_blocks(checks: dict) -> list:
    """reports/metrics/model_check.json: one table per dynamics ensemble, and its sign disagreements."""
    if not checks:
        return []
    if "skipped" in checks:
        return [("note", f"No model check against the simulator: {checks['skipped']}.")]
    blocks: list = [MODEL_CHECK_TEXT]
    for name, c in sorted(checks.items()):
        rows = []
        for r in c["arms"]:
            bad = set(r["sign_disagreements"])
            mark = lambda key, v: _num(v) + (" *" if key in bad else "")  # noqa: E731
            e = r.get("effect_vs_noop") or {"model": {}, "sim": {}}
            rows.append([r["arm"], _num(r["model"]["p_end"], "{:.3f}"), _num(r["sim"]["p_end"], "{:.3f}"),
                         _num(r["model"]["p_survive"], "{:.3f}"), _num(r["sim"]["survival"], "{:.3f}"),
                         mark("d_map", r["model"]["d_map"]), _num(r["sim"]["d_map"]),
                         mark("d_lactate", r["model"]["d_lactate"]), _num(r["sim"]["d_lactate"]),
                         mark("effect_survival", e["model"].get("p_survive")), _num(e["sim"].get("survival")),
                         mark("effect_map", e["model"].get("map")), _num(e["sim"].get("map")),
                         mark("effect_lactate", e["model"].get("lactate")), _num(e["sim"].get("lactate"))])
        r2 = c.get("readout_val_r2") or {}
        blocks.append(Table(["arm", "P(end) model", "sim", "P(survive) model", "sim survival", "dMAP model", "sim",
                             "dlactate model", "sim", "survival vs no-op model", "sim", "MAP vs no-op model", "sim",
                             "lactate vs no-op model", "sim"], rows,
                            f"Dynamics model {name} against the simulator: {c['n_patients_checked']} patients at "
                            f"decision bin {c['decision_bin']}; readout validation R^2 MAP {_num(r2.get('map'))}, "
                            f"lactate {_num(r2.get('lactate'))}; {c['sign_disagreements']} sign disagreement(s), "
                            f"{c['sign_disagreements_clear']} clear"))
        if c["flags"]:
            blocks.append(("warn", f"Model {name}: sign disagreements with the simulator: " + "; ".join(c["flags"])))
    return blocks


def action_tables(states: pd.DataFrame, selected: dict, runs_dir: Path) -> dict[str, np.ndarray]:
    from ..rl.policy import Policy  # torch only here

    test = states[(states["split"] == "test") & ~states["last"]]
    z = test[[c for c in test.columns if c.startswith("z_")]].to_numpy(np.float32)
    out = {}
    f, v = from_flat(test["decision"].to_numpy(np.int64))
    out["clinician"] = np.bincount(f * N_VASO + v, minlength=N_FLUID * N_VASO).reshape(N_FLUID, N_VASO)
    for k in ("bcq", "factored_bcq", "adbcq"):
        if k in selected and len(z):
            pol = Policy.load(runs_dir / selected[k]["run_id"], step=selected[k]["step"])
            a = pol.greedy(z)
            out[k] = np.bincount(a, minlength=N_FLUID * N_VASO).reshape(N_FLUID, N_VASO)
    return out


def build_sections(cfg, root: Path = Path(".")) -> tuple[list[Section], dict]:
    dpi = cfg.report.dpi
    R = root / paths.REPORTS
    flow = _read_json(R / "cohort_flow.json")
    table = _read_json(R / "metrics" / "test_table.json")
    evaluate = _read_json(R / "metrics" / "evaluate.json")
    encode = _read_json(R / "metrics" / "encode.json", required=False) or {}
    train = _read_json(R / "metrics" / "train.json", required=False) or {}
    selected = _read_json(R / "selected.json")
    states = pd.read_parquet(root / paths.STATES)
    runs_dir = root / paths.MODELS / "train" / "runs"
    summary: dict = {}

    secs: list[Section] = []
    # --- headline
    rows = table["rows"]
    head = Section("Test results", "results")
    head.blocks.append(test_table(rows))
    head.blocks.append(Figure(test_table_figure(rows, dpi), "Test WIS with 95% CIs beside the simulator's true "
                              "value (+- 1.96 SE)", "test_table"))
    truth = evaluate.get("truth") or {}
    if truth.get("no_treatment"):
        head.blocks.append(f"For scale: never treating has a true value of {truth['no_treatment']['value']:.1f} "
                           f"(SE {truth['no_treatment']['se']:.1f}) on the same simulated patients; the clinician "
                           f"{truth['clinician']['value']:.1f}.")
    rec = [v.get("dose_recovery") for k, v in truth.items() if isinstance(v, dict) and v.get("dose_recovery")]
    if rec:
        head.blocks.append(f"Chain check: in the roll-outs, the cohort code recovered the chosen action from the "
                           f"simulator's charted doses in {100 * min(rec):.1f}% of decisions or more.")
    small = [r["policy"] for r in rows if r.get("ess") is not None and r["policy"] != "clinician"
             and r["ess"] < 0.05 * max(r.get("n_episodes") or 1, 1)]
    if small:
        head.blocks.append(("warn", f"Small effective sample size for {', '.join(small)}: their WIS rests on a "
                                    "handful of test episodes and is not evidence of a better policy."))
    for w in evaluate.get("warnings", [])[:8]:
        head.blocks.append(("note", w))
    secs.append(head)
    summary["test_table"] = rows

    # --- cohort
    coh = Section("Cohort", "cohort")
    coh.blocks.append(f"Recipe: {flow.get('recipe')}. Outcome: {flow['mortality'].get('outcome')}. "
                      f"Trajectory length: mean {flow['trajectory_length']['mean']:.1f} steps "
                      f"(min {flow['trajectory_length']['min']}, max {flow['trajectory_length']['max']}).")
    coh.blocks.append(Figure(flow_figure(flow, dpi), "Cohort flow: ICU stays left after every inclusion and "
                             "exclusion step", "cohort_flow"))
    coh.blocks.append(Table(["step", "stays", "dropped"],
                            [[s["step"], s["stays"], s.get("dropped")] for s in flow["steps"]], "Cohort flow"))
    stays_p, raw_p = root / paths.STAYS, root / paths.TRAJECTORIES_RAW
    if stays_p.exists() and raw_p.exists():
        coh.blocks.append(clinical_table(pd.read_parquet(stays_p), pd.read_parquet(raw_p, columns=TABLE1_COLUMNS),
                                         flow["mortality"].get("outcome"), cfg.cohort.window.bin_h))
    secs.append(coh)

    # --- actions
    act = Section("Actions", "actions")
    tabs = action_tables(states, selected, runs_dir)
    edges = _read_json(root / paths.COHORT_ARTIFACTS / "action_edges.json", required=False)
    act.blocks.append(Figure(heatmap_figure(tabs, dpi, edges, cfg.cohort.window.bin_h),
                             "5 x 5 action distribution on the test split: the clinicians' logged decisions and each "
                             "selected policy's greedy actions; bins are dose ranges (IV fluid volume per step, "
                             "the step's maximum vasopressor rate in norepinephrine equivalents)", "action_heatmaps"))
    secs.append(act)

    # --- learning
    learn = Section("State encoder and training", "learning")
    for name, cap in (("ais_loss", "AIS encoder: training and validation NLL per epoch"),
                      ("ais_vs_naive", "AIS next-observation error against carrying the last observation "
                                       "forward (validation)")):
        f = R / "figures" / f"{name}.png"
        if f.exists():
            learn.blocks.append(Figure(f.read_bytes(), cap, name))
    if encode:
        learn.blocks.append(f"AIS: best epoch {encode.get('best_epoch')}, validation NLL "
                            f"{_num(encode.get('val_nll'))} against {_num(encode.get('naive_val_nll'))} for the "
                            f"carry-forward baseline.")
        if encode.get("converged") is False:
            learn.blocks.append(("warn", f"The AIS encoder stopped at its epoch cap (ais.max_epochs = "
                                         f"{encode.get('max_epochs')}) with its best epoch {encode.get('best_epoch')} "
                                         f"within ais.patience = {encode.get('patience')} of it: it was still "
                                         "improving. Raise ais.max_epochs."))
    tf = training_figure(runs_dir, selected, dpi)
    if tf is not None:
        learn.blocks.append(Figure(tf, "Training losses of the selected runs", "training_curves"))
    if train:
        learn.blocks.append(Table(["metric", "value"], [[k, v] for k, v in train.items()
                                                        if isinstance(v, (int, float))][:20], "Training summary"))
    vc = train.get("value_check") or {}
    if vc:
        learn.blocks.extend(value_check_blocks(vc))
    dyn = train.get("dynamics") or {}
    learn_checks = model_check_blocks(_read_json(R / "metrics" / "model_check.json", required=False) or {})
    if dyn:
        learn.blocks.append(dynamics_table(dyn))
        learn.blocks.append("AD-BCQ's augmentation is only as good as this model: delta z R^2 is the share of "
                            "the variance of the one-step change of the AIS state it explains on validation "
                            "(beside a ridge regression on the same inputs); the rows whose other sub-action was "
                            "no-op are real draws from the projected MDP; I is the learned interaction index "
                            "(method.md 4.4), near 0 when effects look separable.")
    learn.blocks.extend(learn_checks)
    secs.append(learn)

    # --- selection
    sel = Section("Model selection", "selection")
    sel.blocks.append(f"Selection rule (evaluate.select_by): {evaluate.get('select_by', 'wis_ess_pareto')}.")
    for name, cap in (("pareto", "Validation WIS against ESS for every checkpoint; Pareto frontier and the "
                                 "selected checkpoint per algorithm"),
                      ("behaviour_calibration", "Behaviour policy (kNN on AIS states): calibration")):
        f = R / "figures" / f"{name}.png"
        if f.exists():
            sel.blocks.append(Figure(f.read_bytes(), cap, name))
    sel.blocks.append(Table(["policy", "run", "step", "tau", "val WIS", "val ESS", "val FQE", "FQE converged",
                             "flagged"],
                            [[k, v.get("run_id"), v.get("step"), v.get("tau"), _num(v.get("val_wis")),
                              _num(v.get("val_ess"), "{:.1f}"), _num(v.get("val_fqe")), v.get("fqe_converged"),
                              v.get("flagged")]
                             for k, v in evaluate.get("selected", {}).items()],
                            f"Selected checkpoints (ESS cutoff {_num(evaluate.get('ess_cutoff'), '{:.1f}')})"))
    sel.blocks.extend(audit_blocks(evaluate.get("audit"), evaluate.get("audit_info") or {},
                                   R / "plots" / "audit.csv", dpi))
    secs.append(sel)

    # --- caveats and provenance
    cav = Section("What these numbers mean", "caveats")
    for c in CAVEATS:
        cav.blocks.append(c)
    secs.append(cav)
    prov = Section("Parameters and data version", "provenance")
    prov.blocks.append(Table(["item", "value"], [
        ["made", time.strftime("%Y-%m-%d %H:%M:%S")],
        ["source", cfg.source.kind],
        ["trajectories.parquet sha256", file_digest(root / paths.TRAJECTORIES)],
        ["states.parquet sha256", file_digest(root / paths.STATES)],
        ["params hash", _params_hash(cfg)],
    ]))
    prov.blocks.append(Table(["parameter", "value"], _flat_params(cfg), "Parameters (cohort keys resolved)"))
    secs.append(prov)
    return secs, summary


VC_LO, VC_HI = 0.8, 1.25


def value_check_blocks(vc: dict) -> list:
    """The convergence check of every run (train.json ``value_check``): a table, a warning naming the runs whose
    ratio lies outside [0.8, 1.25], and what the check means."""
    bad = [rid for rid, v in vc.items() if not (v.get("ratio") is not None and VC_LO <= v["ratio"] <= VC_HI)]
    rows = [[rid, _num(v["q_logged"]), _num(v["mc_return"]), _num(v["ratio"], "{:.3f}"), _num(v["q_spread"]),
             _num(v["td_error"]), "not converged" if rid in bad else "ok"] for rid, v in vc.items()]
    out: list = [Table(["run", "Q (logged actions)", "MC return", "ratio", "Q spread (allowed)", "TD error",
                        "status"], rows, "Convergence check of each run's last checkpoint (validation split)")]
    if bad:
        out.append(("warn", f"{len(bad)} of {len(vc)} run(s) not converged ({', '.join(bad[:6])}"
                            f"{', ...' if len(bad) > 6 else ''}): their ratio of learned Q to the Monte-Carlo return "
                            f"lies outside [{VC_LO}, {VC_HI}]; not converged: such a policy reflects the imitation "
                            "filter, not learned values, and comparisons involving it do not count."))
    out.append("The check compares the learned value of the clinicians' logged actions with their discounted "
               "Monte-Carlo return on validation rows (ratio near 1: the learner has learned values). It cannot "
               "check the greedy action's value, which may exceed the logged actions' (that is the point of "
               "learning); Q spread is the mean gap between the best and worst allowed action.")
    return out


def _params_hash(cfg) -> str:
    return hashlib.sha256(json.dumps(cfg.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:12]


def param_value(v) -> str:
    """A parameter as written in params.yaml: every significant digit (0.0005, 1e-05), no thousands separator
    (seed 12345), YAML spellings of booleans and null."""
    if isinstance(v, bool) or v is None:
        return json.dumps(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


def _flat_params(cfg) -> list[list]:
    d = cfg.model_dump(mode="json")
    d["cohort"] = cfg.cohort.resolved()

    def flat(x, pre=""):
        for k, v in x.items():
            if isinstance(v, dict):
                yield from flat(v, pre + k + ".")
            else:
                yield [pre + k, param_value(v)]
    return list(flat(d))
