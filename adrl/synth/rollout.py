"""Ground-truth roll-outs: step N new septic patients bin by bin under any policy, with fixed exogenous noise.

    world = RolloutWorld(n=5000, seed=12345, params=cfg.synth)
    ev = world.reset()                       # events of bin 0 (treated by the clinician, as in the data)
    while not world.done.all():
        ev = world.step(fluid_ml, vaso)      # doses for the next bin: arrays over stays
    died = world.outcome()                   # icu48_or_hospital, per stay

The roll-out stays are septic stays drawn as the world draws them (same INTIME-to-onset timing): some are
admitted days before the onset, some after onset - 24 h. The clock is the cohort grid: step j is bin j
(onset - 24 h + 4 j) for every stay. Until a stay is admitted the policy's doses for it are ignored, and
its first (partial) bin is treated by the clinician, as in the data. The episode ends at onset + 48 h, at
death or at ICU discharge; the rest of the stay then runs under the clinician (uncharted) to decide the
outcome. All noise comes from
generators keyed by (seed, hour, purpose), so two policies see the same patients and the same noise.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa

from ..mimic.schema import INTERIM
from ..progress import Progress
from . import charting
from . import physiology as ph
from . import population as pop
from .engine import StayBatch
from .params import SynthParams

H, DAY = 3600, 86400
N_BINS = 18
EPOCH_2150 = int(np.datetime64("2150-01-01T00:00:00", "s").astype(np.int64))


class RolloutWorld:
    def __init__(self, n: int, seed: int, params: SynthParams | None = None, events: bool = True,
                 cohort_only: bool = False, chart_together: bool = True):
        """``cohort_only``: chart only what the cohort reads (no rows of irrelevant items; every other row is
        the same). ``chart_together``: after :meth:`replicate`, chart all replicas in one pass (each with its own
        generator, so the rows are those of one charter per replica, the reference kept for the tests)."""
        params = params or SynthParams()
        self.chart_together = bool(chart_together)
        self.n, self.seed, self.p = n, seed, params
        self.n0, self.reps = n, 1
        self.events = bool(events)
        self.cohort_only = bool(cohort_only)
        rng = np.random.default_rng([seed, 101])
        # draw septic stays exactly as the world does (same statics, infection timeline, antibiotics, cultures
        # and INTIME-to-onset timing) and keep the first n that the cohort would see: an onset, an adult, and
        # an ICU stay overlapping the trajectory window [onset - 24 h, onset + 48 h)
        m = int(1.5 * n) + 64
        S = pop.sample_statics(rng, m, params.confounder, kind=pop.KIND_SEPTIC)
        tl = pop.infection_timeline(rng, S)
        intime = EPOCH_2150 + rng.integers(0, 20 * 365, m) * DAY + rng.integers(0, DAY // 60, m) * 60
        clk = pop.stay_clock(S, tl, intime)
        z0 = pop.initial_latent(rng, S, tl["t_inf_h"])
        on = clk["onset"]
        outt = clk["t0"] + S["nh_plan"] * H
        ok = np.isfinite(on) & (S["age"] >= 18) & (intime < np.nan_to_num(on) + 48 * H) & \
            (outt > np.nan_to_num(on) - 24 * H)
        sel = np.nonzero(ok)[0][:n]
        if len(sel) < n:
            raise RuntimeError(f"roll-out: only {len(sel)} of {m} drawn septic stays are usable (need {n})")
        S = {k: v[sel] for k, v in S.items()}
        z0, intime, onset = z0[sel], intime[sel], on[sel].astype(np.int64)
        k0 = clk["k0"][sel]                               # admission hour relative to the onset
        hs = min(int(k0.min()), -24)
        hs = -4 * ((-hs + 3) // 4)                        # batch hour 0, relative to the onset, on the bin grid
        h_start = k0 - hs
        self.hs, self.h_start, self.onset, self.intime = hs, h_start, onset, intime
        self.t0 = onset + hs * H                          # absolute time of batch hour 0, per stay
        self.h_bin0 = -24 - hs                            # batch hour at which bin 0 (onset - 24 h) starts
        S["inf_hour"] = np.where(S["inf_hour"] >= 0, S["inf_hour"] + h_start, -1)
        abx_hour = clk["abx_hour"][sel] + h_start
        self.S = S
        self.batch = StayBatch(z0, S, h_start + S["nh_plan"], np.full(n, hs), abx_hour, [seed, 202],
                               params.interaction, params.confounder, record=self.events, h_start=h_start)
        self.step_i = 0
        self.done = np.zeros(n, bool)
        self.ids = {"subject_id": 1_000_000 + np.arange(n), "hadm_id": 2_000_000 + np.arange(n),
                    "icustay_id": 3_000_000 + np.arange(n)}
        self._outcome = None
        self._weight = np.full(n, np.nan)  # last charted weight (kg) of each stay, carried across bins

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

    def _run_bin(self, fluid=None, vaso=None, hours=4):
        b = self.batch
        h0 = b.h
        for _ in range(hours):
            b.advance(fluid, vaso)  # doses are taken at the bin's decision hour only
        return self._events(h0, hours) if self.events else {}

    def _events(self, h0, hours):
        b = self.batch
        sl = slice(h0, h0 + hours)
        obs, fl, va, vent, dec, act = (np.stack(x[sl]) for x in (b.rec_obs, b.rec_fluid, b.rec_vaso, b.rec_vent,
                                                                 b.rec_dec, b.rec_active))
        active = act & ~self.done[None, :]
        end = np.where(b.death_hour >= 0, self.t0 + b.death_hour * H + 1800, self.t0 + b.nh * H - 60)
        ext = np.where((b.extubated_at >= h0) & (b.extubated_at < h0 + hours), b.extubated_at - h0, -1)
        admitted = (self.h_start >= h0) & (self.h_start < h0 + hours)
        n0 = self.n0
        if self.chart_together or self.reps == 1:
            # every replica charts with the original's random numbers: one generator per replica, one pass
            rng = charting.StayRng([np.random.default_rng([self.seed, 303, h0]) for _ in range(self.reps)], n0)
            ch = charting.Charter(rng, obs, fl, va, vent, dec, active, self.t0 + h0 * H, self.intime, end,
                                  self.S["system"], self.S, np.full(self.n, self.hs + h0), ext, admitted=admitted,
                                  weight_before=self._weight, cohort_only=self.cohort_only).run()
            self._weight = ch.weight_last
            return self._frames(ch, by_replica=self.reps > 1)
        charters = []
        for r in range(self.reps):  # the reference: one charter per replica
            sl = slice(r * n0, (r + 1) * n0)
            rng = np.random.default_rng([self.seed, 303, h0])
            charters.append(charting.Charter(
                rng, obs[:, sl], fl[:, sl], va[:, sl], vent[:, sl], dec[:, sl], active[:, sl], self.t0[sl] + h0 * H,
                self.intime[sl], end[sl], self.S["system"][sl], {k: v[sl] for k, v in self.S.items()},
                np.full(n0, self.hs + h0), ext[sl], admitted=admitted[sl], weight_before=self._weight[sl],
                cohort_only=self.cohort_only).run())
        self._weight = np.concatenate([ch.weight_last for ch in charters])
        return self._frames(_merged(charters, n0))

    def replicate(self, reps: int) -> None:
        """After :meth:`reset`: copy every stay ``reps`` times (copy r of stay i is stay r * n + i, with its own
        ids), so ``reps`` policies act on the same patients and noise in one batch."""
        if self.reps != 1 or self.step_i != 1:
            raise RuntimeError("RolloutWorld.replicate: call once, right after reset()")
        def tile(a):
            return np.concatenate([a] * reps, axis=0)

        self.S = {k: tile(v) for k, v in self.S.items()}
        for name in ("onset", "intime", "h_start", "t0", "done", "_weight"):
            setattr(self, name, tile(getattr(self, name)))
        self.batch.replicate(reps, self.S)
        self.reps = reps
        self.n = self.n0 * reps
        self.ids = {"subject_id": 1_000_000 + np.arange(self.n), "hadm_id": 2_000_000 + np.arange(self.n),
                    "icustay_id": 3_000_000 + np.arange(self.n)}

    def _frames(self, ch, by_replica: bool = False) -> dict[str, pd.DataFrame]:
        """Interim frames of a charter's rows; ``by_replica``: rows of replica 0 first, then replica 1, ...,
        each replica's in the charter's order (the order of one charter per replica, merged)."""
        keymap = {"chartevents": ch.ce, "labevents": ch.le, "outputevents": ch.out, "inputevents_cv": ch.icv,
                  "inputevents_mv": ch.imv, "procedureevents_mv": ch.pe}
        out = {}
        for table, rows in keymap.items():
            cols = INTERIM[table]
            d = rows.build(["stay"] + [c for c in cols if c not in ("subject_id", "hadm_id", "icustay_id")]
                           + (["vcode"] if "value" in cols and table in ("chartevents", "labevents") else []))
            if by_replica:  # reorder numbers and codes, never the object columns themselves
                order = charting.replica_order(np.asarray(d["stay"], np.int64) // self.n0, self.reps)
                take = lambda a: a[order]  # noqa: E731
            else:
                take = lambda a: a  # noqa: E731
            st = take(d.pop("stay").astype(np.int64))
            data = {c: self.ids[c][st] for c in ("subject_id", "hadm_id", "icustay_id") if c in cols}
            if "vcode" in d:  # text codes and each distinct number's text: no Python string per row
                codes, cats = charting.value_strings(d["value"], d.pop("vcode"))
                data["value"] = _string_column(take(codes), cats)
            for c in cols:
                if c in data:
                    continue
                v = d.get(c)
                if c in ("charttime", "starttime", "endtime"):
                    data[c] = pd.to_datetime(take(np.asarray(v, np.int64)), unit="s")
                elif c in ("error", "iserror"):
                    data[c] = np.zeros(len(st), np.int8)
                elif str(cols[c]) in ("double", "int32", "int8"):
                    data[c] = take(_numeric_column(v))
                else:
                    codes, uniq = pd.factorize(np.asarray(v, object))
                    data[c] = _string_column(take(codes), [str(u) for u in uniq])
            out[table] = pd.DataFrame({c: data[c] for c in cols})
        return out

    # --------------------------------------------------------------------------------------------
    def reset(self) -> dict[str, pd.DataFrame]:
        """Everything up to the end of bin 0 (onset - 20 h) under the clinician: the ICU hours before the
        trajectory window of stays admitted earlier, and bin 0. Returns their events plus the static tables."""
        ev = self._run_bin(hours=self.h_bin0 + 4)
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

    def observed(self) -> dict[str, np.ndarray]:
        """What the bedside clinician sees now (arrays over stays): the last charted MAP (mmHg), SpO2 (%) and
        lactate (mmol/L), urine output of the last 4 h (mL), IV fluid given so far (mL) and the running
        vasopressor dose (NE-eq ug/kg/min). The clinician policy decides from exactly these."""
        f = self.batch.features()
        f.pop("U")
        return {k: np.array(v, copy=True) for k, v in f.items()}

    def clinician_doses(self):
        """What the clinician would give in the next bin (for rolling out the clinician's own policy)."""
        return self.batch.clinician_doses(self.batch.h)

    def outcome(self) -> np.ndarray:
        """True death (icu48_or_hospital) per stay: the rest of the stay runs under the clinician."""
        if self._outcome is None:
            b = self.batch
            b.record = False
            # only the stays still in the ICU advance (each stay's course depends on its own state and noise);
            # the batch shrinks to them every day
            idx = np.flatnonzero((b.death_hour < 0) & (b.h < b.nh))
            while len(idx):
                sub = b.take(idx)
                for _ in range(24):
                    sub.advance()
                b.put(idx, sub)
                idx = idx[(sub.death_hour < 0) & (sub.h < sub.nh)]
            died_icu = b.death_hour >= 0
            u = np.tile(np.random.default_rng([self.seed, 404]).random(self.n0), self.reps)
            post = ph.post_icu_death_prob(b.z)
            self._outcome = died_icu | (u < post)
        return self._outcome


def _string_column(codes: np.ndarray, cats: list) -> pd.arrays.ArrowStringArray:
    """The column ``cats[codes]`` (code < 0: missing) as the "string" dtype, built from the codes (what
    ``pd.Series(cats[codes], dtype=object).astype("string")`` gives, without a Python string per row)."""
    codes = np.asarray(codes, np.int32)
    arr = pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0), pa.array(cats, pa.string()))
    return pd.arrays.ArrowStringArray(pa.chunked_array([arr.cast(pa.string())]))


def _numeric_column(v) -> np.ndarray:
    """``pd.to_numeric(pd.Series(v, dtype=object), errors="coerce")`` without the object round trip for
    arrays that are numeric already."""
    if isinstance(v, np.ndarray) and v.dtype.kind == "f":
        return v.astype(np.float64)
    if isinstance(v, np.ndarray) and v.dtype.kind in "iu":
        return v.astype(np.int64)
    return pd.to_numeric(pd.Series(v, dtype=object), errors="coerce").to_numpy()


def _merged(charters: list, n0: int):
    """One charter-like object whose row tables hold the rows of each replica's charter, stays renumbered."""
    out = charters[0].__class__.__new__(charters[0].__class__)
    for table in ("ce", "le", "out", "icv", "imv", "pe"):
        rows = charting.Rows()
        for r, ch in enumerate(charters):
            rows.parts += [{**p, "stay": p["stay"] + r * n0} for p in getattr(ch, table).parts]
        setattr(out, table, rows)
    return out


def rollout(policy: Callable | str, n: int, seed: int, params: SynthParams | None = None,
            progress: bool | None = None, events: bool = True) -> dict:
    """Roll out ``policy`` on n new septic patients. policy: 'clinician', or a callable
    ``policy(history: dict[str, list[DataFrame]], world) -> (fluid_ml, vaso)`` called before each bin 1..17.
    ``events=False`` skips charting (history stays empty; the policy reads ``world.observed()``), which is
    about ten times faster. The same (n, seed, params) give the same patients and noise whatever the policy.
    Returns {'died': bool array, 'survival': mean survival, 'value': 100 x survival, 'se': Monte-Carlo SE}."""
    w = RolloutWorld(n, seed, params, events=events)
    hist: dict[str, list] = {}
    ev = w.reset()
    for k, v in ev.items():
        hist.setdefault(k, []).append(v)
    for _ in Progress(range(1, N_BINS), desc=f"roll-out of {n:,} patients", unit="4-h steps",
                      logger="adrl.synth", enabled=progress):
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
