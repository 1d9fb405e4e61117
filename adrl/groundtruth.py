"""Ground truth on the synthetic world: a trained policy acts on simulated septic patients bin by bin, through
the very code that built its training data.

At every 4-hour decision the simulator's charted events so far go through the cohort's featuriser
(:class:`adrl.cohort.featurize.Featurizer`, the same code as the `cohort` stage), the new trajectory row of each
stay through the AIS encoder's step API (:meth:`adrl.ais.encoder.AisEncoder.step`), and the policy picks a joint
action from the state. The action's bins become doses for the next bin (the median raw dose of the training rows
in that bin, from ``action_edges.json``), and the simulator answers with the next bin's events. All policies
share the same patients and exogenous noise (common random numbers), so their differences are paired.

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
    from .synth.rollout import rollout

    stats = None
    if policy == "clinician":
        pol = "clinician"
    elif policy == "no_treatment":
        pol = lambda hist, w: (np.zeros(w.n), np.zeros(w.n))  # noqa: E731
    else:
        if featurizer is None or encoder is None or action_edges is None:
            raise InputError("true_value: a learned policy needs the featuriser, the AIS encoder and action edges")
        pol = StatePolicyController(featurizer, encoder, policy, action_edges)
        stats = pol.stats
    res = rollout(pol, n=n, seed=seed, params=synth_params, progress=progress,
                  events=not isinstance(pol, str) and policy != "no_treatment")
    out = {"value": res["value"], "se": res["se"], "n": n, "seed": seed}
    if stats is not None:
        out["decisions"] = stats["decisions"]
        out["dose_recovery"] = stats["recovered"] / stats["checked"] if stats["checked"] else None
    return out


def true_values(policies: dict, n: int, seed: int, synth_params, featurizer=None, encoder=None, action_edges=None,
                progress: bool | None = None) -> dict:
    """True values of several policies on the same ``n`` simulated patients and noise ``seed`` (common random
    numbers): ``{name: true_value(policy, ...)}`` for ``policies = {name: policy}`` (each as in :func:`true_value`).
    """
    return {name: true_value(pol, n, seed, synth_params, featurizer, encoder, action_edges, progress)
            for name, pol in policies.items()}
