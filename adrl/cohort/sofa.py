"""SOFA per bin (cohort.md 3.11), standard (corrected) and AI Clinician (faithful) scoring.

Inputs are arrays of equal shape (NaN = missing). The cut-offs are the published SOFA definition (Vincent
et al. 1996), i.e. the score's definition rather than data; the urine cut-offs (500 / 200 mL per day) are
scaled to the bin length and rounded up (84 / 34 mL for 4 h, as cohort.md tabulates).
"""
from __future__ import annotations

import numpy as np


def _steps(x, cuts, descending):
    """Points = number of cut-offs crossed; NaN -> 0."""
    x = np.asarray(x, dtype=np.float64)
    pts = np.zeros(x.shape, np.int8)
    for c in cuts:
        with np.errstate(invalid="ignore"):
            pts += (x < c) if descending else (x >= c)
    return np.where(np.isnan(x), 0, pts).astype(np.int8)


def resp(pf, vent, standard: bool = True):
    pf = np.asarray(pf, np.float64)
    vent = np.asarray(vent, bool)
    with np.errstate(invalid="ignore"):
        p = np.where(pf < 400, 1, 0) + np.where(pf < 300, 1, 0)
        if standard:
            p = p + np.where((pf < 200) & vent, 1, 0) + np.where((pf < 100) & vent, 1, 0)
        else:
            p = p + np.where(pf < 200, 1, 0) + np.where(pf < 100, 1, 0)
    return np.where(np.isnan(pf), 0, p).astype(np.int8)


def coag(platelets):
    return _steps(platelets, (150, 100, 50, 20), descending=True)


def liver(bili):
    return _steps(bili, (1.2, 2.0, 6.0, 12.0), descending=False)


def cardio(map_, vaso_dose, standard: bool = True):
    m = np.asarray(map_, np.float64)
    d = np.nan_to_num(np.asarray(vaso_dose, np.float64), nan=0.0)
    with np.errstate(invalid="ignore"):
        p = np.where(m < 70, 1, 0)
        if not standard:
            p = np.where(m < 65, 2, p)
    p = np.where(d > 0, 3, p)
    p = np.where(d > 0.1, 4, p)
    return p.astype(np.int8)


def cns(gcs):
    g = np.asarray(gcs, np.float64)
    with np.errstate(invalid="ignore"):
        p = np.select([g < 6, g < 10, g < 13, g < 15], [4, 3, 2, 1], 0)
    return np.where(np.isnan(g), 0, p).astype(np.int8)


def renal(creat, urine_ml, bin_h: float, standard: bool = True):
    c = _steps(creat, (1.2, 2.0, 3.5, 5.0), descending=False)
    u = np.asarray(urine_ml, np.float64)
    if not standard:
        u = np.nan_to_num(u, nan=0.0)  # AI Clinician: no urine record counts as 0 mL
    scale = bin_h / 24.0
    with np.errstate(invalid="ignore"):
        up = np.select([u < np.ceil(200 * scale), u < np.ceil(500 * scale)], [4, 3], 0)
    up = np.where(np.isnan(u), 0, up)
    return np.maximum(c, up).astype(np.int8)


def sofa_total(pf, vent, platelets, bili, map_, vaso_dose, gcs, creat, urine_ml, bin_h: float,
               standard: bool = True):
    return (resp(pf, vent, standard).astype(np.int16) + coag(platelets) + liver(bili)
            + cardio(map_, vaso_dose, standard) + cns(gcs) + renal(creat, urine_ml, bin_h, standard)).astype(np.int8)
