"""From simulated hours to charted rows: which items are charted when, with which units, noise and faults.

Input: the recorded hours of a batch (measured observations (H, n, nobs), hourly fluid/vaso, ventilation,
decision ticks) and per-stay facts. Output: dict table -> dict of column arrays with the interim (lower-case)
column names (times as int64 seconds), plus ``stay`` (index into the batch). world.py turns them into
MIMIC-III CSV tables; rollout.py into interim DataFrames.
"""
from __future__ import annotations

import numpy as np

from . import catalogue as cat
from .physiology import OBS_INDEX as OI

SYS = ("cv", "mv", "mv")  # DBSOURCE both charts MetaVision items
GCS_EYE = ["No Response", "To Pain", "To Speech", "Spontaneously"]
GCS_VERBAL = ["No Response", "Incomprehensible sounds", "Inappropriate Words", "Confused", "Oriented"]
GCS_MOTOR = ["No response", "Abnormal extension", "Abnormal Flexion", "Flex-withdraws", "Localizes Pain",
             "Obeys Commands"]
RASS = ["-5 Unarousable", "-4 Deep Sedation", "-3 Moderate Sedation", "-2 Light Sedation", "-1 Drowsy",
        " 0  Alert and Calm"]


class Rows:
    """Accumulates rows of one table as column arrays."""

    def __init__(self):
        self.parts: list[dict] = []

    def add(self, **cols):
        n = max(len(v) for v in cols.values() if isinstance(v, np.ndarray))
        if n:
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
    """VALUE text of a numeric reading (e.g. '98', '7.35')."""
    x = np.round(np.asarray(x, float), dec)
    s = np.char.mod(f"%.{dec}f", x) if dec else np.char.mod("%d", x.astype(np.int64))
    if dec:
        s = np.char.rstrip(np.char.rstrip(s, "0"), ".")
    return s.astype(object)


class Charter:
    def __init__(self, rng, obs, fluid_h, vaso_h, vent, dec, active, t0_s, intime_s, end_s, system, stays_S,
                 k0, extubated_at=None):
        self.rng = rng
        self.obs, self.fluid_h, self.vaso_h, self.vent, self.dec, self.active = obs, fluid_h, vaso_h, vent, dec, active
        self.t0, self.intime, self.end = t0_s, intime_s, end_s
        self.system = system
        self.S = stays_S
        self.k0 = k0
        self.H, self.n = active.shape
        self.ce, self.le, self.out = Rows(), Rows(), Rows()
        self.icv, self.imv, self.pe = Rows(), Rows(), Rows()
        self.extubated_at = extubated_at

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
            k = ch.pick(self.rng, len(i_))
            item = ch.itemids[k]
            uom = np.array(ch.uoms, object)[k]
            scale = np.array(ch.scales, object)[k]
            v = v_.copy()
            if var == "Temp":
                f = scale == "F"
                v = np.where(f, v * 1.8 + 32, v)
                swap = self.rng.random(len(v)) < 0.005  # a Celsius value in a Fahrenheit item and vice versa
                v = np.where(swap & f, v_, np.where(swap & ~f, v_ * 1.8 + 32, v))
            elif var == "FiO2":
                pct = scale == "pct"
                frac_anyway = self.rng.random(len(v)) < 0.1
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
        minute = rng.integers(0, 60, len(ii)).astype(float)
        o = self.obs[hh, ii]
        aline = self.S["aline"][ii]
        for var, col, dec in (("HR", "HR", 0), ("RR", "RR", 0), ("SpO2", "SpO2", 0)):
            keep = rng.random(len(ii)) < 0.97
            v = o[keep, OI[col]]
            out = rng.random(len(v)) < 0.001
            v = np.where(out, v * 10, v)  # outliers the range check must drop
            self.ce_rows(hh[keep], ii[keep], var, v, minute[keep], dec)
        for kind, mask in (("art", aline), ("nbp", ~aline)):
            for var, col in (("SysBP", "SysBP"), ("MeanBP", "MeanBP"), ("DiaBP", "DiaBP")):
                keep = mask & (rng.random(len(ii)) < 0.95)
                self.ce_rows(hh[keep], ii[keep], f"{var}_{kind}", o[keep, OI[col]], minute[keep], 0)
        # temperature and GCS every 4 hours
        four = A & ((self.k0[None, :] + np.arange(self.H)[:, None]) % 4 == 0) & (rng.random(A.shape) < 0.9)
        hh, ii = np.nonzero(four)
        minute = rng.integers(0, 60, len(ii)).astype(float)
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
        minute = rng.integers(0, 60, len(ii)).astype(float)
        o = self.obs[hh, ii]
        vent = self.vent[hh, ii]
        fio2 = o[:, OI["FiO2"]]
        on_o2 = vent | (fio2 > 0.22)
        k = on_o2 & (rng.random(len(ii)) < 0.7)
        self.ce_rows(hh[k], ii[k], "FiO2", fio2[k], minute[k], 2)
        nv = ~vent & (rng.random(len(ii)) < 0.8)
        flow = o[:, OI["O2flow"]]
        self.ce_rows(hh[nv], ii[nv], "O2flow", flow[nv], minute[nv], 0)
        dev_cv = np.where(vent, "Ventilator", np.where(flow <= 0, "None", np.where(flow <= 6, "Nasal cannula",
                                                                                   "Non-rebreather")))
        dev_mv = np.where(vent, "Endotracheal tube", np.where(flow <= 0, "None", np.where(
            flow <= 6, "Nasal cannula", "Non-rebreather")))
        d = rng.random(len(ii)) < 0.4
        self.ce_rows(hh[d], ii[d], "O2device", np.zeros(d.sum()), minute[d],
                     text=np.where(self.system[ii] == 0, dev_cv, dev_mv)[d], valuenum=False)
        v = vent & (rng.random(len(ii)) < 0.8)
        hv, iv, mv_ = hh[v], ii[v], minute[v]
        nvr = len(iv)
        self.ce_rows(hv, iv, "VentMode", np.zeros(nvr), mv_,
                     text=rng.choice(np.array(["Assist Control", "SIMV+PS", "CMV"], object), nvr), valuenum=False)
        self.ce_rows(hv, iv, "PEEP", rng.choice([5.0, 8.0, 10.0, 12.0], nvr), mv_, 0)
        self.ce_rows(hv, iv, "PIP", rng.normal(24, 5, nvr), mv_, 0)
        self.ce_rows(hv, iv, "TidalVol", rng.normal(450, 60, nvr), mv_, 0)
        self.ce_rows(hv, iv, "MinuteVol", rng.normal(9, 2, nvr), mv_, 1)
        if self.extubated_at is not None:
            ex = np.nonzero(self.extubated_at >= 0)[0]
            ex = ex[self.system[ex] == 0]
            if len(ex):
                self.ce_rows(self.extubated_at[ex], ex, "Extubation", np.zeros(len(ex)),
                             rng.integers(0, 60, len(ex)).astype(float),
                             text=np.full(len(ex), "Extubated", object), valuenum=False)

    def weights(self):
        rng = self.rng
        first = np.argmax(self.active, axis=0)
        ii = np.nonzero(self.active.any(0) & (rng.random(self.n) < 0.9))[0]
        w = self.obs[first[ii], ii, OI["Weight"]]
        self.ce_rows(first[ii], ii, "Weight", w, rng.integers(0, 60, len(ii)).astype(float), 1)
        day = self.active & (np.arange(self.H)[:, None] % 24 == 20) & (rng.random(self.active.shape) < 0.7)
        hh, ii = np.nonzero(day)
        self.ce_rows(hh, ii, "WeightDaily", self.obs[hh, ii, OI["Weight"]], rng.integers(0, 60, len(ii)).astype(float), 1)

    def irrelevant(self, per_hour=11.0):
        rng = self.rng
        hh, ii = np.nonzero(self.active)
        cnt = rng.poisson(per_hour, len(ii))
        hh, ii = np.repeat(hh, cnt), np.repeat(ii, cnt)
        minute = rng.integers(0, 60, len(ii)).astype(float)
        for s in (0, 1):
            sel = self.system[ii] == s
            tab = cat.irrelevant(SYS[s])
            tab = tab[tab.linksto == "chartevents"].reset_index(drop=True)
            k = rng.integers(0, len(tab), sel.sum())
            specs = tab.sim_scale.to_numpy()
            vals = np.empty(sel.sum(), object)
            vn = np.full(sel.sum(), np.nan)
            for j, spec in enumerate(specs):
                m = k == j
                if not m.any():
                    continue
                if spec.startswith("num:"):
                    lo, hi = map(float, spec.split(":")[1:])
                    x = np.round(rng.uniform(lo, hi, m.sum()))
                    vals[m] = fmt_num(x, 0)
                    vn[m] = x
                else:
                    opts = np.array(spec.split("|"), object)
                    vals[m] = opts[rng.integers(0, len(opts), m.sum())]
            self.ce.add(stay=ii[sel], itemid=tab.itemid.to_numpy()[k], charttime=self.when(hh[sel], ii[sel], minute[sel]),
                        value=vals, valuenum=vn, valueuom=np.full(sel.sum(), None, object))

    # ------------------------------------------------------------------------------------ labs
    def labs(self):
        rng = self.rng
        H = np.arange(self.H)[:, None]
        k = self.k0[None, :] + H
        draw = self.active & (k % self.S["lab_every"][None, :] == self.S["lab_phase"][None, :]) & \
            (rng.random(self.active.shape) < 0.9)
        hh, ii = np.nonzero(draw)
        minute = rng.integers(0, 60, len(ii)).astype(float)
        o = self.obs[hh, ii]
        t = self.when(hh, ii, minute)
        daily = ((k[hh, 0] if False else (self.k0[ii] + hh)) // self.S["lab_every"][ii]) % 2 == 0
        panels = [("Potassium", 1), ("Sodium", 0), ("Chloride", 0), ("Glucose", 0), ("Magnesium", 1),
                  ("Calcium", 1), ("BUN", 0), ("Creatinine", 1), ("HCO3", 0), ("Hb", 1), ("Hct", 1),
                  ("WBC_count", 1), ("Platelets_count", 0)]
        src = {"WBC_count": "WBC", "Platelets_count": "Platelets"}
        for var, dec in panels:
            x = o[:, OI[src.get(var, var)]]
            self.lab_rows(ii, t, var, x, dec)
            ce = rng.random(len(ii)) < np.where(self.system[ii] == 0, 0.6, 0.3)
            if var != "HCO3" or True:
                self.ce_rows(hh[ce], ii[ce], var, x[ce], minute[ce], dec)
        sep = self.S["kind"][ii] == 0
        self.lab_rows(ii[sep], t[sep], "Arterial_lactate", o[sep, OI["Lactate"]], 1)
        for var, col, dec in (("PTT", "PTT", 1), ("PT", "PT", 1), ("INR", "INR", 1), ("SGOT", "AST", 0),
                              ("SGPT", "ALT", 0), ("Total_bili", "TBili", 1), ("Direct_bili", "DBili", 1)):
            self.lab_rows(ii[daily], t[daily], var, o[daily, OI[col]], dec)
            ce = daily & (rng.random(len(ii)) < np.where(self.system[ii] == 0, 0.5, 0.2))
            self.ce_rows(hh[ce], ii[ce], var, o[ce, OI[col]], minute[ce], dec)
        # labs nobody reads, in a realistic share of LABEVENTS
        irr = cat.irrelevant("lab")
        for _, r in irr.iterrows():
            lo, hi = map(float, r.sim_scale.split(":")[1:])
            x = rng.uniform(lo, hi, len(ii))
            self.le.add(stay=ii, itemid=np.full(len(ii), r.itemid), charttime=t, value=fmt_num(x, 1), valuenum=np.round(x, 1),
                        valueuom=np.full(len(ii), None, object), flag=np.full(len(ii), None, object))
        # blood gases: ventilated or shocked patients, every 6 hours; specimen type row at the same time
        gas = self.active & (self.vent | (self.obs[:, :, OI["Lactate"]] > 2.5)) & (k % 6 == 3) & \
            (rng.random(self.active.shape) < 0.8)
        hh, ii = np.nonzero(gas)
        minute = rng.integers(0, 60, len(ii)).astype(float)
        o = self.obs[hh, ii]
        t = self.when(hh, ii, minute)
        u = rng.random(len(ii))
        spec = np.where(u < 0.85, "ART", np.where(u < 0.95, "VEN", np.where(u < 0.98, "MIX", "CENTRAL VENOUS")))
        art = spec == "ART"
        has_spec = rng.random(len(ii)) < 0.9
        self.le.add(stay=ii[has_spec], itemid=np.full(has_spec.sum(), 50800), charttime=t[has_spec],
                    value=spec[has_spec].astype(object), valuenum=np.full(has_spec.sum(), np.nan),
                    valueuom=np.full(has_spec.sum(), None, object), flag=np.full(has_spec.sum(), None, object))
        po2 = np.where(art, o[:, OI["paO2"]], rng.normal(40, 6, len(ii)))
        pco2 = np.where(art, o[:, OI["paCO2"]], o[:, OI["paCO2"]] + 6)
        ph_ = np.where(art, o[:, OI["pH"]], o[:, OI["pH"]] - 0.04)
        for var, x, dec in (("Arterial_pH", ph_, 2), ("paO2", po2, 0), ("paCO2", pco2, 0),
                            ("Arterial_BE", o[:, OI["BE"]], 0), ("HCO3_gas", o[:, OI["HCO3"]], 0),
                            ("Arterial_lactate", o[:, OI["Lactate"]], 1)):
            self.lab_rows(ii, t, var, x, dec)
            ce = art & (self.system[ii] == 0) & (rng.random(len(ii)) < 0.5)
            if var != "HCO3_gas":
                self.ce_rows(hh[ce], ii[ce], var, x[ce], minute[ce], dec)

    def lab_rows(self, ii, t, var, x, dec):
        ch = cat.choice(var, "lab")
        k = ch.pick(self.rng, len(ii))
        x = np.asarray(x, float)
        val = fmt_num(x, dec)
        flag = np.where(np.abs(np.log(np.maximum(x, 1e-3) / max(np.median(x) if len(x) else 1, 1e-3))) > 0.35,
                        "abnormal", None).astype(object) if var != "Arterial_pH" else np.full(len(x), None, object)
        self.le.add(stay=ii, itemid=ch.itemids[k], charttime=t, value=val, valuenum=np.round(x, dec),
                    valueuom=np.array(ch.uoms, object)[k], flag=flag)

    # ------------------------------------------------------------------------------------ outputs
    def outputs(self):
        rng = self.rng
        hh, ii = np.nonzero(self.active & (rng.random(self.active.shape) < 0.9))
        v = np.round(self.obs[hh, ii, OI["Urine"]])
        t = self.when(hh, ii, np.full(len(ii), 59.0))
        for s in (0, 1):
            sel = self.system[ii] == s
            ch = cat.choice("Urine", SYS[s])
            k = ch.pick(rng, sel.sum())
            uom = np.array(ch.uoms, object)[k]
            if s == 1:
                uom = np.where(rng.random(sel.sum()) < 0.1, "ml", uom)
            err = (rng.random(sel.sum()) < 0.002) if s == 1 else np.zeros(sel.sum(), bool)
            self.out.add(stay=ii[sel], charttime=t[sel], itemid=ch.itemids[k], value=v[sel], valueuom=uom,
                         iserror=np.where(err, 1.0, np.nan))
        # MetaVision tube-feed residuals (not urine) and GU irrigation pairs
        mv = (self.system[ii] != 0)
        tf = mv & (self.S["aline"][ii]) & (hh % 4 == 0) & (rng.random(len(ii)) < 0.3)
        self.out.add(stay=ii[tf], charttime=t[tf], itemid=np.full(tf.sum(), 227510), value=np.round(rng.uniform(0, 150, tf.sum())),
                     valueuom=np.full(tf.sum(), "mL", object), iserror=np.full(tf.sum(), np.nan))
        gu = mv & (rng.random(len(ii)) < 0.01)
        vin = np.round(rng.uniform(100, 500, gu.sum()))
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
        minute = rng.integers(0, 40, len(ii)).astype(float)
        t = self.when(hh, ii, minute)
        for s in (0, 1):
            sel = self.system[ii] == s
            ch = cat.choice("Fluid", SYS[s])
            k = ch.pick(rng, sel.sum())
            item = ch.itemids[k]
            if s == 0:
                self.icv.add(stay=ii[sel], charttime=t[sel], itemid=item, amount=amt[sel],
                             amountuom=np.full(sel.sum(), "ml", object), rate=np.full(sel.sum(), np.nan),
                             rateuom=np.full(sel.sum(), None, object))
            else:
                dur = rng.integers(15, 20, sel.sum()) * 1.0
                bolus = rng.random(sel.sum()) < 0.4
                start = t[sel]
                end = start + np.where(bolus, 60, dur * 60).astype(np.int64)
                rate = np.where(bolus, np.nan, np.round(amt[sel] / (dur / 60), 2))
                rw = rng.random(sel.sum()) < 0.04
                status = np.where(rw, "Rewritten", "FinishedRunning").astype(object)
                w = self.S["w0"][ii[sel]]
                self.imv.add(stay=ii[sel], starttime=start, endtime=end, itemid=item, amount=amt[sel],
                             amountuom=np.full(sel.sum(), "ml", object), rate=rate,
                             rateuom=np.where(bolus, None, "mL/hour").astype(object), patientweight=np.round(w, 1),
                             statusdescription=status)
                # the superseding row of a rewritten order
                self.imv.add(stay=ii[sel][rw], starttime=start[rw], endtime=end[rw], itemid=item[rw],
                             amount=np.round(amt[sel][rw] * rng.uniform(0.5, 1.5, rw.sum()), 1),
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
        w = self.S["w0"][ii]
        cvsel = (self.system[ii] == 0) & (dec | (rng.random(len(ii)) < 0.8))
        minute = np.where(dec, 0.0, rng.integers(0, 50, len(ii)).astype(float)) + 1
        t = self.when(hh, ii, minute)
        for j, var in enumerate(VDRUG):
            for s in (0, 1):
                sel = (drug == j) & ((cvsel) if s == 0 else ((self.system[ii] != 0) & dec))
                if not sel.any():
                    continue
                ch = cat.choice(var, SYS[s])
                k = ch.pick(rng, sel.sum())
                uom = np.array(ch.uoms, object)[k]
                fac = np.array([float(x) for x in ch.scales])[k]
                rate = d[sel] / fac
                rate = np.where(np.isin(uom, ["mcgmin", "mcg/min"]), rate * w[sel], rate)
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
                    rw = rng.random(sel.sum()) < 0.03
                    st = np.where(rng.random(sel.sum()) < 0.5, "FinishedRunning", "ChangeDose/Rate").astype(object)
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
        t = self.when(hh, ii, rng.integers(0, 60, len(ii)).astype(float))
        for s in (0, 1):
            sel = self.system[ii] == s
            tab = cat.irrelevant(SYS[s])
            tab = tab[tab.linksto.str.startswith("inputevents")].reset_index(drop=True)
            k = rng.integers(0, len(tab), sel.sum())
            spec = tab.sim_scale.to_numpy()[k]
            is_rate = np.array(["kg" in x for x in spec])
            x = np.round(rng.uniform(10, 300, sel.sum()))
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
        x = mv[rng.random(len(mv)) < 0.5]
        self.pe.add(stay=x, starttime=self.when(np.zeros(len(x), int), x, np.full(len(x), 30.0)),
                    endtime=self.when(np.zeros(len(x), int), x, np.full(len(x), 45.0)),
                    itemid=rng.choice([224263, 225459], len(x)))

    def run(self):
        self.vitals()
        self.respiratory()
        self.weights()
        self.labs()
        self.outputs()
        self.inputs()
        self.procedures()
        self.irrelevant()
        return self
