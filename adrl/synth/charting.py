"""From simulated hours to charted rows: which items are charted when, with which units, noise and faults.

Input: the recorded hours of a batch (measured observations (H, n, nobs), hourly fluid/vaso, ventilation,
decision ticks) and per-stay facts. Output: dict table -> dict of column arrays with the interim (lower-case)
column names (times as int64 seconds), plus ``stay`` (index into the batch). world.py turns them into
MIMIC-III CSV tables; rollout.py into interim DataFrames.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import catalogue as cat
from .physiology import OBS_INDEX as OI

SYS = ("cv", "mv", "mv")  # DBSOURCE both charts MetaVision items
GCS_EYE = ["No Response", "To Pain", "To Speech", "Spontaneously"]
GCS_VERBAL = ["No Response", "Incomprehensible sounds", "Inappropriate Words", "Confused", "Oriented"]
GCS_MOTOR = ["No response", "Abnormal extension", "Abnormal Flexion", "Flex-withdraws", "Localizes Pain",
             "Obeys Commands"]
RASS = ["-5 Unarousable", "-4 Deep Sedation", "-3 Moderate Sedation", "-2 Light Sedation", "-1 Drowsy",
        " 0  Alert and Calm"]


class TextCodes:
    """Process-wide dictionary of the text VALUEs the world charts (GCS words, devices, 'Sent', ...).

    Charted VALUEs travel as two columns until the writer: ``value`` (the number to print, NaN for text
    or NULL) and ``vcode`` (index into :attr:`strings`, -1 for a number or NULL). No Python string per row."""

    def __init__(self):
        self.strings: list[str] = []
        self._index: dict[str, int] = {}

    def encode(self, values) -> np.ndarray:
        """int32 codes of an array of strings (None / NaN -> -1)."""
        codes, uniq = pd.factorize(pd.Series(np.asarray(values, object)), use_na_sentinel=True)
        table = np.array([self._code(str(u)) for u in uniq] + [-1], np.int32)
        return table[np.where(codes < 0, len(uniq), codes)]

    def _code(self, s: str) -> int:
        if s not in self._index:
            self._index[s] = len(self.strings)
            self.strings.append(s)
        return self._index[s]


TEXT = TextCodes()


def format_numbers(x: np.ndarray) -> list[str]:
    """Shortest text of already rounded numbers ('98', '7.35', '0.95'): the VALUE format of the charts."""
    return pc.cast(pa.array(np.asarray(x, np.float64) + 0.0), pa.string()).to_pylist()


def value_strings(value: np.ndarray, vcode: np.ndarray):
    """(codes, categories) of the VALUE column: text codes first, then each distinct number formatted once."""
    value = np.asarray(value, np.float64)
    vcode = np.asarray(vcode, np.int32)
    num = (vcode < 0) & ~np.isnan(value)
    inv, uq = pd.factorize(value[num])  # hashing, then sorting the few distinct numbers: np.unique's result
    order = np.argsort(uq, kind="stable")
    rank = np.empty(len(order), np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    base = len(TEXT.strings)
    codes = vcode.copy()
    codes[num] = base + rank[inv]
    return codes, TEXT.strings[:base] + format_numbers(uq[order])


class Rows:
    """Accumulates rows of one table as column arrays. A ``value`` given as strings is stored as text codes
    (``vcode``), a numeric ``value`` as the number to print (see :class:`TextCodes`)."""

    def __init__(self):
        self.parts: list[dict] = []

    def add(self, **cols):
        n = max(len(v) for v in cols.values() if isinstance(v, np.ndarray))
        if not n:
            return
        if "value" in cols and "vcode" not in cols and isinstance(cols["value"], np.ndarray) \
                and cols["value"].dtype == object:
            cols["vcode"] = TEXT.encode(cols["value"])
            cols["value"] = np.full(n, np.nan)
        elif "value" in cols and "vcode" not in cols:
            cols["vcode"] = np.full(n, -1, np.int32)
        self.parts.append({k: (v if isinstance(v, np.ndarray) else np.full(n, v, dtype=object if
                                                                          isinstance(v, str) or v is None
                                                                          else None))
                           for k, v in cols.items()})

    def build(self, columns) -> dict:
        out = {}
        for c in columns:
            arrs = [p[c] if c in p else np.full(len(next(iter(p.values()))), None, object) for p in self.parts]
            out[c] = np.concatenate(arrs) if arrs else np.array([], object)
        return out


def fmt_num(x, dec):
    """The number to print as VALUE of a numeric reading, rounded to ``dec`` decimals."""
    return np.round(np.asarray(x, float), dec) + 0.0


def replica_order(rep: np.ndarray, K: int) -> np.ndarray:
    """The permutation that puts rows in replica order (replica 0's rows first, each replica's in their order):
    a stable sort of small integers, which numpy does as a radix sort."""
    return np.argsort(np.asarray(rep).astype(np.int16 if K < 2 ** 15 else np.int64), kind="stable")


class StayRng:
    """The charting's random numbers for a batch of ``K`` copies of ``n0`` stays (copy r of stay i is stay
    r * n0 + i), each copy drawing from its own generator (``gens[r]``), so the copies are charted in one pass
    and every copy gets exactly the numbers it gets when charted alone (draws of its own sizes, in its order).

    Each draw names where it goes: ``at`` is either a shape whose last axis is the batch's stays (one number per
    stay and hour) or the stay of each drawn row (one number per row, in the rows' order). With one copy this
    is the generator's own call with ``size`` = the shape or the number of rows."""

    def __init__(self, gens, n0: int):
        self.gens, self.n0 = list(gens), int(n0)

    def _draw(self, name: str, at, *args, **kw) -> np.ndarray:
        K = len(self.gens)
        if isinstance(at, tuple):
            if K == 1:
                return getattr(self.gens[0], name)(*args, size=at, **kw)
            return np.concatenate([getattr(g, name)(*args, size=at[:-1] + (self.n0,), **kw) for g in self.gens],
                                  axis=-1)
        at = np.asarray(at, np.int64)
        if K == 1:
            return getattr(self.gens[0], name)(*args, size=len(at), **kw)
        rep = at // self.n0
        cnt = np.bincount(rep, minlength=K)
        parts = [getattr(g, name)(*args, size=int(c), **kw) for g, c in zip(self.gens, cnt)]
        out = np.empty(len(at), parts[0].dtype)
        out[replica_order(rep, K)] = np.concatenate(parts)
        return out

    def random(self, at):
        return self._draw("random", at)

    def integers(self, at, low, high):
        return self._draw("integers", at, low, high)

    def uniform(self, at, low, high):
        return self._draw("uniform", at, low, high)

    def normal(self, at, loc, scale):
        return self._draw("normal", at, loc, scale)

    def poisson(self, at, lam):
        return self._draw("poisson", at, lam)

    def choice(self, at, a, p=None):
        return self._draw("choice", at, a, p=p)

    def pick(self, ch: "cat.ItemChoice", at) -> np.ndarray:
        """:meth:`ItemChoice.pick` for the rows ``at``."""
        if len(ch.itemids) == 1:
            return np.zeros(len(at), np.int64)
        return self.choice(at, len(ch.itemids), p=ch.weights)

    def median(self, at, x) -> np.ndarray:
        """The median of ``x`` over each copy's rows (1 for a copy without rows), per row."""
        x = np.asarray(x, np.float64)
        if len(self.gens) == 1:
            return np.full(len(x), np.median(x) if len(x) else 1)
        rep = np.asarray(at, np.int64) // self.n0
        out = np.empty(len(x))
        for r in np.flatnonzero(np.bincount(rep, minlength=len(self.gens))):
            sel = rep == r
            out[sel] = np.median(x[sel])
        return out


class Charter:
    def __init__(self, rng, obs, fluid_h, vaso_h, vent, dec, active, t0_s, intime_s, end_s, system, stays_S,
                 k0, extubated_at=None, admitted=None, weight_before=None, cohort_only=False):
        """admitted: (n,) bool, the stay's ICU admission lies in these hours (default: every stay active here);
        weight_before: (n,) last charted weight (kg) before these hours (NaN = none), for slices of a stay;
        cohort_only: leave out the CHARTEVENTS and LABEVENTS rows of items the cohort never reads (their random
        numbers are still drawn, so every other row is the same)."""
        self.cohort_only = bool(cohort_only)
        self.rng = rng if isinstance(rng, StayRng) else StayRng([rng], active.shape[1])
        self.obs, self.fluid_h, self.vaso_h, self.vent, self.dec, self.active = obs, fluid_h, vaso_h, vent, dec, active
        self.t0, self.intime, self.end = t0_s, intime_s, end_s
        self.system = system
        self.S = stays_S
        self.k0 = k0
        self.H, self.n = active.shape
        self.ce, self.le, self.out = Rows(), Rows(), Rows()
        self.icv, self.imv, self.pe = Rows(), Rows(), Rows()
        self.extubated_at = extubated_at
        self.admitted = self.active.any(0) if admitted is None else np.asarray(admitted, bool) & self.active.any(0)
        self.weight_before = np.full(self.n, np.nan) if weight_before is None else np.asarray(weight_before, float)

    # ------------------------------------------------------------------------------------ helpers
    def when(self, hh, ii, minute):
        t = self.t0[ii] + hh * 3600 + (minute * 60).astype(np.int64)
        return np.clip(t, self.intime[ii] + 60, self.end[ii] - 60)

    def ce_rows(self, hh, ii, var, value, minute, dec=0, text=None, valuenum=True, system=None):
        """Chart variable `var` for (hour, stay) pairs with the system's items (weights/units of items.csv)."""
        for s in (0, 1):
            sel = self.system[ii] == s if system is None else np.full(len(ii), system == s)
            if not sel.any():
                continue
            try:
                ch = cat.choice(var, SYS[s])
            except KeyError:
                continue
            h_, i_, v_ = hh[sel], ii[sel], np.asarray(value, float)[sel]
            k = self.rng.pick(ch, i_)
            item = ch.itemids[k]
            uom = ch.uom_array[k]
            scale = ch.scale_array[k]
            v = v_.copy()
            if var == "Temp":
                f = scale == "F"
                v = np.where(f, v * 1.8 + 32, v)
                swap = self.rng.random(i_) < 0.005  # a Celsius value in a Fahrenheit item and vice versa
                v = np.where(swap & f, v_, np.where(swap & ~f, v_ * 1.8 + 32, v))
            elif var == "FiO2":
                pct = scale == "pct"
                frac_anyway = self.rng.random(i_) < 0.1
                v = np.where(pct & ~frac_anyway, np.round(v * 100), np.round(v, 2))
            elif var == "Weight":
                v = np.where(scale == "lb", v / 0.4536, v)
            t = self.when(h_, i_, minute[sel] if isinstance(minute, np.ndarray) else np.full(len(i_), minute))
            if text is not None:
                val = np.asarray(text, object)[sel]
            else:
                val = fmt_num(v, dec)
            vn = np.round(v, dec) if valuenum else np.full(len(v), np.nan)
            self.ce.add(stay=i_, itemid=item, charttime=t, value=val, valuenum=vn, valueuom=uom)

    # ------------------------------------------------------------------------------------ chartevents
    def vitals(self):
        rng = self.rng
        A = self.active
        vit = A & (rng.random(A.shape) < 0.93)
        hh, ii = np.nonzero(vit)
        minute = rng.integers(ii, 0, 60).astype(float)
        o = self.obs[hh, ii]
        aline = self.S["aline"][ii]
        for var, col, dec in (("HR", "HR", 0), ("RR", "RR", 0), ("SpO2", "SpO2", 0)):
            keep = rng.random(ii) < 0.97
            v = o[keep, OI[col]]
            out = rng.random(ii[keep]) < 0.001
            v = np.where(out, v * 10, v)  # outliers the range check must drop
            self.ce_rows(hh[keep], ii[keep], var, v, minute[keep], dec)
        for kind, mask in (("art", aline), ("nbp", ~aline)):
            for var, col in (("SysBP", "SysBP"), ("MeanBP", "MeanBP"), ("DiaBP", "DiaBP")):
                keep = mask & (rng.random(ii) < 0.95)
                self.ce_rows(hh[keep], ii[keep], f"{var}_{kind}", o[keep, OI[col]], minute[keep], 0)
        # temperature and GCS every 4 hours
        four = A & ((self.k0[None, :] + np.arange(self.H)[:, None]) % 4 == 0) & (rng.random(A.shape) < 0.9)
        hh, ii = np.nonzero(four)
        minute = rng.integers(ii, 0, 60).astype(float)
        o = self.obs[hh, ii]
        self.ce_rows(hh, ii, "Temp", o[:, OI["Temp"]], minute, 1)
        g = o[:, OI["GCS"]].astype(int)
        vent = self.vent[hh, ii]
        eye = np.clip(np.round(g * 4 / 15), 1, 4).astype(int)
        motor = np.clip(np.round(g * 6 / 15), 1, 6).astype(int)
        verbal = np.clip(g - eye - motor, 1, 5).astype(int)
        verbal = np.where(vent, 1, verbal)
        cv = self.system[ii] == 0
        vtext_cv = np.where(vent, "1.0 ET/Trach", np.array(GCS_VERBAL, object)[verbal - 1])
        vtext_mv = np.where(vent, "No Response-ETT", np.array(GCS_VERBAL, object)[verbal - 1])
        self.ce_rows(hh, ii, "GCS", np.where(vent, eye + motor + 1, g), minute, 0, system=None)
        etext = np.array(GCS_EYE, object)[eye - 1]
        mtext = np.array(GCS_MOTOR, object)[motor - 1]
        self.ce_rows(hh, ii, "GCS_eye", eye, minute, 0, text=etext)
        self.ce_rows(hh, ii, "GCS_motor", motor, minute, 0, text=mtext)
        self.ce_rows(hh, ii, "GCS_verbal", verbal, minute, 0, text=np.where(cv, vtext_cv, vtext_mv))
        mv = ~cv
        rass = np.clip(np.where(vent, -2 - (15 - g) // 4, -((15 - g) // 3)), -5, 0)
        self.ce_rows(hh[mv], ii[mv], "RASS", rass[mv], minute[mv], 0,
                     text=np.array(RASS, object)[rass[mv] + 5])

    def respiratory(self):
        rng = self.rng
        A = self.active
        hh, ii = np.nonzero(A & (rng.random(A.shape) < 0.5))
        minute = rng.integers(ii, 0, 60).astype(float)
        o = self.obs[hh, ii]
        vent = self.vent[hh, ii]
        fio2 = o[:, OI["FiO2"]]
        on_o2 = vent | (fio2 > 0.22)
        k = on_o2 & (rng.random(ii) < 0.7)
        self.ce_rows(hh[k], ii[k], "FiO2", fio2[k], minute[k], 2)
        nv = ~vent & (rng.random(ii) < 0.8)
        flow = o[:, OI["O2flow"]]
        self.ce_rows(hh[nv], ii[nv], "O2flow", flow[nv], minute[nv], 0)
        dev_cv = np.where(vent, "Ventilator", np.where(flow <= 0, "None", np.where(flow <= 6, "Nasal cannula",
                                                                                   "Non-rebreather")))
        dev_mv = np.where(vent, "Endotracheal tube", np.where(flow <= 0, "None", np.where(
            flow <= 6, "Nasal cannula", "Non-rebreather")))
        d = rng.random(ii) < 0.4
        self.ce_rows(hh[d], ii[d], "O2device", np.zeros(d.sum()), minute[d],
                     text=np.where(self.system[ii] == 0, dev_cv, dev_mv)[d], valuenum=False)
        v = vent & (rng.random(ii) < 0.8)
        hv, iv, mv_ = hh[v], ii[v], minute[v]
        nvr = len(iv)
        self.ce_rows(hv, iv, "VentMode", np.zeros(nvr), mv_,
                     text=rng.choice(iv, np.array(["Assist Control", "SIMV+PS", "CMV"], object)), valuenum=False)
        self.ce_rows(hv, iv, "PEEP", rng.choice(iv, [5.0, 8.0, 10.0, 12.0]), mv_, 0)
        self.ce_rows(hv, iv, "PIP", rng.normal(iv, 24, 5), mv_, 0)
        self.ce_rows(hv, iv, "TidalVol", rng.normal(iv, 450, 60), mv_, 0)
        self.ce_rows(hv, iv, "MinuteVol", rng.normal(iv, 9, 2), mv_, 1)
        if self.extubated_at is not None:
            ex = np.nonzero(self.extubated_at >= 0)[0]
            ex = ex[self.system[ex] == 0]
            if len(ex):
                self.ce_rows(self.extubated_at[ex], ex, "Extubation", np.zeros(len(ex)),
                             rng.integers(ex, 0, 60).astype(float),
                             text=np.full(len(ex), "Extubated", object), valuenum=False)

    def weights(self):
        """Admission weight (90 % of stays) and daily weights (70 % of days). Also sets ``weight_kg`` (H, n):
        the charted weight the cohort recipe uses in each hour's 4-h bin (cohort.md 5.2: the bin's mean
        Weight_kg, else the last earlier one; NaN = none), so CareVue mcg/min rates convert with it."""
        rng = self.rng
        first = np.argmax(self.active, axis=0)
        ii = np.nonzero(self.admitted & (rng.random(np.arange(self.n)) < 0.9))[0]
        w = np.round(self.obs[first[ii], ii, OI["Weight"]], 1)
        self.ce_rows(first[ii], ii, "Weight", w, rng.integers(ii, 0, 60).astype(float), 1)
        hours = self.k0[None, :] + np.arange(self.H)[:, None]
        day = self.active & (hours % 24 == 20) & (rng.random(self.active.shape) < 0.7)
        hh, jj = np.nonzero(day)
        wd = np.round(self.obs[hh, jj, OI["Weight"]], 1)
        self.ce_rows(hh, jj, "WeightDaily", wd, rng.integers(jj, 0, 60).astype(float), 1)
        brow = hours // 4 - (self.k0 // 4)[None, :]
        nb = int(brow.max()) + 1
        tot, cnt = np.zeros((nb, self.n)), np.zeros((nb, self.n))
        for h_, i_, w_ in ((first[ii], ii, w), (hh, jj, wd)):
            np.add.at(tot, (brow[h_, i_], i_), w_)
            np.add.at(cnt, (brow[h_, i_], i_), 1.0)
        has = cnt > 0
        last = np.maximum.accumulate(np.where(has, np.arange(nb)[:, None], -1), axis=0)
        mean = np.where(has, tot / np.maximum(cnt, 1), np.nan)
        wb = np.where(last >= 0, mean[np.maximum(last, 0), np.arange(self.n)[None, :]], self.weight_before[None, :])
        self.weight_kg = wb[brow, np.arange(self.n)[None, :]]
        self.weight_last = wb[-1]

    def irrelevant(self, per_hour=11.0):
        rng = self.rng
        hh, ii = np.nonzero(self.active)
        cnt = rng.poisson(ii, per_hour)
        hh, ii = np.repeat(hh, cnt), np.repeat(ii, cnt)
        minute = rng.integers(ii, 0, 60).astype(float)
        for s in (0, 1):
            sel = self.system[ii] == s
            tab = cat.irrelevant(SYS[s])
            tab = tab[tab.linksto == "chartevents"].reset_index(drop=True)
            k = rng.integers(ii[sel], 0, len(tab))
            num, lo, hi, first, nopt, optcodes = _irrelevant_specs(SYS[s])
            u = rng.random(ii[sel])
            x = np.round(lo[k] + (hi[k] - lo[k]) * u)
            isnum = num[k]
            opt = optcodes[first[k] + np.minimum((u * nopt[k]).astype(np.int64), nopt[k] - 1)]
            vn = np.where(isnum, x, np.nan)
            self.ce.add(stay=ii[sel], itemid=tab.itemid.to_numpy()[k], charttime=self.when(hh[sel], ii[sel], minute[sel]),
                        value=vn, vcode=np.where(isnum, -1, opt).astype(np.int32), valuenum=vn,
                        valueuom=np.full(sel.sum(), None, object))

    # ------------------------------------------------------------------------------------ labs
    def labs(self):
        rng = self.rng
        H = np.arange(self.H)[:, None]
        k = self.k0[None, :] + H
        draw = self.active & (k % self.S["lab_every"][None, :] == self.S["lab_phase"][None, :]) & \
            (rng.random(self.active.shape) < 0.9)
        hh, ii = np.nonzero(draw)
        minute = rng.integers(ii, 0, 60).astype(float)
        o = self.obs[hh, ii]
        t = self.when(hh, ii, minute)
        daily = ((self.k0[ii] + hh) // self.S["lab_every"][ii]) % 2 == 0
        panels = [("Potassium", 1), ("Sodium", 0), ("Chloride", 0), ("Glucose", 0), ("Magnesium", 1),
                  ("Calcium", 1), ("BUN", 0), ("Creatinine", 1), ("HCO3", 0), ("Hb", 1), ("Hct", 1),
                  ("WBC_count", 1), ("Platelets_count", 0)]
        src = {"WBC_count": "WBC", "Platelets_count": "Platelets"}
        for var, dec in panels:
            x = o[:, OI[src.get(var, var)]]
            self.lab_rows(ii, t, var, x, dec)
            ce = rng.random(ii) < np.where(self.system[ii] == 0, 0.6, 0.3)
            self.ce_rows(hh[ce], ii[ce], var, x[ce], minute[ce], dec)
        sep = self.S["kind"][ii] == 0
        self.lab_rows(ii[sep], t[sep], "Arterial_lactate", o[sep, OI["Lactate"]], 1)
        for var, col, dec in (("PTT", "PTT", 1), ("PT", "PT", 1), ("INR", "INR", 1), ("SGOT", "AST", 0),
                              ("SGPT", "ALT", 0), ("Total_bili", "TBili", 1), ("Direct_bili", "DBili", 1)):
            self.lab_rows(ii[daily], t[daily], var, o[daily, OI[col]], dec)
            ce = daily & (rng.random(ii) < np.where(self.system[ii] == 0, 0.5, 0.2))
            self.ce_rows(hh[ce], ii[ce], var, o[ce, OI[col]], minute[ce], dec)
        # labs nobody reads, in a realistic share of LABEVENTS
        irr = cat.irrelevant("lab")
        for _, r in irr.iterrows():
            lo, hi = map(float, r.sim_scale.split(":")[1:])
            x = rng.uniform(ii, lo, hi)
            if self.cohort_only:
                continue
            self.le.add(stay=ii, itemid=np.full(len(ii), r.itemid), charttime=t, value=fmt_num(x, 1), valuenum=np.round(x, 1),
                        valueuom=np.full(len(ii), None, object), flag=np.full(len(ii), None, object))
        # blood gases: ventilated or shocked patients, every 6 hours; specimen type row at the same time
        gas = self.active & (self.vent | (self.obs[:, :, OI["Lactate"]] > 2.5)) & (k % 6 == 3) & \
            (rng.random(self.active.shape) < 0.8)
        hh, ii = np.nonzero(gas)
        minute = rng.integers(ii, 0, 60).astype(float)
        o = self.obs[hh, ii]
        t = self.when(hh, ii, minute)
        u = rng.random(ii)
        spec = np.where(u < 0.85, "ART", np.where(u < 0.95, "VEN", np.where(u < 0.98, "MIX", "CENTRAL VENOUS")))
        art = spec == "ART"
        has_spec = rng.random(ii) < 0.9
        self.le.add(stay=ii[has_spec], itemid=np.full(has_spec.sum(), 50800), charttime=t[has_spec],
                    value=spec[has_spec].astype(object), valuenum=np.full(has_spec.sum(), np.nan),
                    valueuom=np.full(has_spec.sum(), None, object), flag=np.full(has_spec.sum(), None, object))
        po2 = np.where(art, o[:, OI["paO2"]], rng.normal(ii, 40, 6))
        pco2 = np.where(art, o[:, OI["paCO2"]], o[:, OI["paCO2"]] + 6)
        ph_ = np.where(art, o[:, OI["pH"]], o[:, OI["pH"]] - 0.04)
        for var, x, dec in (("Arterial_pH", ph_, 2), ("paO2", po2, 0), ("paCO2", pco2, 0),
                            ("Arterial_BE", o[:, OI["BE"]], 0), ("HCO3_gas", o[:, OI["HCO3"]], 0),
                            ("Arterial_lactate", o[:, OI["Lactate"]], 1)):
            self.lab_rows(ii, t, var, x, dec)
            ce = art & (self.system[ii] == 0) & (rng.random(ii) < 0.5)
            if var != "HCO3_gas":
                self.ce_rows(hh[ce], ii[ce], var, x[ce], minute[ce], dec)

    def lab_rows(self, ii, t, var, x, dec):
        ch = cat.choice(var, "lab")
        k = self.rng.pick(ch, ii)
        x = np.asarray(x, float)
        val = fmt_num(x, dec)
        flag = np.where(np.abs(np.log(np.maximum(x, 1e-3) / np.maximum(self.rng.median(ii, x), 1e-3))) > 0.35,
                        "abnormal", None).astype(object) if var != "Arterial_pH" else np.full(len(x), None, object)
        self.le.add(stay=ii, itemid=ch.itemids[k], charttime=t, value=val, valuenum=np.round(x, dec),
                    valueuom=ch.uom_array[k], flag=flag)

    # ------------------------------------------------------------------------------------ outputs
    def outputs(self):
        rng = self.rng
        hh, ii = np.nonzero(self.active & (rng.random(self.active.shape) < 0.9))
        v = np.round(self.obs[hh, ii, OI["Urine"]])
        t = self.when(hh, ii, np.full(len(ii), 59.0))
        for s in (0, 1):
            sel = self.system[ii] == s
            ch = cat.choice("Urine", SYS[s])
            k = rng.pick(ch, ii[sel])
            uom = ch.uom_array[k]
            if s == 1:
                uom = np.where(rng.random(ii[sel]) < 0.1, "ml", uom)
            err = (rng.random(ii[sel]) < 0.002) if s == 1 else np.zeros(sel.sum(), bool)
            self.out.add(stay=ii[sel], charttime=t[sel], itemid=ch.itemids[k], value=v[sel], valueuom=uom,
                         iserror=np.where(err, 1.0, np.nan))
        # MetaVision tube-feed residuals (not urine) and GU irrigation pairs
        mv = (self.system[ii] != 0)
        tf = mv & (self.S["aline"][ii]) & (hh % 4 == 0) & (rng.random(ii) < 0.3)
        self.out.add(stay=ii[tf], charttime=t[tf], itemid=np.full(tf.sum(), 227510),
                     value=np.round(rng.uniform(ii[tf], 0, 150)),
                     valueuom=np.full(tf.sum(), "mL", object), iserror=np.full(tf.sum(), np.nan))
        gu = mv & (rng.random(ii) < 0.01)
        vin = np.round(rng.uniform(ii[gu], 100, 500))
        self.out.add(stay=ii[gu], charttime=t[gu], itemid=np.full(gu.sum(), 227488), value=vin,
                     valueuom=np.full(gu.sum(), "mL", object), iserror=np.full(gu.sum(), np.nan))
        self.out.add(stay=ii[gu], charttime=t[gu], itemid=np.full(gu.sum(), 227489), value=vin + v[gu],
                     valueuom=np.full(gu.sum(), "mL", object), iserror=np.full(gu.sum(), np.nan))

    # ------------------------------------------------------------------------------------ inputs
    def inputs(self):
        rng = self.rng
        VDRUG = ("Vaso_norepinephrine", "Vaso_phenylephrine", "Vaso_vasopressin", "Vaso_dopamine", "Vaso_epinephrine")
        hh, ii = np.nonzero(self.active & (self.fluid_h > 0))
        amt = np.round(self.fluid_h[hh, ii].astype(float), 1)
        minute = rng.integers(ii, 0, 40).astype(float)
        t = self.when(hh, ii, minute)
        for s in (0, 1):
            sel = self.system[ii] == s
            ch = cat.choice("Fluid", SYS[s])
            k = rng.pick(ch, ii[sel])
            item = ch.itemids[k]
            if s == 0:
                self.icv.add(stay=ii[sel], charttime=t[sel], itemid=item, amount=amt[sel],
                             amountuom=np.full(sel.sum(), "ml", object), rate=np.full(sel.sum(), np.nan),
                             rateuom=np.full(sel.sum(), None, object))
            else:
                dur = rng.integers(ii[sel], 15, 20) * 1.0
                bolus = rng.random(ii[sel]) < 0.4
                start = t[sel]
                end = start + np.where(bolus, 60, dur * 60).astype(np.int64)
                rate = np.where(bolus, np.nan, np.round(amt[sel] / (dur / 60), 2))
                rw = rng.random(ii[sel]) < 0.04
                status = np.where(rw, "Rewritten", "FinishedRunning").astype(object)
                w = self.S["w0"][ii[sel]]
                self.imv.add(stay=ii[sel], starttime=start, endtime=end, itemid=item, amount=amt[sel],
                             amountuom=np.full(sel.sum(), "ml", object), rate=rate,
                             rateuom=np.where(bolus, None, "mL/hour").astype(object), patientweight=np.round(w, 1),
                             statusdescription=status)
                # the superseding row of a rewritten order
                self.imv.add(stay=ii[sel][rw], starttime=start[rw], endtime=end[rw], itemid=item[rw],
                             amount=np.round(amt[sel][rw] * rng.uniform(ii[sel][rw], 0.5, 1.5), 1),
                             amountuom=np.full(rw.sum(), "ml", object), rate=rate[rw],
                             rateuom=np.where(bolus[rw], None, "mL/hour").astype(object), patientweight=np.round(w[rw], 1),
                             statusdescription=np.full(rw.sum(), "FinishedRunning", object))
        # vasopressors: CareVue charts the running rate hourly; MetaVision one interval per bin
        hh, ii = np.nonzero(self.active & (self.vaso_h > 0))
        d = self.vaso_h[hh, ii].astype(float)
        drug = self.S["drug"][ii].copy()
        drug = np.where((drug == 2) & (d > 0.35), 0, drug)
        drug = np.where((drug == 3) & (d > 0.2), 0, drug)
        dec = self.dec[hh, ii]
        w = self.S["w0"][ii]  # MetaVision PATIENTWEIGHT: the admission weight on the order
        w_ch = np.nan_to_num(self.weight_kg[hh, ii], nan=80.0)  # what the cohort divides CareVue mcg/min by
        cvsel = (self.system[ii] == 0) & (dec | (rng.random(ii) < 0.8))
        minute = np.where(dec, 0.0, rng.integers(ii, 0, 50).astype(float)) + 1
        t = self.when(hh, ii, minute)
        for j, var in enumerate(VDRUG):
            for s in (0, 1):
                sel = (drug == j) & ((cvsel) if s == 0 else ((self.system[ii] != 0) & dec))
                if not sel.any():
                    continue
                ch = cat.choice(var, SYS[s])
                k = rng.pick(ch, ii[sel])
                uom = ch.uom_array[k]
                fac = np.array([float(x) for x in ch.scales])[k]
                rate = d[sel] / fac
                rate = np.where(np.isin(uom, ["mcgmin", "mcg/min"]), rate * (w_ch if s == 0 else w)[sel], rate)
                rate = np.where(uom == "units/hour", rate * 60, rate)
                rate = np.round(rate, 4)
                if s == 0:
                    self.icv.add(stay=ii[sel], charttime=t[sel], itemid=ch.itemids[k], amount=np.full(sel.sum(), np.nan),
                                 amountuom=np.full(sel.sum(), None, object), rate=rate, rateuom=uom)
                else:
                    h0 = hh[sel]
                    i0 = ii[sel]
                    nb = np.minimum(4 - (self.k0[i0] + h0) % 4, self.active[:, i0].sum(0) - h0)
                    start = self.t0[i0] + h0 * 3600 + 60
                    start = np.maximum(start, self.intime[i0] + 60)
                    end = np.minimum(self.t0[i0] + (h0 + nb) * 3600 - 60, self.end[i0] - 60)
                    mins = (end - start) / 60.0
                    mg = np.round(d[sel] / fac[:] * w[sel] * mins / 1000.0, 4)
                    am_u = np.where(uom == "units/hour", "units", "mg").astype(object)
                    amount = np.where(uom == "units/hour", np.round(rate * mins / 60, 4), mg)
                    rw = rng.random(i0) < 0.03
                    st = np.where(rng.random(i0) < 0.5, "FinishedRunning", "ChangeDose/Rate").astype(object)
                    st[rw] = "Rewritten"
                    self.imv.add(stay=i0, starttime=start, endtime=end, itemid=ch.itemids[k], amount=amount,
                                 amountuom=am_u, rate=rate, rateuom=uom, patientweight=np.round(w[sel], 1),
                                 statusdescription=st)
                    self.imv.add(stay=i0[rw], starttime=start[rw], endtime=end[rw], itemid=ch.itemids[k][rw],
                                 amount=amount[rw], amountuom=am_u[rw], rate=rate[rw], rateuom=uom[rw],
                                 patientweight=np.round(w[sel][rw], 1),
                                 statusdescription=np.full(rw.sum(), "FinishedRunning", object))
        # inputs nobody reads: oral intake, propofol (same rate unit as the pressors), dextrose
        hh, ii = np.nonzero(self.active & (rng.random(self.active.shape) < 0.12))
        t = self.when(hh, ii, rng.integers(ii, 0, 60).astype(float))
        for s in (0, 1):
            sel = self.system[ii] == s
            tab = cat.irrelevant(SYS[s])
            tab = tab[tab.linksto.str.startswith("inputevents")].reset_index(drop=True)
            k = rng.integers(ii[sel], 0, len(tab))
            spec = tab.sim_scale.to_numpy()[k]
            is_rate = np.array(["kg" in x for x in spec])
            x = np.round(rng.uniform(ii[sel], 10, 300))
            unit = np.array([x_.split(":")[1] for x_ in spec], object)
            if s == 0:
                self.icv.add(stay=ii[sel], charttime=t[sel], itemid=tab.itemid.to_numpy()[k],
                             amount=np.where(is_rate, np.nan, x), amountuom=np.where(is_rate, None, unit).astype(object),
                             rate=np.where(is_rate, np.round(x / 6), np.nan), rateuom=np.where(is_rate, unit, None).astype(object))
            else:
                self.imv.add(stay=ii[sel], starttime=t[sel], endtime=t[sel] + 1800, itemid=tab.itemid.to_numpy()[k],
                             amount=np.where(is_rate, x / 100, x), amountuom=np.where(is_rate, "mg", "ml").astype(object),
                             rate=np.where(is_rate, np.round(x / 6), np.nan),
                             rateuom=np.where(is_rate, unit, None).astype(object),
                             patientweight=np.round(self.S["w0"][ii[sel]], 1),
                             statusdescription=np.full(sel.sum(), "FinishedRunning", object))

    def procedures(self):
        """Invasive ventilation intervals (MetaVision) and the odd line / chest X-ray procedure."""
        rng = self.rng
        mv = np.nonzero((self.system != 0) & self.active.any(0))[0]
        vent_any = self.vent[:, mv].any(0)
        iv = mv[vent_any]
        first = np.argmax(self.vent[:, iv], axis=0)
        last = self.vent.shape[0] - 1 - np.argmax(self.vent[::-1, iv], axis=0)
        self.pe.add(stay=iv, starttime=self.when(first, iv, np.full(len(iv), 5.0)),
                    endtime=self.when(last, iv, np.full(len(iv), 55.0)), itemid=np.full(len(iv), 225792))
        x = mv[(rng.random(mv) < 0.5) & self.admitted[mv]]
        self.pe.add(stay=x, starttime=self.when(np.zeros(len(x), int), x, np.full(len(x), 30.0)),
                    endtime=self.when(np.zeros(len(x), int), x, np.full(len(x), 45.0)),
                    itemid=rng.choice(x, [224263, 225459]))

    def run(self):
        self.vitals()
        self.respiratory()
        self.weights()
        self.labs()
        self.outputs()
        self.inputs()
        self.procedures()
        if not self.cohort_only:  # the last draws of the bin: leaving them out changes no other row
            self.irrelevant()
        return self


@lru_cache(maxsize=None)
def _irrelevant_specs(system: str):
    """Per irrelevant CHARTEVENTS item of a system: numeric?, range lo/hi, offset of its options in the flat
    option-code array, option count; and that array (TEXT codes)."""
    tab = cat.irrelevant(system)
    tab = tab[tab.linksto == "chartevents"].reset_index(drop=True)
    num, lo, hi, first, nopt, codes = [], [], [], [], [], []
    for spec in tab.sim_scale:
        if spec.startswith("num:"):
            a, b = map(float, spec.split(":")[1:])
            num.append(True), lo.append(a), hi.append(b), first.append(0), nopt.append(1)
        else:
            c = TEXT.encode(spec.split("|"))
            num.append(False), lo.append(0.0), hi.append(0.0), first.append(len(codes)), nopt.append(len(c))
            codes.extend(int(x) for x in c)
    return (np.array(num), np.array(lo), np.array(hi), np.array(first, np.int64), np.array(nopt, np.int64),
            np.array(codes + [-1], np.int32))
