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


SELECT_BY = ("wis_ess_pareto", "fqe", "wdr", "combined")


def _select_by_value(values: np.ndarray, converged: np.ndarray) -> tuple[int, bool]:
    """Highest value among the candidates whose FQE converged (flagged: none did; then the highest overall)."""
    ok = np.isfinite(values)
    good = ok & converged
    pool = good if good.any() else ok
    if not pool.any():
        raise InputError("model selection: no candidate has a model-based estimate (FQE)")
    idx = np.flatnonzero(pool)
    return int(idx[np.lexsort((idx, -values[idx]))[0]]), not good.any()


def select_models(scores: pd.DataFrame, n_val: int, c: float, grid: int = 51,
                  select_by: str = "wis_ess_pareto") -> tuple[pd.DataFrame, dict]:
    """Select one candidate per variant and one per algorithm (AD-BCQ: the best variant by the same rule).

    ``select_by``: ``wis_ess_pareto`` (method 5.6: flagged when no frontier point reaches the ESS cutoff) or a
    scores column, ``fqe`` / ``wdr`` / ``combined``: the highest value among the candidates that have one and
    whose FQE converged (flagged when none converged). Returns the scores with ``frontier``,
    ``selected_variant`` and ``selected`` flags, and a dict {"variants": {variant: info}, "algorithms":
    {algorithm: info}} with index, flag and the WIS rule's cutoff sensitivity.
    """
    from .selection import pareto_front

    if select_by not in SELECT_BY:
        raise InputError(f"evaluate.select_by: unknown rule {select_by!r}; expected one of {', '.join(SELECT_BY)}")
    if select_by != "wis_ess_pareto" and select_by not in scores:
        raise InputError(f"evaluate.select_by: {select_by} needs FQE estimates, but no candidate has one "
                         "(evaluate.fqe.candidates is 0?)")

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
        i, flagged = grp.index[s.index], s.flagged
        if select_by != "wis_ess_pareto":
            j, flagged = _select_by_value(grp[select_by].to_numpy(np.float64),
                                          grp["fqe_converged"].fillna(False).to_numpy(bool))
            i = grp.index[j]
        scores.loc[i, "selected_variant"] = True
        variants[var] = {"index": int(i), "algorithm": str(grp["algorithm"].iloc[0]), "flagged": flagged,
                         "n_candidates": int(len(grp)), "n_frontier": s.n_frontier,
                         "n_undefined_wis": s.n_undefined,
                         "sensitivity": [{**r, "index": int(grp.index[r["index"]])}
                                         for r in cutoff_sensitivity(wis, ess, n_val, c, grid)]}
        if flagged:
            log.warning("selection %s: %s (flagged)", var,
                        f"no frontier point reaches ESS >= {cutoff:.1f}; took the highest-ESS point"
                        if select_by == "wis_ess_pareto" else "no candidate's FQE converged; took the highest "
                        f"{select_by}")
    for alg in sorted({v["algorithm"] for v in variants.values()}):
        picks = [v for v in variants.values() if v["algorithm"] == alg]
        idx = np.array([p["index"] for p in picks])
        if select_by == "wis_ess_pareto":
            s = select(scores.loc[idx, "wis"].to_numpy(), scores.loc[idx, "ess"].to_numpy(), cutoff)
            j, flagged = s.index, s.flagged
        else:
            j, flagged = _select_by_value(scores.loc[idx, select_by].to_numpy(np.float64),
                                          scores.loc[idx, "fqe_converged"].fillna(False).to_numpy(bool))
        best = idx[j]
        scores.loc[best, "selected"] = True
        algos[alg] = {"index": int(best), "variant": scores.loc[best, "variant"], "flagged": flagged,
                      "n_variants": len(picks)}
    return scores, {"cutoff": cutoff, "c": c, "n_val": n_val, "select_by": select_by, "variants": variants,
                    "algorithms": algos}


def spread_candidates(scores: pd.DataFrame, n: int, must=(), within=None) -> np.ndarray:
    """Up to ``n`` candidate indices (sorted): every run's final checkpoint, the ``must`` indices, then evenly
    spaced ones from the rest (in run, step order), so that the set covers training from start to end.
    ``within``: restrict to these indices (default: all)."""
    pool = scores.index.to_numpy() if within is None else np.asarray(sorted(within))
    if n <= 0 or len(pool) == 0:
        return np.empty(0, np.int64)
    sub = scores.loc[pool]
    finals = sub.groupby("run_id", sort=True)["step"].idxmax().to_numpy()
    chosen = list(dict.fromkeys([*finals.tolist(), *[int(i) for i in must if i in set(pool.tolist())]]))
    rest = sub.drop(index=chosen).sort_values(["run_id", "step"], kind="stable").index.to_numpy()
    k = max(0, n - len(chosen))
    if k and len(rest):
        pick = rest[np.unique(np.linspace(0, len(rest) - 1, min(k, len(rest))).round().astype(np.int64))]
        chosen += pick.tolist()
    return np.array(sorted(chosen), dtype=np.int64)


def model_values(q: np.ndarray, greedy: np.ndarray, logged_actions: np.ndarray, train_proba: np.ndarray,
                 epsilon: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From (K, N, 25) model Q (e.g. FQE) of K greedy policies (K, N): Q of the logged action, V of the
    softened evaluation policy pi_e = (1 - eps) greedy + eps pi_b_train (WDR's model, the same pi_e as WIS),
    and V of the greedy policy itself (the FQE estimate's), each (K, N)."""
    q = np.asarray(q, dtype=np.float64)
    K, N, _ = q.shape
    if greedy.shape != (K, N):
        raise InputError(f"model values: Q of shape {q.shape} but greedy actions of shape {greedy.shape}")
    q_logged = np.take_along_axis(q, np.broadcast_to(logged_actions[None, :, None], (K, N, 1)), 2)[..., 0]
    v_greedy = np.take_along_axis(q, greedy[..., None], 2)[..., 0]
    v_e = (1 - epsilon) * v_greedy + epsilon * np.einsum("kna,na->kn", q, train_proba)
    return q_logged, v_e, v_greedy


def model_scores(data: est.LoggedData, greedy: np.ndarray, q: np.ndarray, train_proba: np.ndarray,
                 epsilon: float, clip: float) -> dict[str, np.ndarray]:
    """FQE (mean model value of the episode starts) and WDR of K greedy candidates on one split."""
    ql, ve, vg = model_values(q, greedy, data.actions, train_proba, epsilon)
    log_rho = est.greedy_log_ratios(data, greedy, epsilon)
    return {"fqe": est.fqe_start_values(data, vg).mean(axis=1), "wdr": est.wdr(data, log_rho, clip, ql, ve),
            "pdwis": est.pdwis(data, log_rho, clip)}


def combined_score(scores: pd.DataFrame, cols=("wis", "fqe", "wdr")) -> pd.Series:
    """The ``combined`` rule's score: the mean of each estimator's rank among the FQE'd candidates, scaled
    to [0, 1] (a candidate without a WIS ranks lowest on WIS); NaN for candidates without FQE."""
    from .audit import _ranks

    have = scores["fqe"].notna()
    out = pd.Series(np.nan, index=scores.index)
    if have.sum() == 0:
        return out
    sub = scores.loc[have]
    r = np.mean([(_ranks(sub[c].to_numpy(np.float64)) - 1) / max(1, len(sub) - 1) for c in cols], axis=0)
    out.loc[have] = r
    return out


def add_model_scores(scores: pd.DataFrame, cand: np.ndarray, fq: Mapping, data: est.LoggedData,
                     train_proba: np.ndarray, epsilon: float, clip: float) -> pd.DataFrame:
    """Validation FQE / WDR and FQE convergence columns for the FQE'd candidates ``cand``; ``fq``: the FQE
    output ({"greedy": {"val": (K, N)}, "q": {"val": (K, N, 25)}, "convergence": {key: (K,)}})."""
    scores = scores.copy()
    m = model_scores(data, fq["greedy"]["val"], fq["q"]["val"], train_proba, epsilon, clip)
    for col in ("fqe", "wdr", "pdwis", "fqe_converged", "fqe_drift", "fqe_td_rmse", "fqe_td_mean", "fqe_index"):
        scores[col] = np.nan if col != "fqe_converged" else None
    scores.loc[cand, "fqe"] = m["fqe"]
    scores.loc[cand, "wdr"] = m["wdr"]
    scores.loc[cand, "pdwis"] = m["pdwis"]
    conv = fq["convergence"]
    scores.loc[cand, "fqe_converged"] = np.asarray(conv["converged"], bool)
    scores.loc[cand, "fqe_drift"] = np.asarray(conv["drift"], float)
    scores.loc[cand, "fqe_td_rmse"] = np.asarray(conv["td_rmse"], float)
    scores.loc[cand, "fqe_td_mean"] = np.asarray(conv["td_mean"], float)
    scores.loc[cand, "fqe_index"] = np.arange(len(cand))
    scores["combined"] = combined_score(scores)
    return scores


def evaluate_policies(data: est.LoggedData, policies: Mapping[str, np.ndarray], *, epsilon: float, clip: float,
                      n_boot: int, seed: int, min_ess: float, max_share: float, label: str = "",
                      models: Mapping[str, tuple] | None = None) -> dict:
    """Point estimates, paired bootstrap CIs and warnings for greedy policies {name: (N,) actions},
    plus the clinician and the CI of every WIS difference (policy - clinician, and between policies).

    ``models``: optional {name: (q_logged, v_e, v_greedy)} (N,) model values (:func:`model_values` of FQE)
    for FQE and WDR with CIs from the same resamples. Below the ESS cutoff ``min_ess`` a WIS / PDWIS CI (and
    a WIS difference's CI) is not an interval but one or two episodes: it is reported as not estimable."""
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
    have = [n for n in names if models and n in models]
    mw = None
    if have:
        mi = [names.index(n) for n in have]
        ql, ve, vg = (np.stack([np.asarray(models[n][k], np.float64) for n in have]) for k in range(3))
        parts = est.wdr_terms(data, log_rho[mi], clip, ql, ve)
        v0 = est.fqe_start_values(data, vg)
        wdr_point = est.wdr(data, log_rho[mi], clip, ql, ve)
        mw = {"idx": {n: j for j, n in enumerate(have)}, "wdr": wdr_point, "fqe": v0.mean(axis=1)}
        bs_m = est.bootstrap(data, w[mi], counts, None, parts, v0)
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
        if mw is not None and n in mw["idx"]:
            jm = mw["idx"][n]
            for key, point, reps in (("fqe", mw["fqe"][jm], bs_m.fqe[:, jm]), ("wdr", mw["wdr"][jm], bs_m.wdr[:, jm])):
                s = est.summarize_replicates(reps)
                row[key], row[f"{key}_ci"], row[f"{key}_sd"] = float(point), s["ci"], s["sd"]
        if row["ess"] < min_ess:
            note = f"not estimable (ESS {row['ess']:.1f} < cutoff {min_ess:.1f})"
            for key in ("wis", "pdwis"):
                row[f"{key}_ci"], row[f"{key}_ci_note"] = None, note
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
        d_row = {"a": a, "b": b, "wis_diff": (pa - pb) if pa is not None and pb is not None else None,
                 "ci": s["ci"], "sd": s["sd"], "n_defined": s["n_defined"]}
        low = [x for x in (a, b) if out[x]["ess"] < min_ess and x != "clinician"]
        if low:
            d_row["ci"], d_row["ci_note"] = None, f"not estimable (ESS of {', '.join(low)} below {min_ess:.1f})"
        diffs.append(d_row)
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
               **{k: r.get(k) for k in ("wis_ci_note", "fqe", "fqe_ci", "wdr", "wdr_ci") if k in r},
               "true_value": None, "true_value_se": None, "wis_minus_true": None,
               "warnings": r.get("warnings", [])}
        if selected and name in selected:
            row.update({k: selected[name][k] for k in ("run_id", "step", "variant", "flagged", "fqe_converged",
                                                       "fqe_drift", "fqe_td_rmse") if k in selected[name]})
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
        for k in ("wis_ci", "ess_ci", "fqe_ci", "wdr_ci"):
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
    seed, run_dir; ``greedy_fn(run_dir, z, only_steps=None) -> (steps (C,), actions (C, N))`` (e.g.
    adrl.rl.policy.greedy_matrix): every checkpoint of the run, or with ``only_steps`` those of the given steps
    (steps the run does not have are left out).
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
    wanted: dict[str, list[int]] = {}
    for c in chosen.values():
        wanted.setdefault(str(c["run_id"]), []).append(int(c["step"]))
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    out = {}
    for name, c in chosen.items():
        rid = str(c["run_id"])
        if rid not in cache:
            cache[rid] = greedy_fn(_field(by_id[rid], "run_dir"), z, only_steps=wanted[rid])
        steps, acts = cache[rid]
        hit = np.flatnonzero(np.asarray(steps) == int(c["step"]))
        if len(hit) == 0:
            raise InputError(f"run {rid}: no checkpoint at step {c['step']}")
        out[name] = np.asarray(acts[hit[0]])
    return out


def _num_or_none(v):
    return None if v is None or pd.isna(v) else float(v)


def chosen_rows(scores: pd.DataFrame, sel: dict) -> dict[str, dict]:
    """{algorithm or variant name: candidate description} of the selected checkpoints. A variant whose pick
    is its algorithm's pick (e.g. adbcq[linear,aug] when it is the only AD-BCQ variant) is listed once, under
    the algorithm (its ``variant`` field names it)."""
    out = {}
    algo_picks = {info["index"] for info in sel["algorithms"].values()}
    for kind, items in (("algorithms", sel["algorithms"]), ("variants", sel["variants"])):
        for name, info in items.items():
            if kind == "variants" and (name in out or info["index"] in algo_picks):
                continue  # the same checkpoint as its algorithm's pick
            row = scores.loc[info["index"]]
            out[name] = {"run_id": str(row["run_id"]), "step": int(row["step"]), "algorithm": str(row["algorithm"]),
                         "variant": str(row["variant"]), "mixer": None if pd.isna(row["mixer"]) else str(row["mixer"]),
                         "augment": None if pd.isna(row["augment"]) else bool(row["augment"]),
                         "tau": float(row["tau"]), "seed": int(row["seed"]), "flagged": bool(info["flagged"]),
                         "val_wis": None if not np.isfinite(row["wis"]) else float(row["wis"]),
                         "val_ess": float(row["ess"])}
            if "fqe" in row:
                out[name].update({"val_fqe": _num_or_none(row["fqe"]), "val_wdr": _num_or_none(row["wdr"]),
                                  "fqe_converged": None if pd.isna(row["fqe_converged"]) else bool(row["fqe_converged"]),
                                  "fqe_drift": _num_or_none(row["fqe_drift"]),
                                  "fqe_td_rmse": _num_or_none(row["fqe_td_rmse"]),
                                  "fqe_td_mean": _num_or_none(row["fqe_td_mean"])})
    return out


POINT_KEYS = ("wis", "wis_ci", "wis_ci_note", "ess", "ess_ci", "pdwis", "pdwis_ci", "fqe", "fqe_ci", "wdr", "wdr_ci",
              "is", "max_weight_share", "n_positive",
              "agreement", "warnings")


def run_evaluation(p, states: pd.DataFrame, runs, greedy_fn, true_values: Mapping | None = None,
                   where: str = "states table", fqe_fn=None) -> dict:
    """Everything the evaluate stage computes, from the states table and the runs (no files written).

    ``p``: the EvaluateParams; ``runs`` / ``greedy_fn``: see :func:`score_runs`. ``fqe_fn(candidates, z)``:
    FQE of the candidates (a DataFrame with run_id, step) fitted on train, with ``z`` {split: (N, d)} the
    states to score (val, test, and "start": the validation episode starts for the convergence record);
    returns {"greedy": {split: (K, N)}, "q": {split: (K, N, 25)}, "convergence": {converged, drift, value,
    td_rmse: (K,)}, ...} (e.g. adrl.rl.fqe.fqe_checkpoints). None, or ``p.fqe.candidates`` 0: no FQE / WDR.
    """
    if p.select_by not in SELECT_BY:
        raise InputError(f"evaluate.select_by: unknown rule {p.select_by!r}; expected one of {', '.join(SELECT_BY)}")
    sp = {s: split_arrays(states, s, where=where) for s in ("train", "val", "test")}
    beh = fit_behaviours(sp["train"], {"val": sp["val"], "test": sp["test"]}, p.knn_k, p.calibration_rows,
                         p.calibration_bins, p.seed)
    data = {s: logged_data(sp[s], beh, p.behaviour, p.zero_behaviour) for s in ("val", "test")}
    scores = score_runs(data["val"], runs, greedy_fn, sp["val"].z, epsilon=p.epsilon, clip=p.weight_clip,
                        chunk=p.chunk_candidates)
    fq, cand = None, np.empty(0, np.int64)
    if fqe_fn is not None and p.fqe.candidates > 0:
        _, wis_sel = select_models(scores, data["val"].n_episodes, p.ess_cutoff_c, 2)
        must = [v["index"] for v in wis_sel["variants"].values()]
        cand = spread_candidates(scores, max(p.fqe.candidates, len(must)), must=must)
        z = {"val": sp["val"].z, "test": sp["test"].z, "start": sp["val"].z[data["val"].starts]}
        fq = fqe_fn(scores.loc[cand, ["run_id", "step"]].reset_index(drop=True), z)
        scores = add_model_scores(scores, cand, fq, data["val"], beh.train_fit["val"][p.behaviour], p.epsilon,
                                  p.weight_clip)
        conv = np.asarray(fq["convergence"]["converged"], bool)
        log.info("FQE of %d candidates: %d converged", len(cand), int(conv.sum()))
    elif p.select_by != "wis_ess_pareto":
        raise InputError(f"evaluate.select_by: {p.select_by} needs FQE, but evaluate.fqe.candidates is 0")
    scores, sel = select_models(scores, data["val"].n_episodes, p.ess_cutoff_c, p.cutoff_grid, p.select_by)
    chosen = chosen_rows(scores, sel)
    common = dict(epsilon=p.epsilon, clip=p.weight_clip, n_boot=p.bootstrap, seed=p.seed,
                  max_share=p.warn_max_weight_share)
    res = {}
    for s in ("val", "test"):
        acts = chosen_actions(chosen, runs, greedy_fn, sp[s].z)
        models = None
        if fq is not None:
            tp = beh.train_fit[s][p.behaviour]
            models = {}
            for name, c in chosen.items():
                k = scores.loc[(scores["run_id"] == c["run_id"]) & (scores["step"] == c["step"]), "fqe_index"]
                if len(k) and pd.notna(k.iloc[0]):
                    k = int(k.iloc[0])
                    ql, ve, vg = model_values(fq["q"][s][k:k + 1], fq["greedy"][s][k:k + 1], data[s].actions, tp,
                                              p.epsilon)
                    models[name] = (ql[0], ve[0], vg[0])
        res[s] = evaluate_policies(data[s], acts, min_ess=p.ess_cutoff_c * data[s].n_episodes, label=s,
                                   models=models, **common)
        other = "factored" if p.behaviour == "joint" else "joint"   # behaviour-model sensitivity (method 5.1)
        alt = logged_data(sp[s], beh, other, "floor")
        res[f"{s}_{other}"] = evaluate_policies(alt, acts, min_ess=p.ess_cutoff_c * alt.n_episodes,
                                                label=f"{s} ({other} behaviour)", **common)
    table = build_test_table(res["test"], selected=chosen, true_values=true_values)
    return {"splits": {s: a.counts for s, a in sp.items()}, "behaviour": beh.metrics, "scores": scores,
            "selection": sel, "chosen": chosen, "results": res, "table": table, "k": beh.k,
            "fqe_candidates": cand, "fqe": fq, "n_test": data["test"].n_episodes}


def audit_candidates(scores: pd.DataFrame, n: int) -> np.ndarray:
    """The audit's candidates: up to ``n`` of the FQE'd ones (each run's final checkpoint, then evenly spaced)."""
    if "fqe" not in scores:
        return np.empty(0, np.int64)
    return spread_candidates(scores, n, within=scores.index[scores["fqe"].notna()])


def run_audit(scores: pd.DataFrame, idx: np.ndarray, truth: np.ndarray, cutoff: float) -> dict:
    """Audit of the validation estimators on the candidates ``idx`` with true values ``truth``: each
    estimator's selection rule applied to these candidates (WIS: the WIS-ESS Pareto rule; the others: the
    highest estimate among converged FQE fits), its Spearman correlation, regret and top-5 precision."""
    from .audit import audit, winner
    from .selection import select

    sub = scores.loc[idx]
    conv = sub["fqe_converged"].fillna(False).to_numpy(bool)
    estimates = {k: sub[k].to_numpy(np.float64) for k in ("wis", "pdwis", "fqe", "wdr", "combined")}
    selected = {"wis": select(estimates["wis"], sub["ess"].to_numpy(np.float64), cutoff).index}
    for k in ("fqe", "wdr", "combined"):
        selected[k] = _select_by_value(estimates[k], conv)[0]
    res = audit(estimates, truth, selected)
    for k, r in res.items():
        r["selected_run_id"] = str(sub["run_id"].iloc[r["selected"]])
        r["selected_step"] = int(sub["step"].iloc[r["selected"]])
        r.pop("selected")
    return {"estimators": res, "winner": winner(res), "n_candidates": int(len(idx)),
            "rules": {"wis": "WIS-ESS Pareto rule (method 5.6)", "pdwis": "highest PDWIS (not a select_by rule)", "fqe": "highest FQE among converged fits",
                      "wdr": "highest WDR among converged FQE fits",
                      "combined": "highest mean rank of WIS, FQE and WDR among converged FQE fits"}}


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
    why = (f"no frontier point with ESS >= {sel['cutoff']:.1f}" if p.select_by == "wis_ess_pareto"
           else "no candidate's FQE converged")
    warnings = [f"{n}: selection flagged ({why})"
                for n, c in out["chosen"].items() if c["flagged"]]
    warnings += [f"{s} {n}: {w}" for s in ("val", "test") for n, r in res[s]["policies"].items()
                 for w in r.get("warnings", [])]
    fqe = None
    if out.get("fqe") is not None:
        conv = out["fqe"]["convergence"]
        fqe = {"n_candidates": int(len(out["fqe_candidates"])), "n_converged": int(np.sum(conv["converged"])),
               "max_drift": float(np.max(conv["drift"])), "median_td_rmse": float(np.median(conv["td_rmse"])),
               "steps": out["fqe"]["history"]["steps"][-1] if out["fqe"]["history"]["steps"] else 0,
               "config": out["fqe"]["config"]}
        if fqe["n_converged"] < fqe["n_candidates"]:
            warnings.append(f"FQE: {fqe['n_candidates'] - fqe['n_converged']} of {fqe['n_candidates']} fits did not "
                            f"converge (start value moved > {p.fqe.tol} points over the last "
                            f"{p.fqe.trend_window} target copies); they are flagged and not selected by FQE rules")
    return {"select_by": p.select_by, "fqe": fqe,
            "behaviour_model": p.behaviour, "knn_k": out["k"], "epsilon": p.epsilon, "weight_clip": p.weight_clip,
            "bootstrap": p.bootstrap, "ess_cutoff": sel["cutoff"], "ess_cutoff_c": p.ess_cutoff_c,
            "splits": out["splits"], "clinician": {s: res[s]["policies"]["clinician"] for s in ("val", "test")},
            "selected": selected, "test_differences": res["test"]["differences"],
            "corrections": {s: res[s]["corrections"] for s in ("val", "test")},
            "behaviour": beh, "warnings": warnings}


VALUE_CHECK_RANGE = (0.8, 1.25)


def promotion_flags(row: Mapping, chosen: Mapping | None, ess_cutoff: float,
                    clinician_true: float | None) -> list[str]:
    """Why a selected policy must not be promoted (empty: it may be): test ESS below the cutoff, a
    selection that was itself flagged, FQE or the learner's value check not converged, or (where the truth
    exists) a true value below the clinicians'."""
    out = []
    if row.get("ess") is None or row["ess"] < ess_cutoff:
        out.append(f"test ESS {row.get('ess') or 0:.1f} below the cutoff {ess_cutoff:.1f}")
    c = chosen or {}
    if c.get("flagged"):
        out.append("selection flagged")
    if c.get("fqe_converged") is False:
        out.append(f"FQE not converged (start value moved {c.get('fqe_drift') or float('nan'):.2f} points, mean TD "
                   f"error {c.get('fqe_td_mean') or float('nan'):.2f})")
    vc = c.get("value_check")   # the train stage's check of the learner (issue 11), when evaluate carries it
    if vc and vc.get("ratio") is not None:
        ok = vc["converged"] if "converged" in vc else VALUE_CHECK_RANGE[0] <= vc["ratio"] <= VALUE_CHECK_RANGE[1]
        if not ok:
            out.append(f"learner not converged (value check ratio {vc['ratio']:.2f})")
    tv = row.get("true_value")
    if tv is not None and clinician_true is not None and tv < clinician_true:
        out.append(f"true value {tv:.1f} below the clinicians' {clinician_true:.1f}")
    return out
