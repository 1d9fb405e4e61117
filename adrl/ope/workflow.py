"""The evaluate stage's steps as library functions on arrays and small tables (method.md section 5).

- :func:`split_arrays`: one split of the states contract -> decision rows (ids, z, A_t, r_{t+1}).
- :func:`fit_behaviours`: kNN fit on each evaluated split and on train; probabilities and calibration.
- :func:`score_candidates`: the seam. Validation statistics of candidate policies given as arrays
  (meta table + (C, N) greedy actions); the stage calls it run by run, tests call it directly.
- :func:`select_models`: frontier, cutoff rule and cutoff sensitivity per algorithm / variant.
- :func:`evaluate_policies`: WIS / ESS / PDWIS with paired bootstrap CIs, clinician, differences.
- :func:`build_test_table`: the headline table, with an optional ``true_values`` mapping.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from ..errors import InputError
from ..schemas import STATES_DECISION_COLUMNS, infer_latent_dim, require_columns, z_columns
from . import estimators as est
from .behaviour import KnnBehaviour, behaviour_metrics
from .selection import cutoff_sensitivity, select

log = logging.getLogger("adrl.ope")

META_COLUMNS = ("run_id", "algorithm", "mixer", "augment", "tau", "seed", "step")
HEADLINE = ("clinician", "bcq", "factored_bcq", "adbcq")


@dataclass(frozen=True)
class SplitArrays:
    name: str
    episode_ids: np.ndarray  # (N,) icustay_id of each decision
    z: np.ndarray            # (N, d) AIS state at each decision
    actions: np.ndarray      # (N,) A_t
    rewards: np.ndarray      # (N,) r_{t+1}
    counts: dict             # rows, stays, decisions, stays without a decision


def split_arrays(states: pd.DataFrame, split: str, where: str = "states.parquet") -> SplitArrays:
    """Decision rows (``last`` = False) of one split, sorted by stay and step, checked against the contract."""
    d = infer_latent_dim(states.columns)
    need = ["icustay_id", "step", "split", *STATES_DECISION_COLUMNS, *z_columns(d)]
    require_columns(states.columns, need, where)
    df = states.loc[states["split"] == split, need]
    if df.empty:
        raise InputError(f"{where}: no rows with split == {split!r}")
    df = df.sort_values(["icustay_id", "step"], kind="stable")
    if df.duplicated(["icustay_id", "step"]).any():
        raise InputError(f"{where}: split {split}: duplicated (icustay_id, step) rows")
    last = df["last"].to_numpy(bool)
    dec = df["decision"].to_numpy()
    bad = last != (dec == -1)
    if bad.any():
        raise InputError(f"{where}: split {split}: {int(bad.sum())} row(s) where decision == -1 does not match "
                         "last == True (the contract: decision is -1 exactly on a stay's last row)")
    n_last = df.groupby("icustay_id", sort=False)["last"].sum()
    if (n_last != 1).any():
        raise InputError(f"{where}: split {split}: {int((n_last != 1).sum())} stay(s) without exactly one last row")
    keep = ~last
    z = df[z_columns(d)].to_numpy(np.float64)[keep]
    ids = df["icustay_id"].to_numpy()[keep]
    n_stays = int(df["icustay_id"].nunique())
    n_with = int(pd.unique(ids).size)
    counts = {"rows": int(len(df)), "stays": n_stays, "decisions": int(keep.sum()),
              "stays_without_decision": n_stays - n_with}
    if counts["stays_without_decision"]:
        log.warning("%s: split %s: %d stay(s) have no decision (length 1) and take no part in OPE",
                    where, split, counts["stays_without_decision"])
    return SplitArrays(split, ids, z, dec[keep].astype(np.int64), df["reward"].to_numpy(np.float64)[keep], counts)


@dataclass
class Behaviours:
    """Per evaluated split: probabilities of the self-fit and the train-fit kNN, joint and factored."""

    self_fit: dict[str, dict[str, np.ndarray]]   # split -> kind -> (N, 25)
    train_fit: dict[str, dict[str, np.ndarray]]
    metrics: dict                                 # split -> "self_fit"/"train_fit" -> kind -> metrics
    k: int


def fit_behaviours(train: SplitArrays, evaluated: Mapping[str, SplitArrays], k: int, calibration_rows: int,
                   bins: int, seed: int) -> Behaviours:
    rng = np.random.default_rng(seed)
    knn_train = KnnBehaviour(k).fit(train.z, train.actions, where="train split decisions")
    self_fit, train_fit, metrics = {}, {}, {}

    def sample(n):
        return np.sort(rng.choice(n, calibration_rows, replace=False)) if n > calibration_rows else np.arange(n)

    idx = sample(len(train.actions))
    pt = knn_train.predict_proba_both(train.z[idx])
    metrics["train"] = {"train_fit": {kd: behaviour_metrics(p, train.actions[idx], bins) for kd, p in pt.items()}}
    for name, sp in evaluated.items():
        knn = KnnBehaviour(k).fit(sp.z, sp.actions, where=f"{name} split decisions")
        self_fit[name] = knn.predict_proba_both(sp.z)
        train_fit[name] = knn_train.predict_proba_both(sp.z)
        idx = sample(len(sp.actions))
        metrics[name] = {fit: {kd: behaviour_metrics(p[idx], sp.actions[idx], bins) for kd, p in probs.items()}
                         for fit, probs in (("self_fit", self_fit[name]), ("train_fit", train_fit[name]))}
        for fit in ("self_fit", "train_fit"):
            m = metrics[name][fit]["joint"]
            log.info("behaviour %s on %s (joint): top-1 %.3f, top-5 %.3f, ECE %.3f", fit, name, m["top1"],
                     m["top5"], m["ece_top1"])
    return Behaviours(self_fit, train_fit, metrics, knn_train.k_)


def logged_data(sp: SplitArrays, beh: Behaviours, kind: str, zero_behaviour: str) -> est.LoggedData:
    return est.make_logged(sp.episode_ids, sp.actions, sp.rewards, beh.self_fit[sp.name][kind],
                           beh.train_fit[sp.name][kind], zero_behaviour=zero_behaviour, floor=1.0 / beh.k,
                           where=f"{sp.name} split")


def variant_of(algorithm: str, mixer, augment) -> str:
    """Selection group: the algorithm, and for AD-BCQ each mixer / augmentation variant separately."""
    if algorithm == "adbcq":
        return f"adbcq[{mixer},{'aug' if _truthy(augment) else 'noaug'}]"
    return str(algorithm)


def _truthy(v) -> bool:
    return str(v).lower() in {"true", "1", "yes", "aug"}


def score_candidates(data: est.LoggedData, meta: pd.DataFrame, greedy: np.ndarray, epsilon: float, clip: float,
                     chunk: int = 256, progress: bool | None = None) -> pd.DataFrame:
    """Validation WIS / ESS / diagnostics of C candidates: ``meta`` has C rows (columns META_COLUMNS),
    ``greedy`` is (C, N) greedy actions on the split's decisions."""
    require_columns(meta.columns, META_COLUMNS, "candidate table")
    g = est.check_candidates(data, greedy)
    if len(meta) != len(g):
        raise InputError(f"candidate table has {len(meta)} rows but {len(g)} greedy action rows")
    st = est.evaluate_greedy(data, g, epsilon, clip, chunk=chunk, progress=progress)
    out = meta.loc[:, list(META_COLUMNS)].reset_index(drop=True).copy()
    out["variant"] = [variant_of(a, m, au) for a, m, au in zip(out["algorithm"], out["mixer"], out["augment"])]
    for key in ("wis", "ess", "is", "max_weight_share", "n_positive", "agreement"):
        out[key] = st[key]
    return out


def select_models(scores: pd.DataFrame, n_val: int, c: float, grid: int = 51) -> tuple[pd.DataFrame, dict]:
    """Select one candidate per variant and one per algorithm (AD-BCQ: the best variant by the same rule).

    Returns the scores with ``frontier``, ``selected_variant`` and ``selected`` flags, and a dict
    {"variants": {variant: info}, "algorithms": {algorithm: info}} with index, flag and cutoff sensitivity.
    """
    from .selection import pareto_front

    cutoff = c * n_val
    scores = scores.copy()
    if "variant" not in scores:
        scores["variant"] = [variant_of(a, m, au) for a, m, au in
                             zip(scores["algorithm"], scores["mixer"], scores["augment"])]
    scores["frontier"] = False
    scores["selected_variant"] = False
    scores["selected"] = False
    variants, algos = {}, {}
    for var, grp in scores.groupby("variant", sort=True):
        wis, ess = grp["wis"].to_numpy(), grp["ess"].to_numpy()
        scores.loc[grp.index, "frontier"] = pareto_front(wis, ess)
        s = select(wis, ess, cutoff)
        i = grp.index[s.index]
        scores.loc[i, "selected_variant"] = True
        variants[var] = {"index": int(i), "algorithm": str(grp["algorithm"].iloc[0]), "flagged": s.flagged,
                         "n_candidates": int(len(grp)), "n_frontier": s.n_frontier,
                         "n_undefined_wis": s.n_undefined,
                         "sensitivity": [{**r, "index": int(grp.index[r["index"]])}
                                         for r in cutoff_sensitivity(wis, ess, n_val, c, grid)]}
        if s.flagged:
            log.warning("selection %s: no frontier point reaches ESS >= %.1f; took the highest-ESS point (flagged)",
                        var, cutoff)
    for alg in sorted({v["algorithm"] for v in variants.values()}):
        picks = [v for v in variants.values() if v["algorithm"] == alg]
        idx = np.array([p["index"] for p in picks])
        s = select(scores.loc[idx, "wis"].to_numpy(), scores.loc[idx, "ess"].to_numpy(), cutoff)
        best = idx[s.index]
        scores.loc[best, "selected"] = True
        algos[alg] = {"index": int(best), "variant": scores.loc[best, "variant"], "flagged": s.flagged,
                      "n_variants": len(picks)}
    return scores, {"cutoff": cutoff, "c": c, "n_val": n_val, "variants": variants, "algorithms": algos}


def evaluate_policies(data: est.LoggedData, policies: Mapping[str, np.ndarray], *, epsilon: float, clip: float,
                      n_boot: int, seed: int, min_ess: float, max_share: float, label: str = "") -> dict:
    """Point estimates, paired bootstrap CIs and warnings for greedy policies {name: (N,) actions},
    plus the clinician and the CI of every WIS difference (policy - clinician, and between policies)."""
    names = list(policies)
    counts = est.resample_counts(data.n_episodes, n_boot, seed)
    out = {"clinician": est.clinician_value(data, counts)}
    out["clinician"]["warnings"] = []
    if not names:
        return {"policies": out, "differences": [], "n_boot": n_boot, "corrections": data.corrections}
    G = np.stack([est.check_candidates(data, policies[n], where=f"policy {n}")[0] for n in names])
    log_rho = est.greedy_log_ratios(data, G, epsilon)
    w = est.episode_weights(data, log_rho, clip)
    st = est.weight_stats(w, data.returns)
    W = est.step_weights(data, log_rho, clip)
    pd_point = est.pdwis(data, log_rho, clip)
    bs = est.bootstrap(data, w, counts, W)
    clin_reps = counts @ data.returns / counts.sum(axis=1)
    for j, n in enumerate(names):
        row = {k: (float(st[k][j]) if k != "defined" else bool(st[k][j])) for k in st}
        row["wis"] = row["wis"] if row["defined"] else None
        row["max_weight_share"] = row["max_weight_share"] if row["defined"] else None
        row["n_positive"] = int(st["n_positive"][j])
        row["pdwis"] = float(pd_point[j])
        row["agreement"] = float(np.mean(G[j] == data.actions))
        row["n_episodes"] = data.n_episodes
        for key, reps in (("wis", bs.wis[:, j]), ("ess", bs.ess[:, j]), ("pdwis", bs.pdwis[:, j])):
            s = est.summarize_replicates(reps)
            row[f"{key}_ci"], row[f"{key}_sd"] = s["ci"], s["sd"]
            if s["n_defined"] < n_boot:
                row[f"{key}_boot_undefined"] = n_boot - s["n_defined"]
        row["warnings"] = est.diagnose(row | {"wis": row["wis"] if row["defined"] else np.nan},
                                       data.n_episodes, min_ess, max_share)
        for msg in row["warnings"]:
            log.warning("%spolicy %s: %s", f"{label}: " if label else "", n, msg)
        out[n] = row
    diffs = []
    reps = {"clinician": clin_reps, **{n: bs.wis[:, j] for j, n in enumerate(names)}}
    pairs = [(n, "clinician") for n in names] + [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    for a, b in pairs:
        d = reps[a] - reps[b]
        s = est.summarize_replicates(d)
        pa = out[a]["wis"]
        pb = out[b]["wis"]
        diffs.append({"a": a, "b": b, "wis_diff": (pa - pb) if pa is not None and pb is not None else None,
                      "ci": s["ci"], "sd": s["sd"], "n_defined": s["n_defined"]})
    return {"policies": out, "differences": diffs, "n_boot": n_boot, "corrections": data.corrections}


def build_test_table(test_results: dict, selected: Mapping[str, Mapping] | None = None,
                     true_values: Mapping[str, float | Mapping] | None = None,
                     rows: tuple[str, ...] = HEADLINE) -> dict:
    """The headline test table: clinician, bcq, factored_bcq, adbcq (selected variant).

    ``true_values``: optional {row name: value or {"value": v, "se": s}} from simulator roll-outs; a row
    without one keeps ``true_value: null``. ``selected``: optional {row: {run_id, step, variant, ...}}.
    """
    pol = test_results["policies"]
    table = []
    for name in rows:
        if name not in pol:
            continue
        r = pol[name]
        row = {"policy": name,
               "wis": r["wis"], "wis_ci": r.get("wis_ci"), "wis_sd": r.get("wis_sd"),
               "ess": r["ess"], "ess_ci": r.get("ess_ci"), "ess_sd": r.get("ess_sd"),
               "pdwis": r["pdwis"], "agreement": r["agreement"], "n_episodes": r["n_episodes"],
               "true_value": None, "true_value_se": None, "wis_minus_true": None,
               "warnings": r.get("warnings", [])}
        if selected and name in selected:
            row.update({k: selected[name][k] for k in ("run_id", "step", "variant", "flagged") if k in selected[name]})
        table.append(row)
    out = {"rows": table, "differences": test_results.get("differences", []), "n_boot": test_results.get("n_boot")}
    return with_true_values(out, true_values) if true_values else out


def with_true_values(table: dict, true_values: Mapping[str, float | Mapping]) -> dict:
    """A copy of a test table (e.g. read back from test_table.json) with ``true_value`` filled from
    {row name: value or {"value": v, "se": s}} (simulator roll-outs); rows not named keep null."""
    unknown = set(true_values) - {r["policy"] for r in table["rows"]}
    if unknown:
        raise InputError(f"true values for {sorted(unknown)}: no such row in the test table "
                         f"(rows: {[r['policy'] for r in table['rows']]})")
    rows = []
    for r in table["rows"]:
        r = dict(r)
        tv = true_values.get(r["policy"])
        if tv is not None:
            value = tv.get("value") if isinstance(tv, Mapping) else tv
            se = tv.get("se") if isinstance(tv, Mapping) else None
            r["true_value"] = float(value)
            r["true_value_se"] = None if se is None else float(se)
            r["wis_minus_true"] = None if r["wis"] is None else float(r["wis"] - value)
        rows.append(r)
    return {**table, "rows": rows}


def table_frame(table: dict) -> pd.DataFrame:
    """The test table as a flat DataFrame (for MLflow / markdown)."""
    recs = []
    for r in table["rows"]:
        f = {k: v for k, v in r.items() if not isinstance(v, (list, dict))}
        for k in ("wis_ci", "ess_ci"):
            if r.get(k):
                f[f"{k}_lo"], f[f"{k}_hi"] = r[k]
        f["warnings"] = "; ".join(r.get("warnings", []))
        recs.append(f)
    return pd.DataFrame(recs)


def sensitivity_segments(sensitivity: list[dict], scores: pd.DataFrame) -> list[dict]:
    """Compress a cutoff sweep into runs of cutoffs that select the same candidate."""
    segs: list[dict] = []
    for r in sensitivity:
        if segs and segs[-1]["index"] == r["index"] and segs[-1]["flagged"] == r["flagged"]:
            segs[-1]["cutoff_to"] = r["cutoff"]
            continue
        row = scores.loc[r["index"]]
        segs.append({"cutoff_from": r["cutoff"], "cutoff_to": r["cutoff"], "index": r["index"],
                     "run_id": str(row["run_id"]), "step": int(row["step"]), "wis": r["wis"], "ess": r["ess"],
                     "flagged": r["flagged"]})
    for s in segs:
        s.pop("index")
    return segs


def _field(rec, name):
    return rec[name] if isinstance(rec, Mapping) else getattr(rec, name)


def score_runs(data: est.LoggedData, runs, greedy_fn, z: np.ndarray, *, epsilon: float, clip: float,
               chunk: int = 256, progress: bool | None = None) -> pd.DataFrame:
    """Score every checkpoint of every run. ``runs``: records with run_id, algorithm, mixer, augment, tau,
    seed, run_dir; ``greedy_fn(run_dir, z) -> (steps (C,), actions (C, N))`` (e.g. adrl.rl.policy.greedy_matrix).
    Runs are scored one at a time, so memory holds one run's actions, not the sweep's."""
    from ..progress import Progress

    parts = []
    bar = Progress(list(runs), desc="evaluate: OPE", unit="runs", logger=log, enabled=progress)
    for r in bar:
        steps, actions = greedy_fn(_field(r, "run_dir"), z)
        steps = np.asarray(steps)
        meta = pd.DataFrame({"run_id": str(_field(r, "run_id")), "algorithm": _field(r, "algorithm"),
                             "mixer": _field(r, "mixer"), "augment": _field(r, "augment"),
                             "tau": _field(r, "tau"), "seed": _field(r, "seed"), "step": steps.astype(np.int64)})
        try:
            parts.append(score_candidates(data, meta, actions, epsilon, clip, chunk=chunk, progress=False))
            bar.set_postfix(candidates_scored=f"{sum(len(x) for x in parts):,}")
        except InputError as e:
            raise InputError(f"run {_field(r, 'run_id')} ({_field(r, 'run_dir')}): {e}") from None
    if not parts:
        raise InputError("no candidate policies to evaluate (no training runs)")
    return pd.concat(parts, ignore_index=True)


def chosen_actions(chosen: Mapping[str, Mapping], runs, greedy_fn, z: np.ndarray) -> dict[str, np.ndarray]:
    """Greedy actions on ``z`` of chosen checkpoints {name: {run_id, step}} (one greedy_fn call per run)."""
    by_id = {str(_field(r, "run_id")): r for r in runs}
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    out = {}
    for name, c in chosen.items():
        rid = str(c["run_id"])
        if rid not in cache:
            cache[rid] = greedy_fn(_field(by_id[rid], "run_dir"), z)
        steps, acts = cache[rid]
        hit = np.flatnonzero(np.asarray(steps) == int(c["step"]))
        if len(hit) == 0:
            raise InputError(f"run {rid}: no checkpoint at step {c['step']}")
        out[name] = np.asarray(acts[hit[0]])
    return out


def chosen_rows(scores: pd.DataFrame, sel: dict) -> dict[str, dict]:
    """{algorithm or variant name: candidate description} of the selected checkpoints."""
    out = {}
    for kind, items in (("algorithms", sel["algorithms"]), ("variants", sel["variants"])):
        for name, info in items.items():
            if kind == "variants" and name in out:
                continue  # bcq / factored_bcq: the variant is the algorithm
            row = scores.loc[info["index"]]
            out[name] = {"run_id": str(row["run_id"]), "step": int(row["step"]), "algorithm": str(row["algorithm"]),
                         "variant": str(row["variant"]), "mixer": None if pd.isna(row["mixer"]) else str(row["mixer"]),
                         "augment": None if pd.isna(row["augment"]) else bool(row["augment"]),
                         "tau": float(row["tau"]), "seed": int(row["seed"]), "flagged": bool(info["flagged"]),
                         "val_wis": None if not np.isfinite(row["wis"]) else float(row["wis"]),
                         "val_ess": float(row["ess"])}
    return out


POINT_KEYS = ("wis", "wis_ci", "ess", "ess_ci", "pdwis", "pdwis_ci", "is", "max_weight_share", "n_positive",
              "agreement", "warnings")


def run_evaluation(p, states: pd.DataFrame, runs, greedy_fn, true_values: Mapping | None = None,
                   where: str = "states table") -> dict:
    """Everything the evaluate stage computes, from the states table and the runs (no files written).

    ``p``: the EvaluateParams; ``runs`` / ``greedy_fn``: see :func:`score_runs`.
    """
    sp = {s: split_arrays(states, s, where=where) for s in ("train", "val", "test")}
    beh = fit_behaviours(sp["train"], {"val": sp["val"], "test": sp["test"]}, p.knn_k, p.calibration_rows,
                         p.calibration_bins, p.seed)
    data = {s: logged_data(sp[s], beh, p.behaviour, p.zero_behaviour) for s in ("val", "test")}
    scores = score_runs(data["val"], runs, greedy_fn, sp["val"].z, epsilon=p.epsilon, clip=p.weight_clip,
                        chunk=p.chunk_candidates)
    scores, sel = select_models(scores, data["val"].n_episodes, p.ess_cutoff_c, p.cutoff_grid)
    chosen = chosen_rows(scores, sel)
    common = dict(epsilon=p.epsilon, clip=p.weight_clip, n_boot=p.bootstrap, seed=p.seed,
                  max_share=p.warn_max_weight_share)
    res = {}
    for s in ("val", "test"):
        acts = chosen_actions(chosen, runs, greedy_fn, sp[s].z)
        res[s] = evaluate_policies(data[s], acts, min_ess=p.ess_cutoff_c * data[s].n_episodes, label=s, **common)
        other = "factored" if p.behaviour == "joint" else "joint"   # behaviour-model sensitivity (method 5.1)
        alt = logged_data(sp[s], beh, other, "floor")
        res[f"{s}_{other}"] = evaluate_policies(alt, acts, min_ess=p.ess_cutoff_c * alt.n_episodes,
                                                label=f"{s} ({other} behaviour)", **common)
    table = build_test_table(res["test"], selected=chosen, true_values=true_values)
    return {"splits": {s: a.counts for s, a in sp.items()}, "behaviour": beh.metrics, "scores": scores,
            "selection": sel, "chosen": chosen, "results": res, "table": table, "k": beh.k}


def stage_summary(out: dict, p) -> dict:
    """evaluate.json: the selected policy per algorithm / variant with validation and test numbers."""
    res, sel = out["results"], out["selection"]
    other = "factored" if p.behaviour == "joint" else "joint"

    def pick(r, name):
        return {k: r["policies"][name].get(k) for k in POINT_KEYS if k in r["policies"][name]}

    selected = {}
    for name, c in out["chosen"].items():
        var = sel["variants"][c["variant"]]
        selected[name] = {**c, "validation": pick(res["val"], name), "test": pick(res["test"], name),
                          f"test_{other}_behaviour": pick(res[f"test_{other}"], name),
                          "n_candidates": var["n_candidates"], "n_frontier": var["n_frontier"],
                          "n_undefined_wis": var["n_undefined_wis"],
                          "cutoff_sensitivity": sensitivity_segments(var["sensitivity"], out["scores"])}
    beh = {s: {fit: {kind: {k: m[k] for k in ("n", "top1", "top5", "ece_top1", "ece_classwise", "mean_p_logged",
                                              "zero_p_logged_share")} for kind, m in fits.items()}
               for fit, fits in v.items()} for s, v in out["behaviour"].items()}
    warnings = [f"{n}: selection flagged (no frontier point with ESS >= {sel['cutoff']:.1f})"
                for n, c in out["chosen"].items() if c["flagged"]]
    warnings += [f"{s} {n}: {w}" for s in ("val", "test") for n, r in res[s]["policies"].items()
                 for w in r.get("warnings", [])]
    return {"behaviour_model": p.behaviour, "knn_k": out["k"], "epsilon": p.epsilon, "weight_clip": p.weight_clip,
            "bootstrap": p.bootstrap, "ess_cutoff": sel["cutoff"], "ess_cutoff_c": p.ess_cutoff_c,
            "splits": out["splits"], "clinician": {s: res[s]["policies"]["clinician"] for s in ("val", "test")},
            "selected": selected, "test_differences": res["test"]["differences"],
            "corrections": {s: res[s]["corrections"] for s in ("val", "test")},
            "behaviour": beh, "warnings": warnings}
