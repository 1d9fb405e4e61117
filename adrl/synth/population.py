"""Who the patients are: statics, ICU length of stay, infection timeline, antibiotics, cultures, onset.

All times here are seconds relative to the stay's INTIME (absolute dates are assigned in world.py).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import catalogue as cat
from . import physiology as ph

H = 3600.0
DAY = 86400.0
KIND_SEPTIC, KIND_MILD, KIND_NONE = 0, 1, 2
P_KIND = (0.40, 0.12, 0.48)         # intended septic / mild infection / no infection
P_SYSTEM = (0.45, 0.53, 0.02)       # carevue / metavision / both
MAX_HOURS = 14 * 24


def sample_statics(rng: np.random.Generator, n: int, confounder: float = 0.0, kind=None) -> dict:
    """Baseline physiology and stay facts of n new stays (dict of (n,) arrays)."""
    S: dict[str, np.ndarray] = {}
    S["kind"] = rng.choice(3, size=n, p=P_KIND) if kind is None else np.full(n, kind)
    S["system"] = rng.choice(3, size=n, p=P_SYSTEM)
    u = rng.random(n)
    age = np.clip(rng.normal(64, 16, n), 18, 89)
    age = np.where(u < 0.04, 300.0, np.where(u < 0.065, rng.uniform(1, 17.9, n), age))
    S["age"] = age
    S["female"] = rng.random(n) < 0.44
    S["w0"] = np.clip(80 * np.exp(rng.normal(0, 0.22, n)) * np.where(age < 18, 0.6, 1.0), 25, 200)
    S["map0"] = rng.normal(80, 6, n)
    S["pp0"] = rng.normal(50, 8, n)
    S["hr0"] = rng.normal(84, 9, n)
    S["spo2_off"] = rng.normal(0, 1, n)
    S["fever"] = np.where(rng.random(n) < 0.85, 1.0, -1.0)
    S["hco3_off"] = rng.normal(0, 1.5, n)
    S["k0"] = rng.normal(4.1, 0.3, n)
    S["na0"] = rng.normal(139, 3, n)
    S["cl0"] = rng.normal(104, 3, n)
    S["glu0"] = rng.normal(125, 20, n)
    S["hb0"] = rng.normal(11, 1.5, n)
    S["wbc0"] = 8.5 * np.exp(rng.normal(0, 0.3, n))
    S["wbc_dir"] = np.where(rng.random(n) < 0.9, 1.0, -1.0)
    S["plt0"] = 230 * np.exp(rng.normal(0, 0.35, n))
    S["inr_off"] = np.abs(rng.normal(0, 0.08, n))
    S["bun0"] = 17 * np.exp(rng.normal(0, 0.4, n))
    S["cr0"] = 0.9 * np.exp(rng.normal(0, 0.3, n))
    S["bili0"] = 0.6 * np.exp(rng.normal(0, 0.4, n))
    S["uo0"] = np.clip(rng.normal(85, 20, n), 30, 160)
    S["U"] = rng.standard_normal(n)
    S["conf_risk"] = float(confounder) * 0.6 * S["U"]
    age_eff = np.clip(np.where(age > 150, 91.4, age), 18, 95)
    S["risk"] = 0.025 * (age_eff - 64) + rng.normal(0, 0.3, n)
    S["aline"] = rng.random(n) < 0.55
    S["vent0"] = rng.random(n) < np.where(S["kind"] == KIND_SEPTIC, 0.3, 0.2)
    S["lab_every"] = np.where(S["kind"] == KIND_SEPTIC, 8, 12)
    S["lab_phase"] = rng.integers(0, 8, n) % S["lab_every"]
    S["drug"] = rng.choice(5, size=n, p=[0.7, 0.12, 0.06, 0.06, 0.06])  # NE, phenyl, vasopressin, dopamine, epi
    sev = S["kind"]
    S["I0"] = np.where(sev == KIND_SEPTIC, 1.5 * np.exp(rng.normal(0, 0.3, n)),
                       np.where(sev == KIND_MILD, 0.3 * np.exp(rng.normal(0, 0.3, n)), 0.0))
    resistant = rng.random(n) < 0.08
    S["abx_eff"] = np.where(resistant, 0.006, 0.035 * np.exp(rng.normal(0, 0.3, n)))
    med = np.where(sev == KIND_SEPTIC, 80.0, np.where(sev == KIND_MILD, 60.0, 45.0))
    S["nh_plan"] = np.clip(med * np.exp(rng.normal(0, 0.75, n)), 14, MAX_HOURS).astype(np.int64)
    return S


def initial_latent(rng: np.random.Generator, S: dict, t_inf_h: np.ndarray) -> np.ndarray:
    """Latent state at INTIME. Stays whose infection is already present arrive with it."""
    n = len(S["kind"])
    z = np.zeros((n, ph.NL))
    present = t_inf_h <= 0
    I = np.where(present, S["I0"], 0.0)
    z[:, ph.iI] = I
    z[:, ph.iV] = -0.7 * I + rng.normal(0, 0.4, n)
    z[:, ph.iTn] = -0.6 * I + rng.normal(0, 0.2, n)
    base = np.abs(rng.normal(0, 0.25, (n, 5)))
    for j, col in enumerate((ph.iK, ph.iLv, ph.iP, ph.iC, ph.iB)):
        z[:, col] = base[:, j] + 0.35 * I * rng.random(n)
    z[:, ph.iLac] = 0.6 * I * rng.random(n)
    return z


def infection_timeline(rng: np.random.Generator, S: dict) -> dict:
    """True infection and antibiotic times (hours from INTIME) and the recorded abx / culture events.

    Returns dict with t_inf_h, t_abx_h (n,) and DataFrames abx (stay, t_h, gsn, drug, route, systemic) and
    cult (stay, t_h, t_s, date_only, ce: also charted in CareVue CHARTEVENTS, pe: also a MetaVision procedure)."""
    n = len(S["kind"])
    kind = S["kind"]
    infected = kind != KIND_NONE
    later = rng.random(n) < 0.45
    t_inf = np.where(later, rng.uniform(0, 40, n), rng.uniform(-20, 0, n))
    t_inf = np.where(infected, t_inf, np.inf)
    t_abx = t_inf + rng.uniform(0.5, 6, n)
    abx_rows, cult_rows = [], []
    ab = cat.antibiotics()
    sysab = ab[ab.systemic == 1].reset_index(drop=True)
    p_sys = sysab.weight.to_numpy(float) / sysab.weight.sum()
    # infected stays: 1-3 antibiotics starting on the day of the first dose (or the next day)
    idx = np.nonzero(infected)[0]
    k = rng.integers(1, 4, len(idx))
    st = np.repeat(idx, k)
    first = np.concatenate([[True], np.diff(st) != 0])
    dday = np.where(first, 0, rng.integers(0, 2, len(st)))
    drug = rng.choice(len(sysab), size=len(st), p=p_sys)
    abx_rows.append(pd.DataFrame({"stay": st, "t_h": t_abx[st] + 24.0 * dday, "ab": drug}))
    # cultures: 1-2 per infected stay around the infection time
    m = rng.integers(1, 3, len(idx))
    cs = np.repeat(idx, m)
    firstc = np.concatenate([[True], np.diff(cs) != 0])
    ct = t_inf[cs] + np.where(firstc, rng.uniform(-3, 8, len(cs)), rng.uniform(12, 48, len(cs)))
    cult_rows.append(pd.DataFrame({"stay": cs, "t_h": ct}))
    # non-infected stays: screening cultures without antibiotics, prophylactic antibiotics without cultures,
    # and a few with both but too far apart to pair
    none = np.nonzero(~infected)[0]
    u = rng.random(len(none))
    sc = none[u < 0.30]
    cult_rows.append(pd.DataFrame({"stay": sc, "t_h": rng.uniform(0, 48, len(sc))}))
    pr = none[(u >= 0.30) & (u < 0.42)]
    abx_rows.append(pd.DataFrame({"stay": pr, "t_h": rng.uniform(-10, 60, len(pr)),
                                  "ab": rng.choice(len(sysab), size=len(pr), p=p_sys)}))
    far = sc[rng.random(len(sc)) < 0.2]
    abx_rows.append(pd.DataFrame({"stay": far, "t_h": rng.uniform(100, 140, len(far)),
                                  "ab": rng.choice(len(sysab), size=len(far), p=p_sys)}))
    abx = pd.concat(abx_rows, ignore_index=True)
    abx["gsn"] = sysab.gsn.to_numpy()[abx.ab]
    abx["drug"] = sysab.drug.to_numpy()[abx.ab]
    abx["route"] = sysab.route.to_numpy()[abx.ab]
    abx = abx.drop(columns="ab")  # the catalogue index served only to look up gsn, drug and route
    abx["systemic"] = 1
    # a few non-systemic antibiotics (eye drops, inhaled, topical): the corrected recipe drops them
    ns = ab[ab.systemic == 0].reset_index(drop=True)
    eye = np.nonzero(rng.random(n) < 0.04)[0]
    j = rng.integers(0, len(ns), len(eye))
    abx = pd.concat([abx, pd.DataFrame({"stay": eye, "t_h": rng.uniform(-10, 60, len(eye)), "gsn": ns.gsn.to_numpy()[j],
                                        "drug": ns.drug.to_numpy()[j], "route": ns.route.to_numpy()[j],
                                        "systemic": 0})], ignore_index=True)
    cult = pd.concat(cult_rows, ignore_index=True)
    cult["t_s"] = np.round(cult.t_h.to_numpy() * 60) * 60  # minute resolution
    cult["date_only"] = rng.random(len(cult)) < 0.05       # MICROBIOLOGYEVENTS row with CHARTDATE only
    sysw = S["system"]
    cu = rng.random(len(cult))
    st_sys = sysw[cult.stay.to_numpy()]
    # where else the culture is charted: CE culture item (CareVue) or PE culture procedure (MetaVision)
    cult["ce"] = (st_sys == 0) & (cu < 0.5)
    cult["pe"] = (st_sys != 0) & (cu < 0.6)
    abx = abx.sort_values(["stay", "t_h"], kind="stable").reset_index(drop=True)
    cult = cult.sort_values(["stay", "t_s"], kind="stable").reset_index(drop=True)
    return {"t_inf_h": t_inf, "t_abx_h": t_abx, "abx": abx, "cult": cult}


def onset_relative(abx_days_s: pd.DataFrame, cult_s: pd.DataFrame, n: int,
                   abx_then_culture_h: float = 24.0, culture_then_abx_h: float = 72.0) -> np.ndarray:
    """Corrected earliest-pair onset (cohort.md 3.5) per stay; NaN where none.

    abx_days_s: columns stay, t (antibiotic time = STARTDATE midnight, seconds); cult_s: stay, t (seconds)."""
    pairs = abx_days_s[["stay", "t"]].merge(cult_s[["stay", "t"]], on="stay", suffixes=("_a", "_c"))
    a, c = pairs.t_a.to_numpy(), pairs.t_c.to_numpy()
    cand_a = np.where((c >= a) & (c <= a + abx_then_culture_h * H), a, np.inf)
    cand_c = np.where((a >= c) & (a <= c + culture_then_abx_h * H), c, np.inf)
    pairs["cand"] = np.minimum(cand_a, cand_c)
    best = pairs.groupby("stay").cand.min()
    out = np.full(n, np.nan)
    ok = np.isfinite(best.to_numpy())
    out[best.index.to_numpy()[ok]] = best.to_numpy()[ok]
    return out


def stay_clock(S: dict, tl: dict, intime: np.ndarray) -> dict:
    """Absolute times of n stays admitted at ``intime`` (seconds): antibiotic STARTDATEs and culture times
    (added to tl['abx'] / tl['cult'] as columns startdate, time, micro_time), the suspected-infection onset the
    corrected recipe finds (NaN = none), and the simulation clock: hour 0 of a stay starts at t0 (the whole
    hour, counted from the onset, that contains INTIME; from INTIME when there is no onset), k0 is that hour
    relative to the onset, inf_hour (sets S['inf_hour']) and abx_hour are hours of the stay's clock."""
    n = len(intime)
    abx, cult = tl["abx"], tl["cult"]
    st_a, st_c = abx.stay.to_numpy(), cult.stay.to_numpy()
    abx_abs = intime[st_a] + np.round(abx.t_h.to_numpy() * H).astype(np.int64)
    abx["startdate"] = abx_abs // int(DAY) * int(DAY)
    cult_abs = intime[st_c] + cult.t_s.to_numpy().astype(np.int64)
    cult["time"] = cult_abs
    cult["micro_time"] = np.where(cult.date_only, cult_abs // int(DAY) * int(DAY), cult_abs)
    sysab = abx[abx.systemic == 1]
    onset = onset_relative(pd.DataFrame({"stay": sysab.stay, "t": sysab.startdate}),
                           pd.concat([pd.DataFrame({"stay": cult.stay, "t": cult.micro_time}),
                                      pd.DataFrame({"stay": cult.stay[cult.ce | cult.pe],
                                                    "t": cult.time[cult.ce | cult.pe]})]), n)
    anchor = np.where(np.isnan(onset), intime, np.nan_to_num(onset)).astype(np.int64)
    k0 = np.floor((intime - anchor) / H).astype(np.int64)
    t0 = anchor + k0 * int(H)
    t_inf, t_abx = tl["t_inf_h"], tl["t_abx_h"]
    inf_hour = np.where(np.isfinite(t_inf), np.round((intime + np.nan_to_num(t_inf, posinf=0) * H - t0) / H), -10**6
                        ).astype(np.int64)
    S["inf_hour"] = np.where(t_inf <= 0, -1, inf_hour)
    abx_hour = np.where(np.isfinite(t_abx), (intime + np.nan_to_num(t_abx, posinf=0) * H - t0) / H, np.inf)
    return {"onset": onset, "t0": t0, "k0": k0, "abx_hour": abx_hour}
