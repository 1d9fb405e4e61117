"""The synthetic MIMIC-III world: simulate a hospital's ICU stays and write MIMIC-III v1.4 tables.

Memory is flat in the number of stays: stays are simulated in chunks of at most CHUNK_HOURS padded stay-hours.
Pass 1 (``World(...)``) simulates each chunk, keeps in memory only the per-stay outcomes (death, discharge,
SOFA, doses) needed to build patients and admissions, and stores the chunk's recorded hours (float32) in a
scratch directory; pass 2 (``World.write``) charts each chunk from there and streams its rows to the tables,
ROW_IDs continuing across chunks. (All noise is keyed by seed, chunk and hour: ``_simulate`` is repeatable.)
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import time
import weakref
from pathlib import Path

import numpy as np
import pandas as pd

from ..progress import Progress
from . import catalogue as cat
from . import charting
from . import population as pop
from .engine import StayBatch
from .params import SynthParams
from .physiology import post_icu_death_prob

log = logging.getLogger("adrl.synth")
H, DAY = 3600, 86400
CHUNK_HOURS = 100_000   # padded stay-hours simulated and charted at once (bounds memory)
CHUNK_STAYS = 4000
EPOCH_2100 = int(np.datetime64("2100-01-01T00:00:00", "s").astype(np.int64))


class World:
    """All stays of one synthetic hospital, simulated and charted (call :meth:`write` to save the tables)."""

    def __init__(self, params: SynthParams, progress: bool | None = None):
        self.p = params
        n = params.stays
        rng = np.random.default_rng([params.seed, 11])
        S = pop.sample_statics(rng, n, params.confounder)
        tl = pop.infection_timeline(rng, S)
        # absolute INTIME: a random shifted date in 2100-2200 and time of day; later stays of the same
        # admission or subject are moved by whole days only (so STARTDATE midnights keep their meaning)
        intime = EPOCH_2100 + rng.integers(0, 100 * 365, n) * DAY + rng.integers(0, DAY // 60, n) * 60
        clk = pop.stay_clock(S, tl, intime)
        onset, t0, k0, nh, abx_hour = clk["onset"], clk["t0"], clk["k0"], S["nh_plan"], clk["abx_hour"]
        abx, cult = tl["abx"], tl["cult"]
        self.onset = onset  # absolute seconds, NaN = no suspected infection
        z0 = pop.initial_latent(rng, S, tl["t_inf_h"])
        self.S, self.tl, self.intime, self.t0, self.k0, self.nh = S, tl, intime, t0, k0, nh
        self.abx, self.cult = abx, cult
        self.z0, self.abx_hour = z0, abx_hour
        # ---------------------------------------------------------------- pass 1: outcomes, chunk by chunk
        # (only per-stay facts are kept; write() simulates each chunk again, identically, to chart it)
        t_sim = time.time()
        self.death_s = np.full(n, -1, np.int64)
        self.out_s = np.zeros(n, np.int64)
        self.post_p = np.zeros(n)
        self.sofa_max = np.zeros(n, np.int64)
        self.vent_any = np.zeros(n, bool)
        dec_fl, dec_va = [], []
        # the recorded hours of each chunk go to a scratch directory (float32 .npy), so that write() charts
        # them without simulating again; removed with the World
        self._cache = Path(tempfile.mkdtemp(prefix="adrl_synth_"))
        weakref.finalize(self, shutil.rmtree, str(self._cache), True)
        for c, idx in enumerate(Progress(self.chunks(), desc="synthesize: simulate", unit="chunks", logger=log,
                                         enabled=progress)):
            b, active, end = self._simulate(c, idx)
            obs, fl, va, vent, dec, sofa = b.stacked()
            np.savez(self._cache / f"chunk{c}.npz", obs=obs, fl=fl, va=va, vent=vent, dec=dec, active=active, end=end,
                     ext=b.extubated_at)
            dead = b.death_hour >= 0
            self.death_s[idx] = np.where(dead, end, -1)
            self.out_s[idx] = end
            self.post_p[idx] = post_icu_death_prob(b.z)
            # SOFA of the sepsis window (truth: onset -48 h .. +24 h)
            hrs = (t0[idx][None, :] + np.arange(active.shape[0])[:, None] * H)
            on = onset[idx]
            win = active & np.isfinite(on)[None, :] & (hrs >= on[None, :] - 48 * H) & (hrs < on[None, :] + 24 * H)
            self.sofa_max[idx] = np.where(win, sofa, 0).max(0)
            self.vent_any[idx] = vent.any(0)
            dec_fl.append((fl * 4)[dec])  # the bin's fluid volume and dose at each decision (summary)
            dec_va.append(va[dec])
            del b, obs, fl, va, vent, dec, sofa
        self._dec_doses = (np.concatenate(dec_fl), np.concatenate(dec_va))
        self.sim_seconds = time.time() - t_sim
        self._structure(rng)

    def chunks(self) -> list[np.ndarray]:
        """Stays simulated together: similar lengths of stay (sorted), at most CHUNK_HOURS padded stay-hours and
        CHUNK_STAYS stays per chunk, so the memory of a chunk does not grow with the size of the world."""
        order = np.argsort(self.nh, kind="stable")
        nh = self.nh[order]
        out, i = [], 0
        while i < len(order):
            # sorted ascending, so the padded size of order[i:j] is (j - i) * nh[j - 1]
            j = i + 1
            while j < len(order) and j - i < CHUNK_STAYS and (j + 1 - i) * nh[j] <= CHUNK_HOURS:
                j += 1
            out.append(order[i:j])
            i = j
        return out

    def _simulate(self, c: int, idx: np.ndarray):
        """Simulate chunk c (stays idx) hour by hour; deterministic in (seed, c). Returns batch, active, end."""
        p, S, t0, nh = self.p, self.S, self.t0, self.nh
        Sc = {k: v[idx] for k, v in S.items()}
        b = StayBatch(self.z0[idx], Sc, nh[idx], self.k0[idx], self.abx_hour[idx], [p.seed, 23, c],
                      p.interaction, p.confounder)
        active = np.stack([b.advance() for _ in range(int(nh[idx].max()))])
        dead = b.death_hour >= 0
        dsec = t0[idx] + b.death_hour * H + np.round(b.death_frac * 59 * 60).astype(np.int64) + 60
        end = np.where(dead, dsec, t0[idx] + (nh[idx] - 1) * H + (np.arange(len(idx)) * 7919 % 58 + 1) * 60)
        end = np.maximum(end, self.intime[idx] + 2 * H)
        return b, active, end

    def iter_events(self, progress: bool | None = None):
        """Pass 2: per chunk (its recorded hours read back from the scratch directory), the charted events as {table key: column dict} (``stay`` = world stay index;
        times in seconds before the admission shift). The CareVue culture rows of CHARTEVENTS come last."""
        for c, idx in enumerate(Progress(self.chunks(), desc="synthesize: chart + write", unit="chunks",
                                         logger=log, enabled=progress)):
            with np.load(self._cache / f"chunk{c}.npz") as r:
                obs, fl, va, vent, dec, active, end, ext = (r[k] for k in ("obs", "fl", "va", "vent", "dec", "active",
                                                                          "end", "ext"))
            Sc = {k: v[idx] for k, v in self.S.items()}
            # chart on the simulation clock (before the admission shift of _structure; _frame adds the shift)
            sh = self.shift[idx]
            ch = charting.Charter(np.random.default_rng([self.p.seed, 31, c]), obs, fl, va, vent, dec, active,
                                  self.t0[idx] - sh, self.intime[idx] - sh, end, self.S["system"][idx], Sc,
                                  self.k0[idx], ext).run()
            del obs, fl, va, vent, dec
            out = {}
            for key in ("ce", "le", "out", "icv", "imv", "pe"):
                parts = getattr(ch, key).parts
                for part in parts:
                    part["stay"] = idx[part["stay"]]
                out[key] = parts
            yield c, out
        cc = self.cult[self.cult.ce]
        ch = cat.choice("CultureCE", "cv")
        k = ch.pick(np.random.default_rng([self.p.seed, 37]), len(cc))
        yield len(self.chunks()), {"ce": [{"stay": cc.stay.to_numpy(), "itemid": ch.itemids[k],
                                           "charttime": cc.time.to_numpy(), "value": np.full(len(cc), np.nan),
                                           "vcode": charting.TEXT.encode(np.full(len(cc), "Sent", object)),
                                           "valuenum": np.full(len(cc), np.nan),
                                           "valueuom": np.full(len(cc), None, object)}]}

    # ------------------------------------------------------------------------------------------------
    def _structure(self, rng):
        """Patients and admissions: second ICU stays, readmissions, deaths after the ICU, dates of death."""
        n = self.p.stays
        S = self.S
        died_icu = self.death_s >= 0
        died_post = ~died_icu & (rng.random(n) < self.post_p)
        post_los = rng.uniform(1, 8, n) * DAY
        self.disch = np.where(died_icu, self.death_s, self.out_s + post_los.astype(np.int64))
        post_death = self.out_s + (rng.uniform(0.1, 0.9, n) * post_los).astype(np.int64)
        self.death_hosp = np.where(died_icu, self.death_s, np.where(died_post, post_death, -1))
        self.disch = np.where(died_post, post_death, self.disch)
        # structure: child stays attach to a surviving parent (same admission or a later one)
        role = rng.choice(3, size=n, p=[0.86, 0.05, 0.09])  # 0 own, 1 2nd stay of admission, 2 later admission
        survivors = np.nonzero((self.death_hosp < 0) & (role == 0) & (S["age"] >= 18))[0]
        child = np.nonzero(role > 0)[0]
        if len(survivors) == 0:
            child = child[:0]
        parent = rng.choice(survivors, size=len(child), replace=len(child) > len(survivors)) if len(child) else child
        _, first = np.unique(parent, return_index=True)
        child, parent = child[first], parent[first]
        role_c = role[child]
        self.parent = np.full(n, -1)
        self.parent[child] = parent
        gap = np.where(role_c == 1, rng.integers(1, 5, len(child)), rng.integers(5, 60, len(child)))
        ref = np.where(role_c == 1, self.out_s[parent], self.disch[parent])
        shift_days = np.ceil((ref - self.intime[child]) / DAY).astype(np.int64) + gap
        shift = np.zeros(n, np.int64)
        shift[child] = shift_days * DAY
        self.shift = shift
        for a in ("intime", "t0", "out_s", "disch"):
            setattr(self, a, getattr(self, a) + shift)
        self.death_s = np.where(self.death_s >= 0, self.death_s + shift, -1)
        self.death_hosp = np.where(self.death_hosp >= 0, self.death_hosp + shift, -1)
        self.onset = self.onset + shift
        # ids
        stay_ids = 200000 + rng.choice(99999, size=n, replace=False)
        self.icustay_id = stay_ids
        adm_of = np.arange(n)
        same = child[role_c == 1]
        adm_of[same] = self.parent[same]
        subj_of = np.arange(n)
        subj_of[child] = self.parent[child]
        hadm_u = 100000 + rng.choice(99999, size=n, replace=False)
        subj_u = 100 + rng.choice(99899, size=n, replace=False)
        self.hadm_id = hadm_u[adm_of]
        self.subject_id = subj_u[subj_of]
        self.adm_of, self.subj_of = adm_of, subj_of
        # admission-level times and death (a child of the same admission may die: the admission dies)
        adm = pd.DataFrame({"adm": adm_of, "intime": self.intime, "disch": self.disch, "death": self.death_hosp})
        admission_delay = rng.uniform(0.3, 36, n) * H
        g = adm.groupby("adm")
        a = pd.DataFrame({"intime": g.intime.min(), "disch": g.disch.max(), "death": g.death.max()})
        a["admit"] = a.intime - admission_delay[a.index.to_numpy()].astype(np.int64)
        a["admit"] = a.admit // 60 * 60
        self.adm = a
        # DOB: age at the subject's first INTIME
        subj_first = pd.Series(self.intime).groupby(subj_of).min()
        age = S["age"][subj_first.index.to_numpy()]
        dob = subj_first.to_numpy() - (age * 365.25 * DAY).astype(np.int64)
        self.dob = pd.Series(dob // DAY * DAY, index=subj_first.index)
        # date of death: in hospital, or later (social security) for some survivors
        sd = pd.DataFrame({"subj": subj_of[a.index.to_numpy()], "death": a.death.to_numpy(), "disch": a.disch.to_numpy()})
        gs = sd.groupby("subj")
        d = pd.DataFrame({"death": gs.death.max(), "last": gs.disch.max()})
        later = (d.death < 0) & (rng.random(len(d)) < 0.3)
        d["dod_ssn_late"] = np.where(later, d["last"] + (rng.uniform(5, 1500, len(d)) * DAY).astype(np.int64), -1)
        self.subj_death = d

    # ------------------------------------------------------------------------------------------------
    def write(self, out_dir, progress: bool | None = None) -> dict:
        """Write every table to ``out_dir`` (atomically); returns rows per table."""
        from .tables import write_world

        return write_world(self, Path(out_dir), progress)

    def summary(self) -> dict:
        n = self.p.stays
        septic = np.isfinite(self.onset) & (self.sofa_max >= 2)
        adult_first = (self.S["age"] >= 18) & ~((self.parent >= 0) & (self.adm_of != np.arange(n)))
        died = self.death_hosp >= 0
        fl, va = self._dec_doses
        nz = va[va > 0]
        q = np.quantile(nz, [0.25, 0.5, 0.75]) if len(nz) else np.array([0.1, 0.2, 0.3])
        fb = np.digitize(fl, [1e-9, 500.0001, 1000.0001, 2000.0001])
        vb = np.where(va > 0, 1 + np.searchsorted(q, va, side="left"), 0)
        vb = np.minimum(vb, 4)
        table = np.bincount(fb * 5 + vb, minlength=25)
        return {"stays": int(n), "septic_truth": int(septic.sum()),
                "septic_fraction": float(septic.mean()),
                "septic_first_adult": int((septic & adult_first).sum()),
                "mortality_hospital_all": float(died.mean()),
                "mortality_septic": float(died[septic].mean()) if septic.any() else float("nan"),
                "carevue_stays": int((self.S["system"] == 0).sum()),
                "metavision_stays": int((self.S["system"] == 1).sum()),
                "both_stays": int((self.S["system"] == 2).sum()),
                "decisions": int(len(fl)), "no_vaso_fraction": float((va == 0).mean()),
                "vaso_quartiles": [float(x) for x in q],
                "action_counts": [int(x) for x in table], "sim_seconds": self.sim_seconds}
