"""Hour-by-hour simulation of a batch of ICU stays under the clinician's (or an agent's) treatment.

A :class:`StayBatch` holds the latent state of n stays that advance together one hour at a time. Hour h of
stay i covers [t0_i + h, t0_i + h + 1) where the tick grid t0_i + k hours is anchored at the stay's
suspected-infection onset (at INTIME for stays without one); decisions are taken at ticks that are whole
multiples of 4 h from the anchor (and at the first hour of the stay), so a cohort bin sees one decision.
"""
from __future__ import annotations

import numpy as np

from . import physiology as ph

OI = ph.OBS_INDEX


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class Clinician:
    """The behaviour policy: fluid volume (mL per 4 h) and NE-eq vasopressor dose from charted values.

    Inputs are what a bedside clinician sees: the last charted MAP, SpO2, lactate, urine output of the last
    bin, fluid given so far and the current dose. ``confounder`` adds a hidden patient latent U that raises
    treatment intensity (and, in the physiology, the death hazard).

    The clinician is deliberately imperfect, in ways visible in the charts: vasopressors start only with some
    probability per bin while hypotension lasts, titration overshoots into toxic doses, and maintenance fluid
    and boluses go on in patients who are already fluid-loaded. A simple rule on the same inputs does better
    (adrl/synth/policies.py, benchmarks/results/synth.md)."""

    def __init__(self, confounder: float = 0.0):
        self.confounder = float(confounder)

    def decide(self, f: dict, u: np.ndarray):
        """f: features (arrays over stays); u: (n, 6) uniforms. Returns (fluid_ml, vaso_dose) for the bin."""
        c = self.confounder * f["U"]
        mapv, lact, spo2 = f["map"], f["lactate"], f["spo2"]
        cumL = f["cum_fluid_ml"] / 1000.0
        cur = f["vaso"]
        z1 = np.sqrt(2) * _erfinv(2 * u[:, 0] - 1)
        z2 = np.sqrt(2) * _erfinv(2 * u[:, 1] - 1)
        # vasopressor: titrate to a MAP of about 68, wean when high, start when hypotension persists
        titr = cur * np.exp(0.05 * (68.0 - mapv) + 0.3 * z1 + 0.2 * c)
        titr = np.where(mapv > 80, titr * 0.55, titr)
        titr = np.where(titr < 0.03, 0.0, np.minimum(titr, 2.5))
        p_start = sigmoid(-2.6 + 0.3 * (64.0 - mapv) + 0.5 * (cumL > 2.0) + 0.4 * (lact > 4) + 0.8 * c)
        start = u[:, 2] < p_start
        dose0 = 0.14 * np.exp(0.8 * z1)
        vaso = np.where(cur > 0, titr, np.where(start, dose0, 0.0))
        # fluids: maintenance/small volumes, boluses for hypotension, hyperlactataemia, oliguria
        s = (0.09 * (68.0 - mapv) + 0.45 * (lact - 2.0) + 0.006 * (160.0 - np.minimum(f["urine4h"], 400))
             - 1.2 * (spo2 < 92) - 0.35 * cumL + 0.8 * c - 0.8)
        bolus = u[:, 3] < sigmoid(s)
        maint = np.where(u[:, 4] < 0.62, 230.0 * np.exp(0.75 * z2), 0.0)
        bol = 900.0 * np.exp(0.7 * np.sqrt(2) * _erfinv(2 * u[:, 5] - 1))
        fluid = np.round(maint + np.where(bolus, bol, 0.0))
        return fluid, np.round(vaso, 4)


class RowsRng:
    """Draws of a generator for ``n_draw`` patients, row ``rows[i]`` for stay i (the ``random`` and
    ``standard_normal`` calls of the engine, whose first dimension is the stay): copies of a patient, or a
    subset of the stays, get the numbers the patient gets in the original batch."""

    def __init__(self, rng: np.random.Generator, n_draw: int, rows: np.ndarray, tiled: int = 0):
        """``tiled``: ``rows`` is ``tiled`` copies of 0 .. n_draw - 1 in order (the draws are copied, not indexed)."""
        self.rng, self.n_draw, self.rows, self.tiled = rng, n_draw, rows, int(tiled)

    def _draw(self, fn, shape):
        shape = (shape,) if np.isscalar(shape) else tuple(shape)
        x = fn((self.n_draw,) + shape[1:])
        return np.concatenate([x] * self.tiled) if self.tiled else x[self.rows]

    def random(self, shape):
        return self._draw(self.rng.random, shape)

    def standard_normal(self, shape):
        return self._draw(self.rng.standard_normal, shape)


def _erfinv(x):
    from scipy.special import erfinv

    return erfinv(np.clip(x, -0.999999, 0.999999))


class StayBatch:
    """n stays advancing together. statics: dict of (n,) arrays (see world.sample_statics)."""

    PER_STAY = ("z", "nh", "h_start", "k0", "abx_hour", "alive", "death_hour", "death_frac", "vent", "extubated_at",
                "fluid_bin", "vaso_bin", "cum_fluid")

    def __init__(self, z0, S, nh, k0, abx_hour, seed_key, interaction=0.0, confounder=0.0, record=True,
                 h_start=None):
        """nh: hour (of the batch clock) at which each stay leaves the ICU; h_start: hour of its admission
        (default 0: every stay starts at batch hour 0); k0: the anchor-relative hour of batch hour 0."""
        self.n = n = z0.shape[0]
        self.z = np.array(z0, np.float64)
        self.S = S
        self.nh = np.asarray(nh)
        self.h_start = np.zeros(n, np.int64) if h_start is None else np.asarray(h_start, np.int64)
        self.k0 = np.asarray(k0)
        self.abx_hour = np.asarray(abx_hour, np.float64)
        self.interaction = float(interaction)
        self.clin = Clinician(confounder)
        self.h = 0
        self.alive = np.ones(n, bool)
        self.death_hour = np.full(n, -1, np.int64)
        self.death_frac = np.zeros(n)
        self.vent = S["vent0"].astype(bool).copy()
        self.extubated_at = np.full(n, -1)
        self.fluid_bin = np.zeros(n)
        self.vaso_bin = np.zeros(n)
        self.cum_fluid = np.zeros(n)
        self.last = {"map": S["map0"].copy(), "spo2": np.full(n, 97.0), "lactate": np.full(n, 1.5),
                     "urine": np.zeros((4, n))}
        self.seed_key = [int(x) for x in seed_key]
        self.reps = 1
        self.rows, self.n_draw = None, n  # noise row of each stay (None: its own)
        self.tiled = 0  # > 0: rows are that many copies of 0 .. n_draw - 1 in order (after replicate)
        self.record = record
        self.rec_obs, self.rec_fluid, self.rec_vaso, self.rec_vent, self.rec_dec = [], [], [], [], []
        self.rec_sofa, self.rec_active = [], []

    # -------------------------------------------------------------------------------------------------
    def rng(self, h: int, purpose: int):
        """Exogenous noise of hour h for one purpose: the same numbers whatever the treatment (CRN). With
        replicas (:meth:`replicate`) every copy of a stay draws the numbers of the original."""
        r = np.random.default_rng([*self.seed_key, h, purpose])
        return r if self.rows is None else RowsRng(r, self.n_draw, self.rows, self.tiled)

    def replicate(self, reps: int, S: dict) -> None:
        """Copy every stay ``reps`` times (copy r of stay i becomes stay r * n + i), state and noise included,
        so each copy can be treated differently on the same patient and noise. ``S``: the tiled statics."""
        if self.reps != 1:
            raise RuntimeError("StayBatch.replicate: already replicated")
        def tile(a, axis=0):
            return np.concatenate([a] * reps, axis=axis)

        for name in self.PER_STAY:
            setattr(self, name, tile(getattr(self, name)))
        self.last = {k: tile(v, axis=1 if k == "urine" else 0) for k, v in self.last.items()}
        self.S = S
        self.rows = np.tile(np.arange(self.n), reps)
        self.tiled = reps
        self.n_draw = self.n
        self.n *= reps
        self.reps = reps

    def take(self, idx: np.ndarray) -> "StayBatch":
        """The stays ``idx`` as a batch of their own, at the same hour, with the same state and noise (to run on
        only the stays that still need hours; not recorded)."""
        b = StayBatch.__new__(StayBatch)
        b.__dict__.update(self.__dict__)
        for name in self.PER_STAY:
            setattr(b, name, getattr(self, name)[idx])
        b.last = {k: (v[:, idx] if k == "urine" else v[idx]) for k, v in self.last.items()}
        b.S = {k: v[idx] for k, v in self.S.items()}
        b.rows = idx if self.rows is None else self.rows[idx]
        b.tiled = 0
        b.n_draw = self.n if self.rows is None else self.n_draw
        b.n = len(idx)
        b.record = False
        return b

    def put(self, idx: np.ndarray, b: "StayBatch") -> None:
        """Write back the state of ``b = self.take(idx)`` after it advanced."""
        for name in self.PER_STAY:
            getattr(self, name)[idx] = getattr(b, name)
        for k, v in b.last.items():
            if k == "urine":
                self.last[k][:, idx] = v
            else:
                self.last[k][idx] = v
        self.h = b.h

    def is_decision(self, h: int) -> np.ndarray:
        return ((self.k0 + h) % 4 == 0) | (h == self.h_start)

    def features(self):
        return {"map": self.last["map"], "spo2": self.last["spo2"], "lactate": self.last["lactate"],
                "urine4h": self.last["urine"].sum(0), "cum_fluid_ml": self.cum_fluid, "vaso": self.vaso_bin,
                "U": self.S["U"]}

    def clinician_doses(self, h: int):
        u = self.rng(h, 1).random((self.n, 6))
        return self.clin.decide(self.features(), u)

    def advance(self, fluid_bin_ml=None, vaso=None):
        """One hour. At decision ticks the bin's doses are (fluid_bin_ml, vaso) when given, else the clinician's.
        A stay's first hour in the ICU is always the clinician's (the agent has not seen the stay yet)."""
        h = self.h
        active = self.alive & (h >= self.h_start) & (h < self.nh)
        dec = self.is_decision(h) & active
        if dec.any():
            agent = dec & (h > self.h_start) if fluid_bin_ml is not None else np.zeros(self.n, bool)
            f = v = None
            if (dec & ~agent).any():
                f, v = self.clinician_doses(h)
            if agent.any():
                fa, va = np.asarray(fluid_bin_ml, np.float64), np.asarray(vaso, np.float64)
                f = fa if f is None else np.where(agent, fa, f)
                v = va if v is None else np.where(agent, va, v)
            self.fluid_bin = np.where(dec, f, self.fluid_bin)
            self.vaso_bin = np.where(dec, v, self.vaso_bin)
        fl_h = np.where(active, self.fluid_bin / 4.0, 0.0)
        va_h = np.where(active, self.vaso_bin, 0.0)
        eps = self.rng(h, 0).standard_normal((self.n, ph.NL))
        abx = np.where(h >= self.abx_hour, self.S["abx_eff"], 0.0)
        seed_inf = active & (self.S["inf_hour"] == h)
        self.z[:, ph.iI] = np.where(seed_inf, np.maximum(self.z[:, ph.iI], self.S["I0"]), self.z[:, ph.iI])
        # observations during this hour are of the state at its start
        o = ph.observe(self.z, va_h, self.S, self.vent)
        m = ph.measure(o, self.rng(h, 2))
        self.last["map"] = np.where(active, m[:, OI["MeanBP"]], self.last["map"])
        self.last["spo2"] = np.where(active, m[:, OI["SpO2"]], self.last["spo2"])
        lab = self.S["lab_phase"] == (self.k0 + h) % self.S["lab_every"]
        self.last["lactate"] = np.where(active & lab, m[:, OI["Lactate"]], self.last["lactate"])
        self.last["urine"] = np.roll(self.last["urine"], 1, axis=0)
        self.last["urine"][0] = np.where(active, m[:, OI["Urine"]], 0.0)
        # ventilation: intubate for lung failure or coma, extubate when better
        ur = self.rng(h, 3).random((self.n, 2))
        P, B = self.z[:, ph.iP], self.z[:, ph.iB]
        intub = active & ~self.vent & ((P > 1.3) | (B > 3.6)) & (ur[:, 0] < 0.5)
        extub = active & self.vent & (P < 0.7) & (B < 2.0) & (ur[:, 1] < 0.15)
        self.vent = (self.vent | intub) & ~extub
        self.extubated_at = np.where(extub, h, self.extubated_at)
        if self.record:
            self.rec_obs.append(m.astype(np.float32))
            self.rec_fluid.append(fl_h.astype(np.float32))
            self.rec_vaso.append(va_h.astype(np.float32))
            self.rec_vent.append(self.vent.copy())
            self.rec_dec.append(dec)
            self.rec_active.append(active)
            self.rec_sofa.append(ph.sofa(o, va_h, self.vent).astype(np.int8))
        self.cum_fluid += fl_h
        znew = ph.hour_step(self.z, fl_h, va_h, abx, eps, self.interaction)
        # death during the hour (hazard of the state at its start), with a fixed uniform per patient-hour
        ud = self.rng(h, 4).random(self.n)
        hz = ph.hazard(self.z, va_h, self.S["risk"] + self.S["conf_risk"])
        die = active & (ud < -np.expm1(-hz))
        self.death_hour = np.where(die, h, self.death_hour)
        self.death_frac = np.where(die, ud / np.maximum(-np.expm1(-hz), 1e-12), self.death_frac)
        self.alive &= ~die
        self.z = np.where(active[:, None], znew, self.z)
        self.h += 1
        return active

    def stacked(self):
        """Recorded hours as arrays: obs (H, n, nobs), fluid/vaso (H, n), vent/dec (H, n), sofa (H, n)."""
        return (np.stack(self.rec_obs), np.stack(self.rec_fluid), np.stack(self.rec_vaso),
                np.stack(self.rec_vent), np.stack(self.rec_dec), np.stack(self.rec_sofa))
