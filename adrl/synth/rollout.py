"""Ground-truth roll-outs: step N new septic patients bin by bin under any policy, with fixed exogenous noise.

    world = RolloutWorld(n=5000, seed=12345, params=cfg.synth)
    ev = world.reset()                       # events of bin 0 (treated by the clinician, as in the data)
    while not world.done.all():
        ev = world.step(fluid_ml, vaso)      # doses for the next bin: arrays over stays
    died = world.outcome()                   # icu48_or_hospital, per stay

Each stay is admitted in the first hour of its window (onset - 24 h), so step j is the stay's bin j of the
cohort grid (onset - 24 h + 4 j). The episode ends at onset + 48 h, at death or at ICU discharge; the rest
of the stay then runs under the clinician (uncharted) to decide the outcome. All noise comes from
generators keyed by (seed, hour, purpose), so two policies see the same patients and the same noise.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..mimic.schema import INTERIM
from . import charting
from . import physiology as ph
from . import population as pop
from .engine import StayBatch
from .params import SynthParams

H, DAY = 3600, 86400
N_BINS = 18
EPOCH_2150 = int(np.datetime64("2150-01-01T00:00:00", "s").astype(np.int64))


class RolloutWorld:
    def __init__(self, n: int, seed: int, params: SynthParams | None = None):
        params = params or SynthParams()
        self.n, self.seed, self.p = n, seed, params
        rng = np.random.default_rng([seed, 101])
        S = pop.sample_statics(rng, n, params.confounder, kind=pop.KIND_SEPTIC)
        S["age"] = np.where(S["age"] < 18, 40.0, S["age"])
        S["nh_plan"] = np.maximum(S["nh_plan"], 24)
        S["lab_phase"] = S["lab_phase"] % S["lab_every"]
        # onset = midnight of the antibiotic day or the culture time; INTIME in the first hour of bin 0
        t_inf_rel_onset = rng.uniform(-6, 0, n)  # infection recognised up to 6 h before the onset
        onset = EPOCH_2150 + rng.integers(0, 20 * 365, n) * DAY + rng.integers(0, 24 * 60, n) * 60
        self.onset = onset
        self.t0 = onset - 24 * H
        self.intime = self.t0 + rng.integers(0, 50, n) * 60
        S["inf_hour"] = np.where(t_inf_rel_onset + 24 <= 0, -1, np.round(24 + t_inf_rel_onset)).astype(np.int64)
        S["inf_hour"] = np.maximum(S["inf_hour"], 0)
        abx_hour = 24 + rng.uniform(0, 4, n)
        z0 = pop.initial_latent(rng, S, np.full(n, 1.0))
        self.S = S
        self.batch = StayBatch(z0, S, S["nh_plan"], np.full(n, -24), abx_hour, [seed, 202], params.interaction,
                               params.confounder)
        self.step_i = 0
        self.done = np.zeros(n, bool)
        self.ids = {"subject_id": 1_000_000 + np.arange(n), "hadm_id": 2_000_000 + np.arange(n),
                    "icustay_id": 3_000_000 + np.arange(n)}
        self._outcome = None

    # --------------------------------------------------------------------------------------------
    def static_tables(self) -> dict[str, pd.DataFrame]:
        S = self.S
        n = self.n
        dob = (self.intime - (S["age"] * 365.25 * DAY).astype(np.int64)) // DAY * DAY
        ts = lambda x: pd.to_datetime(np.asarray(x, np.int64), unit="s")  # noqa: E731
        nat = pd.Series(pd.NaT, index=range(n), dtype="datetime64[s]")
        pat = pd.DataFrame({"subject_id": self.ids["subject_id"], "gender": np.where(S["female"], "F", "M"),
                            "dob": ts(dob), "dod": nat, "dod_hosp": nat, "dod_ssn": nat,
                            "expire_flag": np.zeros(n, np.int8)})
        adm = pd.DataFrame({"subject_id": self.ids["subject_id"], "hadm_id": self.ids["hadm_id"],
                            "admittime": ts(self.intime - 6 * H), "dischtime": nat, "deathtime": nat,
                            "hospital_expire_flag": np.zeros(n, np.int8)})
        icu = pd.DataFrame({**self.ids, "dbsource": np.array(["carevue", "metavision", "both"])[S["system"]],
                            "first_careunit": "MICU", "intime": ts(self.intime), "outtime": nat,
                            "los": np.full(n, np.nan)})
        return {"patients": pat, "admissions": adm, "icustays": icu,
                "onset": pd.DataFrame({"icustay_id": self.ids["icustay_id"], "onset": ts(self.onset)})}

    def _run_bin(self, fluid=None, vaso=None):
        b = self.batch
        h0 = b.h
        for _ in range(4):
            b.advance(fluid, vaso)  # doses are taken at the bin's decision hour only
        return self._events(h0)

    def _events(self, h0):
        b = self.batch
        obs, fl, va, vent, dec = (np.stack(x[h0:h0 + 4]) for x in (b.rec_obs, b.rec_fluid, b.rec_vaso, b.rec_vent,
                                                                    b.rec_dec))
        alive_h = np.array([(b.death_hour < 0) | (b.death_hour >= h) for h in range(h0, h0 + 4)])
        active = alive_h & (np.arange(h0, h0 + 4)[:, None] < b.nh[None, :]) & ~self.done[None, :]
        end = np.where(b.death_hour >= 0, self.t0 + b.death_hour * H + 1800, self.t0 + b.nh * H - 60)
        ext = np.where((b.extubated_at >= h0) & (b.extubated_at < h0 + 4), b.extubated_at - h0, -1)
        rng = np.random.default_rng([self.seed, 303, h0])
        ch = charting.Charter(rng, obs, fl, va, vent, dec, active, self.t0 + h0 * H, self.intime, end, self.S["system"],
                              self.S, np.full(self.n, -24 + h0), ext).run()
        return self._frames(ch)

    def _frames(self, ch) -> dict[str, pd.DataFrame]:
        keymap = {"chartevents": ch.ce, "labevents": ch.le, "outputevents": ch.out, "inputevents_cv": ch.icv,
                  "inputevents_mv": ch.imv, "procedureevents_mv": ch.pe}
        out = {}
        for table, rows in keymap.items():
            cols = INTERIM[table]
            d = rows.build(["stay"] + [c for c in cols if c not in ("subject_id", "hadm_id", "icustay_id")])
            st = d.pop("stay").astype(np.int64)
            df = pd.DataFrame({c: self.ids[c][st] for c in ("subject_id", "hadm_id", "icustay_id") if c in cols})
            for c in cols:
                if c in df:
                    continue
                v = d.get(c)
                if c in ("charttime", "starttime", "endtime"):
                    df[c] = pd.to_datetime(np.asarray(v, np.int64), unit="s")
                elif c in ("error", "iserror"):
                    df[c] = np.zeros(len(st), np.int8)
                elif str(cols[c]) in ("double", "int32", "int8"):
                    df[c] = pd.to_numeric(pd.Series(v, dtype=object), errors="coerce").to_numpy()
                else:
                    df[c] = pd.Series(v, dtype=object).astype("string")
            out[table] = df[list(cols)]
        return out

    # --------------------------------------------------------------------------------------------
    def reset(self) -> dict[str, pd.DataFrame]:
        """Bin 0 (onset - 24 h .. - 20 h) under the clinician; returns its events plus the static tables."""
        ev = self._run_bin()
        ev.update(self.static_tables())
        self.step_i = 1
        self._update_done()
        return ev

    def step(self, fluid_ml, vaso) -> dict[str, pd.DataFrame]:
        """Give the next bin's doses (fluid mL per bin, NE-eq ug/kg/min; arrays over stays); returns its events."""
        if self.step_i >= N_BINS:
            raise RuntimeError("the episode is over (18 bins); call outcome()")
        f = np.where(self.done, 0.0, np.asarray(fluid_ml, float))
        v = np.where(self.done, 0.0, np.asarray(vaso, float))
        ev = self._run_bin(f, v)
        self.step_i += 1
        self._update_done()
        return ev

    def _update_done(self):
        b = self.batch
        self.done = self.done | (b.death_hour >= 0) | (b.h >= b.nh) | (self.step_i >= N_BINS)

    def clinician_doses(self):
        """What the clinician would give in the next bin (for rolling out the clinician's own policy)."""
        return self.batch.clinician_doses(self.batch.h)

    def outcome(self) -> np.ndarray:
        """True death (icu48_or_hospital) per stay: the rest of the stay runs under the clinician."""
        if self._outcome is None:
            b = self.batch
            b.record = False
            while ((b.death_hour < 0) & (b.h < b.nh)).any():
                b.advance()
            died_icu = b.death_hour >= 0
            u = np.random.default_rng([self.seed, 404]).random(self.n)
            post = 1 / (1 + np.exp(-(-4.6 + ph.severity(b.z))))
            self._outcome = died_icu | (u < post)
        return self._outcome


def rollout(policy: Callable | str, n: int, seed: int, params: SynthParams | None = None,
            progress: bool | None = None) -> dict:
    """Roll out ``policy`` on n new septic patients. policy: 'clinician', or a callable
    ``policy(history: dict[str, list[DataFrame]], world) -> (fluid_ml, vaso)`` called before each bin 1..17.
    Returns {'died': bool array, 'survival': mean survival, 'value': 100 x survival, 'se': Monte-Carlo SE}."""
    w = RolloutWorld(n, seed, params)
    hist: dict[str, list] = {}
    ev = w.reset()
    for k, v in ev.items():
        hist.setdefault(k, []).append(v)
    for _ in tqdm(range(1, N_BINS), desc="roll-out", disable=None if progress is None else not progress):
        if w.done.all():
            break
        if isinstance(policy, str) and policy == "clinician":
            f, v = w.clinician_doses()
        else:
            f, v = policy(hist, w)
        ev = w.step(f, v)
        for k, x in ev.items():
            hist.setdefault(k, []).append(x)
    died = w.outcome()
    s = 1 - died.mean()
    return {"died": died, "survival": float(s), "value": 100 * float(s),
            "se": 100 * float(np.sqrt(s * (1 - s) / n))}
