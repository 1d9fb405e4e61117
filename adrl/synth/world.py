"""The synthetic MIMIC-III world: simulate a hospital's ICU stays and write MIMIC-III v1.4 tables."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..io import atomic_path
from . import catalogue as cat
from . import charting
from . import population as pop
from .engine import StayBatch
from .params import SynthParams
from .writer import Col, const, write_table

log = logging.getLogger("adrl.synth")
H, DAY = 3600, 86400
CHUNK = 1500
EPOCH_2100 = int(np.datetime64("2100-01-01T00:00:00", "s").astype(np.int64))
CAREUNITS = np.array(["MICU", "SICU", "CCU", "TSICU", "CSRU"], object)


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
        abx, cult = tl["abx"], tl["cult"]
        st_a, st_c = abx.stay.to_numpy(), cult.stay.to_numpy()
        abx_abs = intime[st_a] + np.round(abx.t_h.to_numpy() * H).astype(np.int64)
        abx["startdate"] = abx_abs // DAY * DAY
        cult_abs = intime[st_c] + cult.t_s.to_numpy().astype(np.int64)
        cult["time"] = cult_abs
        cult["micro_time"] = np.where(cult.date_only, cult_abs // DAY * DAY, cult_abs)
        sysab = abx[abx.systemic == 1]
        onset = pop.onset_relative(pd.DataFrame({"stay": sysab.stay, "t": sysab.startdate}),
                                   pd.concat([pd.DataFrame({"stay": cult.stay, "t": cult.micro_time}),
                                              pd.DataFrame({"stay": cult.stay[cult.ce | cult.pe],
                                                            "t": cult.time[cult.ce | cult.pe]})]), n)
        self.onset = onset  # absolute seconds, NaN = no suspected infection
        anchor = np.where(np.isnan(onset), intime, np.nan_to_num(onset)).astype(np.int64)
        k0 = np.floor((intime - anchor) / H).astype(np.int64)
        t0 = anchor + k0 * H
        nh = S["nh_plan"]
        S["inf_hour"] = np.where(np.isfinite(tl["t_inf_h"]),
                                 np.round((intime + np.nan_to_num(tl["t_inf_h"], posinf=0) * H - t0) / H), -10**6
                                 ).astype(np.int64)
        S["inf_hour"] = np.where(tl["t_inf_h"] <= 0, -1, S["inf_hour"])
        abx_hour = np.where(np.isfinite(tl["t_abx_h"]), (intime + np.nan_to_num(tl["t_abx_h"], posinf=0) * H - t0) / H,
                            np.inf)
        z0 = pop.initial_latent(rng, S, tl["t_inf_h"])
        self.S, self.tl, self.intime, self.t0, self.k0, self.nh = S, tl, intime, t0, k0, nh
        self.abx, self.cult = abx, cult
        # ---------------------------------------------------------------- simulate in chunks of stays
        t_sim = time.time()
        order = np.argsort(nh, kind="stable")
        self.tables: dict[str, list] = {k: [] for k in ("ce", "le", "out", "icv", "imv", "pe")}
        self.death_s = np.full(n, -1, np.int64)
        self.out_s = np.zeros(n, np.int64)
        self.sev_end = np.zeros(n)
        self.sofa_max = np.zeros(n, np.int64)
        self.actions = np.zeros(25, np.int64)
        self.vent_any = np.zeros(n, bool)
        chunks = [order[i:i + CHUNK] for i in range(0, n, CHUNK)]
        for c, idx in enumerate(tqdm(chunks, desc="synth: simulate", disable=None if progress is None else not progress)):
            Sc = {k: v[idx] for k, v in S.items()}
            b = StayBatch(z0[idx], Sc, nh[idx], k0[idx], abx_hour[idx], [params.seed, 23, c],
                          params.interaction, params.confounder)
            Hc = int(nh[idx].max())
            act = []
            for _ in range(Hc):
                act.append(b.advance())
            active = np.stack(act)
            obs, fl, va, vent, dec, sofa = b.stacked()
            dead = b.death_hour >= 0
            dsec = t0[idx] + b.death_hour * H + np.round(b.death_frac * 59 * 60).astype(np.int64) + 60
            end = np.where(dead, dsec, t0[idx] + (nh[idx] - 1) * H + (np.arange(len(idx)) * 7919 % 58 + 1) * 60)
            end = np.maximum(end, intime[idx] + 2 * H)
            self.death_s[idx] = np.where(dead, end, -1)
            self.out_s[idx] = end
            from .physiology import severity
            self.sev_end[idx] = severity(b.z)
            # SOFA of the sepsis window (truth: onset -48 h .. +24 h)
            hrs = (t0[idx][None, :] + np.arange(Hc)[:, None] * H)
            on = onset[idx]
            win = active & np.isfinite(on)[None, :] & (hrs >= on[None, :] - 48 * H) & (hrs < on[None, :] + 24 * H)
            self.sofa_max[idx] = np.where(win, sofa, 0).max(0)
            self.vent_any[idx] = vent.any(0)
            # actions per decision (bins) for the summary
            fb = np.digitize(np.where(dec, fl * 4, 0), [1e-9, 500.0001, 1000.0001, 2000.0001])
            self.chart_rng = np.random.default_rng([params.seed, 31, c])
            ch = charting.Charter(self.chart_rng, obs, fl, va, vent, dec, active, t0[idx], intime[idx], end,
                                  S["system"][idx], Sc, k0[idx], b.extubated_at).run()
            for key in self.tables:
                part = getattr(ch, key)
                for p in part.parts:
                    p["stay"] = idx[p["stay"]]
                self.tables[key].extend(part.parts)
            self._dec_doses = getattr(self, "_dec_doses", []) + [(idx, np.where(dec, fl * 4, np.nan), np.where(dec, va, np.nan), active)]
            del fb
        cc = cult[cult.ce]
        ch = cat.choice("CultureCE", "cv")
        k = ch.pick(rng, len(cc))
        self.tables["ce"].append({"stay": cc.stay.to_numpy(), "itemid": ch.itemids[k], "charttime": cc.time.to_numpy(),
                                  "value": np.full(len(cc), "Sent", object), "valuenum": np.full(len(cc), np.nan),
                                  "valueuom": np.full(len(cc), None, object)})
        self.sim_seconds = time.time() - t_sim
        self._structure(rng)

    # ------------------------------------------------------------------------------------------------
    def _structure(self, rng):
        """Patients and admissions: second ICU stays, readmissions, deaths after the ICU, dates of death."""
        n = self.p.stays
        S = self.S
        died_icu = self.death_s >= 0
        post_p = 1 / (1 + np.exp(-(-4.6 + 1.0 * self.sev_end)))
        died_post = ~died_icu & (rng.random(n) < post_p)
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
    def write(self, out_dir) -> dict:
        from .tables import write_world

        return write_world(self, Path(out_dir))

    def summary(self) -> dict:
        n = self.p.stays
        septic = np.isfinite(self.onset) & (self.sofa_max >= 2)
        adult_first = (self.S["age"] >= 18) & ~((self.parent >= 0) & (self.adm_of != np.arange(n)))
        died = self.death_hosp >= 0
        fl, va = [], []
        for idx, f, v, act in self._dec_doses:
            m = ~np.isnan(f)
            fl.append(f[m])
            va.append(v[m])
        fl, va = np.concatenate(fl), np.concatenate(va)
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
