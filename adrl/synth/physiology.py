"""Latent physiology of the synthetic ICU patient: hourly dynamics, observation model, SOFA and death hazard.

The latent state per patient (``NL`` numbers, vectorised over patients) is

====  ==========================================================================================
V     volume status (litres of effective circulating volume above euvolaemia; < 0 hypovolaemic)
Tn    native vascular tone (0 normal; infection drives it negative: distributive shock)
Tv    vascular tone added by vasopressors (rises with the NE-equivalent dose, saturating)
I     infection burden (grows until antibiotics work, then decays)
K     kidney injury, Lv liver injury, P lung injury, C coagulopathy, B brain dysfunction
X     vasopressor toxicity (myocardial / splanchnic ischaemia from high doses)
Lac   lactate above baseline (mmol/L)
====  ==========================================================================================

Treatment effects are separable by construction: fluids enter only the volume chain (V, and through V
hypovolaemic hypoperfusion and fluid-overload lung injury), vasopressors only the tone chain (Tv, and
through it vasodilatory hypoperfusion, plus toxicity X). Organ variables are linear in the additive
perfusion deficits ``Dv(V) + Dt(Tn + Tv)``, so over any number of hourly steps the effect of a fluid dose
on every latent variable does not depend on the vasopressor dose. ``interaction > 0`` adds coupling
terms: fluid volume retained more under vasopressors and vasopressor tone gain larger when volume is
given (synergy), and lung injury from fluid given under vasoconstriction (harm of the combination, so
that at interaction >= 1 fluid 1 L + vasopressor together is worse than either alone).
Over-treatment harms: V above 0.8 L injures the lungs, doses above 0.35 accumulate toxicity X.

Calibration (benchmarks/results/synth.md, measured with adrl/synth/policies.py): no treatment is more than
10 points of survival worse than the clinician, maximal fluid + vasopressor is lethal, a simple charted-value
rule beats the clinician by about 5 points and both its fluid-only and vasopressor-only variants are worse
than the combined rule; septic mortality under the clinician is about 20-25 %.
"""
from __future__ import annotations

import numpy as np

LATENT = ("V", "Tn", "Tv", "I", "K", "Lv", "P", "C", "B", "X", "Lac")
NL = len(LATENT)
iV, iTn, iTv, iI, iK, iLv, iP, iC, iB, iX, iLac = range(NL)
# standard deviation of the hourly exogenous noise of each latent variable
NOISE_SD = np.array([0.04, 0.04, 0.0, 0.02, 0.01, 0.006, 0.01, 0.008, 0.03, 0.0, 0.05])


def vaso_gain(dose):
    """Saturating fraction of the maximal tone effect reached at NE-eq dose (ug/kg/min)."""
    return dose / (dose + 0.25)


def perfusion_deficits(V, tone):
    """Hypovolaemic and vasodilatory hypoperfusion (additive, each a function of one chain only)."""
    return 0.8 * np.maximum(-V - 0.3, 0.0), 1.3 * np.maximum(-tone - 0.3, 0.0)


def hour_step(z, fluid_ml_h, vaso, abx_eff, eps, interaction=0.0):
    """One hour of latent dynamics. z: (n, NL); fluid_ml_h: mL given this hour (tonicity-equivalent);
    vaso: NE-eq ug/kg/min during the hour; abx_eff: antibiotic kill rate (0 = none); eps: (n, NL) N(0,1)."""
    V, Tn, Tv, I, K, Lv, P, C, B, X, Lac = (z[:, j] for j in range(NL))
    fl = np.asarray(fluid_ml_h, np.float64) / 1000.0
    g = vaso_gain(np.asarray(vaso, np.float64))
    eta = float(interaction)
    Ip = np.maximum(I, 0.0)
    Dv, Dt = perfusion_deficits(V, Tn + Tv)
    D = Dv + Dt
    out = np.empty_like(z)
    out[:, iV] = 0.985 * V + 0.8 * fl * (1.0 + eta * g) - 0.035 * Ip - 0.002
    out[:, iTn] = Tn + 0.1 * (-0.9 * Ip - Tn)
    out[:, iTv] = Tv + 0.6 * (1.4 * g * (1.0 + eta * np.tanh(4.0 * fl)) - Tv)
    out[:, iI] = I + 0.035 * Ip * (1.0 - Ip / 3.5) - abx_eff * Ip
    out[:, iK] = 0.98 * K + 0.04 * D + 0.004 * Ip
    out[:, iLv] = 0.99 * Lv + 0.015 * D + 0.003 * Ip
    out[:, iP] = 0.98 * P + 0.008 * Ip + 0.08 * np.maximum(V - 0.8, 0.0) + 1.5 * eta * fl * g
    out[:, iC] = 0.985 * C + 0.008 * Ip + 0.01 * D
    out[:, iB] = 0.95 * B + 0.02 * Ip + 0.05 * D
    out[:, iX] = 0.95 * X + 0.3 * np.maximum(np.asarray(vaso, np.float64) - 0.35, 0.0)
    out[:, iLac] = 0.8 * Lac + 0.5 * D + 0.3 * X + 0.03 * Lv + 0.02 * Ip
    out += eps * NOISE_SD
    return out


def transition(z, fluid_ml, vaso, abx_eff, eps, interaction=0.0, hours=4):
    """The one-step (one 4-hour bin) transition: ``fluid_ml`` spread evenly over the bin, ``vaso`` held.

    eps: (hours, n, NL) exogenous noise. Returns the latent state at the end of the bin."""
    z = np.asarray(z, np.float64)
    for h in range(hours):
        z = hour_step(z, np.asarray(fluid_ml) / hours, vaso, abx_eff, eps[h], interaction)
    return z


def hazard(z, vaso, static_risk):
    """Hourly death hazard from the physiological state (hypoperfusion, organ failures, lactate, toxicity)."""
    V, Tn, Tv, I, K, Lv, P, C, B, X, Lac = (z[:, j] for j in range(NL))
    Dv, Dt = perfusion_deficits(V, Tn + Tv)
    s = (1.5 * (Dv + Dt) + 0.3 * np.maximum(K, 0) + 0.45 * np.maximum(P, 0) + 0.25 * np.maximum(C, 0)
         + 0.25 * np.maximum(B, 0) + 0.25 * np.maximum(Lac, 0) + 0.8 * X + 0.6 * np.maximum(V - 2.5, 0))
    return np.exp(-10.4 + np.minimum(s, 12.0) + static_risk)


def severity(z):
    """Organ-failure summary at ICU discharge (drives post-ICU hospital death)."""
    return (0.35 * np.maximum(z[:, iK], 0) + 0.45 * np.maximum(z[:, iP], 0) + 0.25 * np.maximum(z[:, iC], 0)
            + 0.25 * np.maximum(z[:, iB], 0) + 0.25 * np.maximum(z[:, iLac], 0) + 0.2 * np.maximum(z[:, iI], 0))


def post_icu_death_prob(z):
    """Probability of dying in hospital after ICU discharge, from the organ state at discharge."""
    return 1.0 / (1.0 + np.exp(5.2 - severity(z)))


# ---------------------------------------------------------------------------------------------- observations
OBS_VARS = ("HR", "SysBP", "MeanBP", "DiaBP", "RR", "Temp", "SpO2", "FiO2", "O2flow", "paO2", "paCO2", "pH",
            "BE", "HCO3", "Lactate", "Potassium", "Sodium", "Chloride", "Glucose", "Magnesium", "Calcium", "Hb",
            "Hct", "WBC", "Platelets", "PTT", "PT", "INR", "BUN", "Creatinine", "AST", "ALT", "TBili", "DBili",
            "GCS", "Urine", "Weight")
OBS_INDEX = {v: j for j, v in enumerate(OBS_VARS)}
# multiplicative (log) or additive measurement noise sd per observed variable
MEAS_SD = {"HR": 3.0, "SysBP": 5.0, "MeanBP": 3.5, "DiaBP": 3.0, "RR": 1.5, "Temp": 0.15, "SpO2": 1.0,
           "paO2": 0.08, "paCO2": 0.05, "pH": 0.015, "BE": 0.8, "HCO3": 0.8, "Lactate": 0.08, "Potassium": 0.15,
           "Sodium": 1.0, "Chloride": 1.2, "Glucose": 0.1, "Magnesium": 0.08, "Calcium": 0.2, "Hb": 0.25,
           "WBC": 0.08, "Platelets": 0.06, "PTT": 0.05, "PT": 0.03, "INR": 0.03, "BUN": 0.06, "Creatinine": 0.05,
           "AST": 0.1, "ALT": 0.1, "TBili": 0.06, "Urine": 0.15, "Weight": 0.4}
LOG_NOISE = {"paO2", "paCO2", "Lactate", "Glucose", "WBC", "Platelets", "PTT", "PT", "INR", "BUN", "Creatinine",
             "AST", "ALT", "TBili", "Urine", "Magnesium"}


def observe(z, vaso, S, vent):
    """True (noise-free) observable values, (n, len(OBS_VARS)). S: dict of static arrays; vent: bool array."""
    n = z.shape[0]
    V, Tn, Tv, I, K, Lv, P, C, B, X, Lac = (z[:, j] for j in range(NL))
    Ip = np.maximum(I, 0)
    tone = Tn + Tv
    o = np.empty((len(OBS_VARS), n)).T  # column by column: each column contiguous
    mapv = S["map0"] + 10.0 * np.tanh(V) + 20.0 * tone - 4.0 * X
    pp = np.clip(S["pp0"] + 6.0 * tone + 5.0 * np.tanh(V), 15, 90)
    o[:, 2] = mapv
    o[:, 1] = mapv + 2.0 / 3.0 * pp
    o[:, 3] = mapv - pp / 3.0
    o[:, 0] = (S["hr0"] + 10.0 * Ip + 12.0 * np.maximum(-V, 0) + 6.0 * np.maximum(-tone, 0)
               + 15.0 * vaso_gain(np.asarray(vaso)) + 3.0 * np.maximum(Lac, 0) + 10.0 * X)
    Pp = np.maximum(P, 0)
    pf = 470.0 * np.exp(-0.75 * Pp)
    fio2 = np.where(vent, np.clip(0.3 + 0.18 * Pp, 0.3, 1.0), np.clip(0.21 + 0.1 * Pp, 0.21, 0.6))
    o[:, 7] = fio2
    o[:, 8] = np.where(vent, 0.0, np.clip(np.round(2 * (fio2 - 0.21) / 0.04) / 2, 0, 15))
    pao2 = np.clip(pf * fio2, 35, 600)
    o[:, 9] = pao2
    o[:, 6] = np.clip(100.0 * pao2 ** 2.7 / (pao2 ** 2.7 + 26.8 ** 2.7) + S["spo2_off"], 60, 100)
    o[:, 4] = 14.0 + 3.0 * Ip + 5.0 * Pp + 1.5 * np.maximum(Lac, 0)
    o[:, 5] = 37.0 + S["fever"] * 0.8 * Ip
    lact = 1.0 + np.logaddexp(0.0, 2.0 * Lac) / 2.0 - np.log(2) / 2
    o[:, 14] = lact
    hco3 = np.clip(24.0 + S["hco3_off"] - 1.8 * (lact - 1.0) - 1.2 * np.maximum(K, 0), 6, 45)
    pco2 = np.clip(np.where(vent, 38.0 + 0.2 * (hco3 - 24), 1.5 * hco3 + 8.0), 18, 90)
    ph = 6.1 + np.log10(hco3 / (0.0307 * pco2))
    o[:, 13], o[:, 10], o[:, 11] = hco3, pco2, ph
    o[:, 12] = 0.93 * (hco3 - 24.4 + 14.8 * (ph - 7.4))
    o[:, 15] = S["k0"] + 0.35 * np.maximum(K, 0)
    o[:, 16] = S["na0"] - 1.0 * np.maximum(V, 0)
    o[:, 17] = S["cl0"] + 1.2 * np.maximum(V, 0)
    o[:, 18] = S["glu0"] + 25.0 * Ip + 8.0 * np.maximum(Lac, 0)
    o[:, 19] = 2.0 - 0.08 * Ip
    o[:, 20] = 8.6 - 0.3 * Ip
    hb = np.clip(S["hb0"] - 0.6 * np.maximum(V, 0), 4, 18)
    o[:, 21] = hb
    o[:, 22] = 2.862 * hb + 1.216
    o[:, 23] = S["wbc0"] * np.exp(0.45 * Ip * S["wbc_dir"])
    o[:, 24] = S["plt0"] * np.exp(-0.45 * np.maximum(C, 0))
    inr = 1.05 + 0.35 * np.maximum(C, 0) + S["inr_off"]
    o[:, 27] = inr
    o[:, 26] = 12.5 + 10.0 * (inr - 1.0)
    o[:, 25] = 29.0 + 6.0 * np.maximum(C, 0)
    o[:, 28] = S["bun0"] * (1.0 + 0.9 * np.maximum(K, 0))
    o[:, 29] = S["cr0"] * (1.0 + 0.8 * np.maximum(K, 0))
    o[:, 30] = 28.0 * np.exp(0.9 * np.maximum(Lv, 0))
    o[:, 31] = 25.0 * np.exp(0.8 * np.maximum(Lv, 0))
    tb = S["bili0"] * np.exp(0.7 * np.maximum(Lv, 0))
    o[:, 32] = tb
    o[:, 33] = np.maximum(0.6934 * tb - 0.1752, 0.1)
    o[:, 34] = np.clip(np.round(15.0 - 2.4 * np.maximum(B, 0)), 3, 15)
    sig = 1.0 / (1.0 + np.exp(-(mapv - 55.0) / 5.0))
    o[:, 35] = np.clip(S["uo0"] * np.exp(-0.6 * np.maximum(K, 0)) * (1 + 0.5 * np.tanh(V)) * sig, 0, 600)
    o[:, 36] = S["w0"] + V
    return o


def measure(o, rng):
    """Add measurement noise to true observations (n, len(OBS_VARS))."""
    m = o.copy(order="K")  # observe() gives contiguous columns: so does the copy
    z = rng.standard_normal(o.shape)
    for v, sd in MEAS_SD.items():
        j = OBS_INDEX[v]
        if v in LOG_NOISE:
            m[:, j] = o[:, j] * np.exp(sd * z[:, j])
        else:
            m[:, j] = o[:, j] + sd * z[:, j]
    m[:, OBS_INDEX["SpO2"]] = np.minimum(m[:, OBS_INDEX["SpO2"]], 100.0)
    m[:, OBS_INDEX["Hct"]] = 2.862 * m[:, OBS_INDEX["Hb"]] + 1.216
    return m


def sofa(o, vaso, vent):
    """SOFA (cohort.md 3.11, standard cut-offs, creatinine only for renal) from observations.

    The respiratory points need a P/F ratio, i.e. an arterial blood gas, which the ICU draws (and charting
    writes) only for ventilated or shocked patients (lactate > 2.5): elsewhere they score 0, as in the data."""
    g = lambda v: o[:, OBS_INDEX[v]]  # noqa: E731
    pf = g("paO2") / np.maximum(g("FiO2"), 0.21)
    gas = vent | (g("Lactate") > 2.5)
    resp = np.where(gas, np.select([(pf < 100) & vent, (pf < 200) & vent, pf < 300, pf < 400], [4, 3, 2, 1], 0), 0)
    plt = g("Platelets")
    coag = np.select([plt < 20, plt < 50, plt < 100, plt < 150], [4, 3, 2, 1], 0)
    tb = g("TBili")
    liver = np.select([tb >= 12, tb >= 6, tb >= 2, tb >= 1.2], [4, 3, 2, 1], 0)
    cv = np.select([vaso > 0.1, vaso > 0, g("MeanBP") < 70], [4, 3, 1], 0)
    gcs = g("GCS")
    cns = np.select([gcs < 6, gcs < 10, gcs < 13, gcs < 15], [4, 3, 2, 1], 0)
    cr = g("Creatinine")
    ren = np.select([cr >= 5, cr >= 3.5, cr >= 2, cr >= 1.2], [4, 3, 2, 1], 0)
    return resp + coag + liver + cv + cns + ren
