"""The projected dynamics model against the synthetic world's truth (issue 14 item 2; method.md 7, E4 (a)).

On the synthetic source the simulator knows what each sub-action does. New septic patients (the roll-out
world of adrl/synth/rollout.py) are treated by the clinician up to one decision bin; there their AIS state z comes
from the cohort featuriser and the AIS encoder, exactly as in the truth roll-outs (adrl/groundtruth.py). Each
patient is then copied once per arm, every fluid bin with the vasopressor at no-op and every vasopressor bin with
fluid at no-op (common random numbers: every copy sees the same noise), given that arm's dose for one bin, and left
to the clinician afterwards. Per arm, side by side:

- the model, queried at (z, a_F, a_V): its probability that the stay ends in the bin and its survival probability,
  and the change of MAP and lactate from z to its mean next state, read through a linear readout z -> (MAP,
  lactate) fitted on the states table's train rows against the trajectory table's (de-normalised) values;
- the simulator, for the same patients: the share whose stay ends in the bin, the share who survive (one bin of
  the arm, then the clinician), and the change of the noise-free MAP and lactate from the start of the bin to its
  end (the state at the next decision), over the copies still in the ICU after the bin;
- the effect of each arm against the no-op arm (paired per patient), for survival, MAP and lactate.

Every sign disagreement between the model and the simulator is listed. Only counts and aggregates leave this
module. The model enters as ``query(z, a_f, a_v) -> (mean next state, P(end), P(survive))`` (numpy), so this module
needs no torch: :meth:`adrl.rl.dynamics.DynamicsEnsemble.expected` is that function.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from .actions import N_FLUID, N_VASO
from .errors import InputError

log = logging.getLogger("adrl.modelcheck")

ARMS = [(f, 0) for f in range(N_FLUID)] + [(0, v) for v in range(1, N_VASO)]   # (fluid bin, vaso bin); (0, 0) first
TARGETS = {"map": ("o:MeanBP", "MeanBP"), "lactate": ("o:Arterial_lactate", "Lactate")}   # cohort column, simulator


def arm_name(f: int, v: int) -> str:
    return "noop" if f == v == 0 else (f"fluid{f}" if v == 0 else f"vaso{v}")


@dataclass(frozen=True)
class Readout:
    """A linear map from the AIS state to raw (MAP mmHg, lactate mmol/L), with its validation R^2."""

    coef: np.ndarray       # (d, 2)
    intercept: np.ndarray  # (2,)
    r2: dict

    def __call__(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(z, np.float64) @ self.coef + self.intercept


def _denormalise(x: np.ndarray, st: dict) -> np.ndarray:
    if st["transform"] == "log_z":
        return np.exp(x * st["std"] + st["mean"]) - 0.1
    if st["transform"] != "z":
        raise InputError(f"model check: cannot invert the cohort transform {st['transform']!r}")
    return x * st["std"] + st["mean"]


def fit_readout(states: pd.DataFrame, trajectories: pd.DataFrame, normalization: dict, alpha: float = 1.0) -> Readout:
    """Ridge regression of the row's raw MAP and lactate on its state z_t (train rows), R^2 on the val rows."""
    from sklearn.linear_model import Ridge

    zc = [c for c in states.columns if c.startswith("z_")]
    cols = [c for c, _ in TARGETS.values()]
    missing = [c for c in ["icustay_id", "step", *cols] if c not in trajectories.columns]
    if missing:
        raise InputError(f"model check: the trajectory table lacks {missing}")
    df = states[["icustay_id", "step", "split", *zc]].merge(trajectories[["icustay_id", "step", *cols]],
                                                           on=["icustay_id", "step"], how="inner")
    y = np.stack([_denormalise(df[c].to_numpy(np.float64), normalization["columns"][c]) for c in cols], 1)
    z = df[zc].to_numpy(np.float64)
    tr, va = (df["split"] == "train").to_numpy(), (df["split"] == "val").to_numpy()
    if tr.sum() < 2:
        raise InputError("model check: the states table has no train rows to fit the z -> observation readout on")
    m = Ridge(alpha=alpha).fit(z[tr], y[tr])
    r2 = {}
    for j, name in enumerate(TARGETS):
        yv = y[va, j]
        ss = ((yv - yv.mean()) ** 2).sum() if va.any() else 0.0
        r2[name] = float(1 - ((yv - m.predict(z[va])[:, j]) ** 2).sum() / ss) if ss > 0 else float("nan")
    return Readout(m.coef_.T.copy(), m.intercept_.copy(), r2)


def states_at_decision(n: int, seed: int, synth_params, featurizer, encoder, action_edges,
                       decision_bin: int) -> tuple[np.ndarray, np.ndarray]:
    """The clinician treats ``n`` new patients up to ``decision_bin``; returns (z (m, d), their indices): the
    patients in the ICU and still in the episode there, each with the AIS state the policy would act on."""
    from .groundtruth import StatePolicyController
    from .synth.rollout import RolloutWorld

    w = RolloutWorld(n, seed, synth_params, events=True, cohort_only=True)
    hist: dict[str, list] = {}
    for k, v in w.reset().items():
        hist.setdefault(k, []).append(v)
    while w.step_i < decision_bin and not w.done.all():
        for k, v in w.step(*w.clinician_doses()).items():
            hist.setdefault(k, []).append(v)
    ctl = StatePolicyController(featurizer, encoder, lambda z: np.zeros(len(z), np.int64), action_edges)
    ctl(hist, w)   # featurise and encode every row so far (the doses it returns are not used)
    idx = np.flatnonzero((ctl.consumed > 0) & ~np.asarray(w.done))
    return ctl.z[idx].copy(), idx


def simulate_arms(n: int, seed: int, synth_params, action_edges, decision_bin: int, idx: np.ndarray) -> dict:
    """The same patients (and noise) copied once per arm, each copy given its arm's doses for one bin at
    ``decision_bin`` (the clinician before and after). Returns per-arm arrays over ``idx``: noise-free MAP and
    lactate at the start and at the end of the bin (``now``, ``next`` (m, 2)), ``ended`` in the bin and
    ``survived`` (the outcome)."""
    from .groundtruth import bin_doses
    from .synth import physiology as ph
    from .synth.rollout import RolloutWorld

    K = len(ARMS)
    fl_dose, va_dose = bin_doses(action_edges)
    w = RolloutWorld(n, seed, synth_params, events=False)
    w.reset()
    w.replicate(K)
    while w.step_i < decision_bin and not w.done.all():
        w.step(*w.clinician_doses())
    if np.asarray(w.done).reshape(K, n)[:, idx].any():   # the charting world and this one must be the same patients
        raise RuntimeError("model check: a patient in the ICU at the decision bin has left this roll-out world")

    def truth():
        b = w.batch
        o = ph.observe(b.z, np.zeros(w.n), b.S, b.vent)
        return np.stack([o[:, ph.OBS_INDEX[s]] for _, s in TARGETS.values()], 1).reshape(K, n, 2)

    now = truth()
    fluid, vaso = (np.array(x, float) for x in w.clinician_doses())
    for r, (f, v) in enumerate(ARMS):
        fluid[r * n + idx], vaso[r * n + idx] = fl_dose[f], va_dose[v]
    w.step(fluid, vaso)
    nxt = truth()
    ended = np.asarray(w.done).reshape(K, n)
    survived = ~w.outcome().reshape(K, n)
    return {"now": now[:, idx], "next": nxt[:, idx], "ended": ended[:, idx], "survived": survived[:, idx]}


def _mean_se(x: np.ndarray) -> tuple[float, float]:
    x = np.asarray(x, np.float64)
    if len(x) == 0:
        return float("nan"), float("nan")
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")


def _sign_differs(a: float, b: float) -> bool:
    """Strictly opposite signs (an exact zero on either side is no disagreement)."""
    return bool(np.isfinite(a) and np.isfinite(b) and a * b < 0)


def compare(z: np.ndarray, sim: dict, query: Callable, readout: Readout) -> dict:
    """The per-arm table of the model beside the simulator, and the sign disagreements (aggregates only)."""
    m = len(z)
    rz = readout(z)
    pred = {}
    for f, v in ARMS:
        z_next, p_end, p_surv = query(z, np.full(m, f, np.int64), np.full(m, v, np.int64))
        pred[(f, v)] = (readout(z_next) - rz, np.asarray(p_end, np.float64), np.asarray(p_surv, np.float64))
    arms, flags, n_clear = [], [], 0
    cont0 = ~sim["ended"][0]
    for r, (f, v) in enumerate(ARMS):
        name = arm_name(f, v)
        d_model, p_end, p_surv = pred[(f, v)]
        cont = ~sim["ended"][r]
        d_sim = sim["next"][r] - sim["now"][r]
        row = {"arm": name, "fluid": f, "vaso": v,
               "model": {"p_end": float(p_end.mean()), "p_survive": float(p_surv.mean())},
               "sim": {"p_end": float(sim["ended"][r].mean()), "survival": float(sim["survived"][r].mean()),
                       "n_continuing": int(cont.sum())}}
        for j, t in enumerate(TARGETS):
            row["model"][f"d_{t}"] = float(d_model[cont, j].mean()) if cont.any() else float("nan")
            row["sim"][f"d_{t}"], row["sim"][f"d_{t}_se"] = _mean_se(d_sim[cont, j])
        disagree = [f"d_{t}" for t in TARGETS if _sign_differs(row["model"][f"d_{t}"], row["sim"][f"d_{t}"])]
        if r > 0:   # the arm against the no-op arm, paired per patient
            both = cont & cont0
            eff_model = {"p_survive": float((p_surv - pred[(0, 0)][2]).mean())}
            eff_sim = {}
            eff_sim["survival"], eff_sim["survival_se"] = _mean_se(sim["survived"][r].astype(float)
                                                                   - sim["survived"][0].astype(float))
            for j, t in enumerate(TARGETS):
                eff_model[t] = float((d_model[both, j] - pred[(0, 0)][0][both, j]).mean()) if both.any() \
                    else float("nan")
                eff_sim[t], eff_sim[f"{t}_se"] = _mean_se(sim["next"][r][both, j] - sim["next"][0][both, j])
            row["effect_vs_noop"] = {"model": eff_model, "sim": eff_sim, "n_paired": int(both.sum())}
            if _sign_differs(eff_model["p_survive"], eff_sim["survival"]):
                disagree.append("effect_survival")
            disagree += [f"effect_{t}" for t in TARGETS if _sign_differs(eff_model[t], eff_sim[t])]
        row["sign_disagreements"] = disagree
        for key in disagree:
            if key.startswith("effect_"):
                t = key[len("effect_"):]
                mv = row["effect_vs_noop"]["model"]["p_survive" if t == "survival" else t]
                sv, se = row["effect_vs_noop"]["sim"][t], row["effect_vs_noop"]["sim"][f"{t}_se"]
                what = f"{name} against no-op, {t}"
            else:
                mv, sv, se = row["model"][key], row["sim"][key], row["sim"][f"{key}_se"]
                what = f"{name}, change of {key[2:]} over the bin"
            clear = bool(abs(sv) > 2 * se)   # the simulator's sign is beyond its Monte-Carlo error
            n_clear += clear
            flags.append(f"{what}: model {mv:+.3g}, simulator {sv:+.3g} (SE {se:.2g}{', clear' if clear else ''})")
        arms.append(row)
    return {"n_patients_checked": int(m), "arms": arms, "sign_disagreements": len(flags),
            "sign_disagreements_clear": n_clear, "flags": flags,
            "readout_val_r2": readout.r2,
            "now": {"model_" + t: float(rz[:, j].mean()) for j, t in enumerate(TARGETS)}
            | {"sim_" + t: float(sim["now"][0][:, j].mean()) for j, t in enumerate(TARGETS)}}


def simulate_check(n: int, seed: int, synth_params, decision_bin: int, tools) -> dict:
    """The simulator's side of the check, the same for every dynamics model: the AIS states of the patients in the ICU
    at ``decision_bin`` (``z``, their indices ``idx``) and the arms' true effects (``sim``). ``tools``: (featuriser,
    AIS encoder, action edges). One work unit of the evaluate stage's roll-outs (adrl/groundtruth.py Rollouts.call)."""
    featurizer, encoder, action_edges = tools
    z, idx = states_at_decision(n, seed, synth_params, featurizer, encoder, action_edges, decision_bin)
    if len(idx) == 0:
        raise InputError(f"model check: none of {n} simulated patients is in the ICU at decision bin {decision_bin}")
    return {"n": n, "seed": seed, "decision_bin": decision_bin, "z": z, "idx": idx,
            "sim": simulate_arms(n, seed, synth_params, action_edges, decision_bin, idx)}


def check_against(query: Callable, readout: Readout, simulated: dict) -> dict:
    """One dynamics model (``query``) against :func:`simulate_check`'s patients: the table."""
    out = compare(simulated["z"], simulated["sim"], query, readout)
    log.info("model check on %d patients at bin %d: %d sign disagreement(s) with the simulator",
             len(simulated["idx"]), simulated["decision_bin"], out["sign_disagreements"])
    return _finite({"n_patients": simulated["n"], "seed": simulated["seed"],
                    "decision_bin": simulated["decision_bin"], **out})


def model_check(query: Callable, readout: Readout, n: int, seed: int, synth_params, featurizer, encoder,
                action_edges, decision_bin: int) -> dict:
    """The whole check: states at ``decision_bin`` for ``n`` new patients, the arms in the simulator, the table."""
    return check_against(query, readout,
                         simulate_check(n, seed, synth_params, decision_bin, (featurizer, encoder, action_edges)))


def _finite(x):
    """NaN / infinite floats (an arm without continuing patients, an SE of one value) become None (valid JSON)."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x
