"""Ground truth on the synthetic world: a trained policy acts on simulated septic patients bin by bin, through
the very code that built its training data.

At every 4-hour decision the simulator's charted events go through the cohort's featuriser (the same code as
the `cohort` stage: :class:`adrl.cohort.incremental.IncrementalFeaturizer`, which processes only the new bin's
events and gives the rows :class:`adrl.cohort.featurize.Featurizer` gives on all events so far), the new
trajectory row of each stay through the AIS encoder's step API (:meth:`adrl.ais.encoder.AisEncoder.step`), and
the policy picks a joint action from the state. The action's bins become doses for the next bin (the median raw dose of the training rows
in that bin, from ``action_edges.json``), and the simulator answers with the next bin's events. All policies
share the same patients and exogenous noise (common random numbers), so their differences are paired; learned
policies are rolled out together, each on its own copy of every patient (:func:`true_values`).

As a check of the whole chain (simulator charting -> ingest-format events -> cohort extraction), the controller
counts how often the action the cohort code recovers from the charted doses of a bin equals the action the
policy chose for it (``dose_recovery``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from .actions import N_ACTIONS, from_flat
from .errors import InputError
from .schemas import DEMOG_COLS, OBS_COLS

log = logging.getLogger("adrl.groundtruth")

EVENT_TABLES = ("chartevents", "labevents", "inputevents_cv", "inputevents_mv", "outputevents",
                "procedureevents_mv", "prescriptions", "microbiologyevents")
STATIC_TABLES = ("patients", "admissions", "icustays")


def bin_doses(action_edges: dict) -> tuple[np.ndarray, np.ndarray]:
    """Dose given for each fluid bin (mL per bin) and vaso bin (NE-eq ug/kg/min): the median raw dose of the
    training rows in that bin; the edge-interval midpoint for a bin the training split never used."""
    out = []
    for key in ("fluid", "vaso"):
        e = action_edges[key]
        edges = [0.0, *map(float, e["edges"])]
        med = list(e.get("median_raw_per_bin") or [None] * 5)
        doses = np.zeros(5)
        for b in range(1, 5):
            if med[b] is not None and np.isfinite(med[b]) and med[b] > 0:
                doses[b] = med[b]
            elif b < 4:
                doses[b] = 0.5 * (edges[b - 1] + edges[b])
            else:
                doses[b] = 1.5 * edges[3]
        out.append(doses)
    return out[0], out[1]


@dataclass
class StatePolicyController:
    """Makes a state-based policy (``act(z) -> flat actions``) a dose controller for the simulator."""

    featurizer: object
    encoder: object
    act: Callable[[np.ndarray], np.ndarray]
    action_edges: dict
    stats: dict = field(default_factory=lambda: {"decisions": 0, "recovered": 0, "checked": 0,
                                                 "pre_icu_decisions": 0})

    def __post_init__(self):
        self.fluid_dose, self.vaso_dose = bin_doses(self.action_edges)
        self.bin_s = int(self.featurizer.grid.bin_s)
        self._n = None

    def _init(self, n: int):
        self._n = n
        self.hidden = self.encoder.start(n)
        self.z = np.zeros((n, self.encoder.latent_dim), np.float32)
        self.consumed = np.zeros(n, np.int64)      # trajectory rows already fed to the encoder
        self.chosen: dict[tuple[int, int], int] = {}  # (stay, step of the treated row) -> chosen action

    def __call__(self, hist: dict, world) -> tuple[np.ndarray, np.ndarray]:
        n = world.n
        if self._n != n:
            self._init(n)
        static = {t: hist[t][0] for t in STATIC_TABLES}
        onsets = hist["onset"][0]
        events = {t: pd.concat(hist[t], ignore_index=True) for t in EVENT_TABLES if t in hist and hist[t]}
        # bins completed so far: the world's bin j starts at onset - 24 h + 4 j h, the cohort grid's at onset - lead
        until = (np.asarray(world.onset, np.float64) - 24 * 3600 + world.step_i * self.bin_s)
        rows = self.featurizer(static, onsets, events, until=until)
        pos = pd.Series(np.arange(n), index=static["icustays"]["icustay_id"].to_numpy())
        s_all = pos.reindex(rows["icustay_id"].to_numpy()).to_numpy()
        if np.isnan(s_all.astype(float)).any():
            raise InputError("ground truth: featuriser returned rows of unknown stays")
        s_all = s_all.astype(np.int64)
        step_all = rows["step"].to_numpy(np.int64)
        X_all = rows[list(OBS_COLS) + list(DEMOG_COLS)].to_numpy(np.float32)
        a_all = rows["action"].to_numpy(np.int64)
        # feed each stay's new rows in step order (normally one per stay per decision)
        new = step_all >= self.consumed[s_all]
        while new.any():
            idx = np.flatnonzero(new & (step_all == self.consumed[s_all]))
            if len(idx) == 0:
                raise InputError("ground truth: trajectory rows are not consecutive")
            s = s_all[idx]
            z, h = self.encoder.step(self.hidden[s], X_all[idx], a_all[idx])
            self.hidden[s] = h
            self.z[s] = z
            self.consumed[s] += 1
            for si, st, a in zip(s, step_all[idx], a_all[idx]):  # dose recovery check (one per stay and step)
                want = self.chosen.pop((int(si), int(st)), None)
                if want is not None:
                    self.stats["checked"] += 1
                    self.stats["recovered"] += int(want == a)
            new = step_all >= self.consumed[s_all]
        in_icu = (self.consumed > 0) & ~np.asarray(world.done)
        fluid, vaso = world.clinician_doses()  # before the first trajectory row: care is not the policy's
        fluid = np.array(fluid, float)
        vaso = np.array(vaso, float)
        self.stats["pre_icu_decisions"] += int(((self.consumed == 0) & ~np.asarray(world.done)).sum())
        if in_icu.any():
            a = np.asarray(self.act(self.z[in_icu]), np.int64)
            if a.shape != (int(in_icu.sum()),) or a.min() < 0 or a.max() >= N_ACTIONS:
                raise InputError("ground truth: the policy returned actions outside 0..24 or of the wrong shape")
            fb, vb = from_flat(a)
            fluid[in_icu] = self.fluid_dose[fb]
            vaso[in_icu] = self.vaso_dose[vb]
            self.stats["decisions"] += int(in_icu.sum())
            for si, aa in zip(np.flatnonzero(in_icu), a):
                self.chosen[(int(si), int(self.consumed[si]))] = int(aa)
        return fluid, vaso


def true_value(policy, n: int, seed: int, synth_params, featurizer=None, encoder=None, action_edges=None,
               progress: bool | None = None) -> dict:
    """True value (100 x survival) of ``policy`` on ``n`` new simulated septic patients with noise ``seed``.

    ``policy``: "clinician", "no_treatment", or a callable ``act(z) -> flat actions`` on AIS states (then
    ``featurizer``, ``encoder`` and ``action_edges`` are needed).
    """
    return true_values({"policy": policy}, n, seed, synth_params, featurizer, encoder, action_edges,
                       progress)["policy"]


def true_values(policies: dict, n: int, seed: int, synth_params, featurizer=None, encoder=None, action_edges=None,
                progress: bool | None = None) -> dict:
    """True values of several policies on the same ``n`` simulated patients and noise ``seed`` (common random
    numbers): ``{name: result}`` for ``policies = {name: policy}``, each policy and result as in
    :func:`true_value`. Learned policies are rolled out together, up to :data:`MAX_STAYS_PER_PASS` simulated
    stays (policies x patients) per pass, through the incremental featuriser; the results are those of
    :func:`true_value_reference`, one policy at a time (tests/test_groundtruth.py)."""
    from .synth.rollout import rollout

    out: dict = {}
    learned = {}
    for name, policy in policies.items():
        if isinstance(policy, str):
            if policy not in ("clinician", "no_treatment"):
                raise InputError(f"true_values: unknown policy {policy!r} for {name!r} (clinician, no_treatment or a "
                                 "callable on AIS states)")
            pol = "clinician" if policy == "clinician" else (lambda hist, w: (np.zeros(w.n), np.zeros(w.n)))
            res = rollout(pol, n=n, seed=seed, params=synth_params, progress=progress, events=False)
            out[name] = {"value": res["value"], "se": res["se"], "n": n, "seed": seed}
        else:
            learned[name] = policy
    if learned:
        if featurizer is None or encoder is None or action_edges is None:
            raise InputError("true_value: a learned policy needs the featuriser, the AIS encoder and action edges")
        names = list(learned)
        per_pass = max(1, MAX_STAYS_PER_PASS // max(int(n), 1))
        n_pass = -(-len(names) // per_pass)
        size = -(-len(names) // n_pass)  # even passes
        for i in range(0, len(names), size):
            group = {k: learned[k] for k in names[i:i + size]}
            out.update(_rollout_together(group, n, seed, synth_params, featurizer, encoder, action_edges,
                                         progress, done_before=i, total=len(names)))
    return {name: out[name] for name in policies}


# policies x patients simulated at once (results do not change). Memory grows with it: peak RSS of the benchmark
# process 0.6 GB at 8,000 stays, 1.0 GB at 20,000, where 20 policies x 1,000 patients take one pass instead of
# three and about 15 % less CPU per policy (benchmarks/results/rollout.md)
MAX_STAYS_PER_PASS = 20000
LOG_EVERY_S = 5.0


def _rollout_together(policies: dict, n: int, seed: int, synth_params, featurizer, encoder, action_edges,
                      progress, done_before: int = 0, total: int = 1) -> dict:
    """Roll out K learned policies in one batch of K x n stays: replica r of patient i is stay r * n + i, with
    the same noise as patient i; one incremental featuriser serves them all; each policy's AIS encoder steps and
    actions are computed on its own rows exactly as :class:`StatePolicyController` does."""
    import time

    from .cohort.incremental import IncrementalFeaturizer
    from .synth.rollout import N_BINS, RolloutWorld

    names, acts = list(policies), list(policies.values())
    K = len(acts)
    fl_dose, va_dose = bin_doses(action_edges)
    bin_s = int(featurizer.grid.bin_s)
    t_start = last_log = time.time()
    # everything up to the first decision is the clinician's: simulated and featurised once, then copied
    w = RolloutWorld(n, seed, synth_params, events=True, cohort_only=True)
    ev = w.reset()
    inc = IncrementalFeaturizer(featurizer, {t: ev[t] for t in STATIC_TABLES}, ev["onset"])
    inc.add({t: ev[t] for t in EVENT_TABLES if t in ev})
    until = np.asarray(w.onset, np.float64) - 24 * 3600 + w.step_i * bin_s
    first_rows = inc.rows(until)
    w.replicate(K)
    static = w.static_tables()
    inc.replicate(K, {t: static[t] for t in STATIC_TABLES}, static["onset"])
    N = w.n
    hidden = encoder.start(N)
    z = np.zeros((N, encoder.latent_dim), np.float32)
    consumed = np.zeros(N, np.int64)
    chosen = np.full((N, N_BINS + 1), -1, np.int64)
    decisions, recovered, checked = np.zeros(K, np.int64), np.zeros(K, np.int64), np.zeros(K, np.int64)
    rep = np.repeat(np.arange(K), n)
    for b in range(1, N_BINS):
        live = ~w.done.reshape(K, n).all(1)  # a policy whose patients are all done has stopped (as alone)
        if not live.any():
            break
        until = np.asarray(w.onset, np.float64) - 24 * 3600 + w.step_i * bin_s
        rows = _tile_rows(first_rows, K, n) if b == 1 else inc.rows(until)
        s_all = rows["icustay_id"].to_numpy(np.int64) - w.ids["icustay_id"][0]
        step_all = rows["step"].to_numpy(np.int64)
        X_all = rows[list(OBS_COLS) + list(DEMOG_COLS)].to_numpy(np.float32)
        a_all = rows["action"].to_numpy(np.int64)
        keep = live[rep[s_all]]
        s_all, step_all, X_all, a_all = s_all[keep], step_all[keep], X_all[keep], a_all[keep]
        new = step_all >= consumed[s_all]
        while new.any():
            idx = np.flatnonzero(new & (step_all == consumed[s_all]))
            if len(idx) == 0:
                raise InputError("ground truth: trajectory rows are not consecutive")
            for r in np.unique(rep[s_all[idx]]):  # one encoder call per policy, as when rolled out alone
                ir = idx[rep[s_all[idx]] == r]
                s = s_all[ir]
                zz, h = encoder.step(hidden[s], X_all[ir], a_all[ir])
                hidden[s] = h
                z[s] = zz
                consumed[s] += 1
                want = chosen[s, step_all[ir]]
                chk = want >= 0
                checked[r] += int(chk.sum())
                recovered[r] += int((want[chk] == a_all[ir][chk]).sum())
                chosen[s, step_all[ir]] = -1
            new = step_all >= consumed[s_all]
        fluid, vaso = w.clinician_doses()  # before the first trajectory row: care is not the policy's
        fluid = np.array(fluid, float)
        vaso = np.array(vaso, float)
        in_icu = (consumed > 0) & ~np.asarray(w.done) & live[rep]
        for r in np.flatnonzero(live):
            i = np.flatnonzero(in_icu[r * n:(r + 1) * n]) + r * n
            if not len(i):
                continue
            a = np.asarray(acts[r](z[i]), np.int64)
            if a.shape != (len(i),) or a.min() < 0 or a.max() >= N_ACTIONS:
                raise InputError(f"ground truth: policy {names[r]!r} returned actions outside 0..24 or of the wrong "
                                 "shape")
            fb, vb = from_flat(a)
            fluid[i] = fl_dose[fb]
            vaso[i] = va_dose[vb]
            decisions[r] += len(i)
            chosen[i, consumed[i]] = a
        inc.add({t: x for t, x in w.step(fluid, vaso).items() if t in EVENT_TABLES})
        if progress is not False and time.time() - last_log >= LOG_EVERY_S:
            last_log = time.time()
            log.info("roll-out: policies %d-%d of %d, bin %d/%d, %d of %d patients done (all policies; %.0f s)",
                     done_before + 1, done_before + K, total, w.step_i, N_BINS, int(w.done.sum()), N,
                     last_log - t_start)
    died = w.outcome().reshape(K, n)
    if progress is not False:
        log.info("roll-out: policies %d-%d of %d on %d patients done in %.1f s", done_before + 1, done_before + K,
                 total, n, time.time() - t_start)
    out = {}
    for r, name in enumerate(names):
        sv = 1 - died[r].mean()
        out[name] = {"value": 100 * float(sv), "se": 100 * float(np.sqrt(sv * (1 - sv) / n)), "n": n, "seed": seed,
                     "decisions": int(decisions[r]),
                     "dose_recovery": float(recovered[r] / checked[r]) if checked[r] else None}
    return out


def _tile_rows(rows: pd.DataFrame, K: int, n: int) -> pd.DataFrame:
    """Trajectory rows of n stays, repeated for K copies (ids of copy r shifted by r * n)."""
    ids = ("subject_id", "hadm_id", "icustay_id")
    return pd.concat([rows.assign(**{c: rows[c] + r * n for c in ids}) for r in range(K)], ignore_index=True)


# ---- roll-outs as units of an executor (params.yaml `executor`) ---------------------------------------------------
def rollout_units(names: list, n: int, slots: int = 1) -> list[list]:
    """Learned policies ``names`` split into roll-out units, in order: at least as many units as ``slots`` (the
    executor's units at a time; 1 in the stage's process) allow, each at most :data:`MAX_STAYS_PER_PASS` stays. With
    ``slots`` 1 these are exactly the passes :func:`true_values` makes. The split changes no number: every policy
    acts on the same ``n`` patients and noise whichever unit rolls it out (common random numbers;
    tests/test_groundtruth.py)."""
    if not names:
        return []
    per_pass = max(1, MAX_STAYS_PER_PASS // max(int(n), 1))
    k = max(-(-len(names) // per_pass), min(len(names), max(1, int(slots))))
    size = -(-len(names) // k)
    return [list(names[i:i + size]) for i in range(0, len(names), size)]


def one_thread_unit(fn: Callable, *args):
    """``fn(*args)`` on one torch thread (the setting restored after), so that a unit's numbers do not depend on the
    process's thread setting (OMP_NUM_THREADS) or on which executor ran it."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn(*args)
    finally:
        torch.set_num_threads(threads)


def _true_values_of(policies: dict, n: int, seed: int, synth_params, tools, progress) -> dict:
    fz, enc, edges = tools if tools is not None else (None, None, None)
    return true_values(policies, n, seed, synth_params, fz, enc, edges, progress)


def rollout_unit(policies: dict, n: int, seed: int, synth_params, tools=None, progress: bool | None = False) -> dict:
    """One roll-out unit (a Ray task, or a call in the stage's process): :func:`true_values` of ``policies`` with
    ``tools`` = (featuriser, AIS encoder, action edges), on one torch thread (:func:`one_thread_unit`)."""
    return one_thread_unit(_true_values_of, policies, n, seed, synth_params, tools, progress)


class Rollouts:
    """Roll-outs of many policies as units of an executor (adrl/executor.py): each unit is :func:`rollout_unit` on a
    share of the policies; ``executor`` None runs the units one after another in this process. The tools (featuriser,
    AIS encoder, action edges) go to the executor once (Ray: into its object store) and serve every unit; the results
    are the same whichever executor ran them. ``where()`` says how many units ran where."""

    def __init__(self, synth_params, tools=None, executor=None):
        self.synth, self.tools, self.ex = synth_params, tools, executor
        self._tools_ref = executor.put(tools) if executor is not None and tools is not None else tools
        self.in_process = 0

    @property
    def slots(self) -> int:
        return 1 if self.ex is None else max(1, int(self.ex.slots))

    def true_values(self, policies: dict, n: int, seed: int) -> dict:
        """:func:`true_values` of ``policies`` (clinician / no_treatment by name, learned ones as callables)."""
        named = [k for k, p in policies.items() if isinstance(p, str)]
        learned = [k for k in policies if k not in named]
        if learned and self.tools is None:
            raise InputError("true_value: a learned policy needs the featuriser, the AIS encoder and action edges")
        units = [[k] for k in named] + rollout_units(learned, n, self.slots)
        out: dict = {}
        if self.ex is None:
            for u in units:
                out.update(rollout_unit({k: policies[k] for k in u}, n, seed, self.synth,
                                        self.tools if u[0] in learned else None, progress=None))
                self.in_process += 1
            return {k: out[k] for k in policies}
        for i, u in enumerate(units):
            name = f"roll-out of {u[0]}" + (f" and {len(u) - 1} more" if len(u) > 1 else "") + f" ({n} patients)"
            self.ex.submit(i, name, rollout_unit, {k: policies[k] for k in u}, n, seed, self.synth,
                           self._tools_ref if u[0] in learned else None, False)
        while self.ex.pending:
            for _, res in self.ex.wait_any():
                out.update(res)
        return {k: out[k] for k in policies}

    def call(self, name: str, fn: Callable, *args):
        """One unit ``fn(*args, tools)`` (the tools last) where this runner's roll-outs run, on one torch thread as
        every roll-out unit; its result."""
        if self.ex is None:
            self.in_process += 1
            return one_thread_unit(fn, *args, self.tools)
        self.ex.submit(name, name, one_thread_unit, fn, *args, self._tools_ref)
        out = None
        while self.ex.pending:
            for _, res in self.ex.wait_any():
                out = res
        return out

    def where(self) -> str:
        if self.ex is None:
            return f"{self.in_process} unit(s) in this process"
        return f"{self.ex.kind} executor, {self.ex.where()}"


def true_value_reference(policy, n: int, seed: int, synth_params, featurizer, encoder, action_edges,
                         progress: bool | None = None) -> dict:
    """The roll-out of a learned policy as it was before the incremental featuriser (kept as the reference the
    fast path is tested against, and for the benchmark): one policy at a time, the batch featuriser re-reading
    every event of each stay at every decision."""
    from .synth.rollout import rollout

    pol = StatePolicyController(featurizer, encoder, policy, action_edges)
    res = rollout(pol, n=n, seed=seed, params=synth_params, progress=progress, events=True)
    st = pol.stats
    return {"value": res["value"], "se": res["se"], "n": n, "seed": seed, "decisions": st["decisions"],
            "dose_recovery": st["recovered"] / st["checked"] if st["checked"] else None}
