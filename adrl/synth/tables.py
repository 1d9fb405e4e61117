"""Assemble a simulated World into the MIMIC-III v1.4 tables and write them atomically."""
from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..io import atomic_path
from . import catalogue as cat
from .charting import TEXT, format_numbers
from .writer import SPANNED, Col, TableWriter, const, raw, write_table

log = logging.getLogger("adrl.synth")
DAY = 86400
BUILD_THREAD = True  # build chunk c's columns in a thread while the main thread charts chunk c + 1
ORDER = {"ce": ["stay", "itemid", "charttime", "value", "vcode", "valuenum", "valueuom"],
         "le": ["stay", "itemid", "charttime", "value", "vcode", "valuenum", "valueuom", "flag"],
         "out": ["stay", "charttime", "itemid", "value", "valueuom", "iserror"],
         "icv": ["stay", "charttime", "itemid", "amount", "amountuom", "rate", "rateuom"],
         "imv": ["stay", "starttime", "endtime", "itemid", "amount", "amountuom", "rate", "rateuom",
                 "patientweight", "statusdescription"],
         "pe": ["stay", "starttime", "endtime", "itemid"]}


# text columns turned into codes part by part, before concatenating and sorting (moving int32 codes is
# cheaper than moving Python strings); the writer prints the same text either way
CODED = ("valueuom", "flag", "amountuom", "rateuom", "statusdescription")


class Coded(NamedTuple):
    """A text column as int32 codes (-1 = NULL) into ``cats``."""
    codes: np.ndarray
    cats: list


def _encode_parts(arrs) -> Coded:
    index: dict[str, int] = {}
    out = []
    for a in arrs:
        k, u = pd.factorize(a, use_na_sentinel=True)
        tab = np.array([index.setdefault(str(x), len(index)) for x in u] + [-1], np.int32)
        out.append(tab[np.where(k < 0, len(u), k)])
    return Coded(np.concatenate(out), list(index))


def _concat(parts, cols):
    out = {}
    for c in cols:
        arrs = [p[c] for p in parts if c in p]
        if c in CODED and arrs and all(a.dtype == object for a in arrs):
            out[c] = _encode_parts(arrs)
        else:
            out[c] = np.concatenate(arrs) if arrs else np.array([])
    return out


def _t(sec):
    return np.asarray(sec, np.int64).astype("datetime64[s]")


def _cat(values):
    if isinstance(values, Coded):
        return Col("cat", values.codes, cats=values.cats)
    v = pd.Series(values, dtype=object)
    codes, uniq = pd.factorize(v, use_na_sentinel=True)
    return Col("cat", codes.astype(np.int32), cats=[str(x) for x in uniq])


def _value(value, vcode):
    """VALUE: text codes first, then each distinct number formatted once (as charting.value_strings, but
    numbers are numbered by first appearance, a hash pass instead of a sort: only the text matters here)."""
    value = np.asarray(value, np.float64)
    codes = np.asarray(vcode, np.int32).copy()
    num = (codes < 0) & ~np.isnan(value)
    inv, uq = pd.factorize(value[num])
    base = len(TEXT.strings)
    codes[num] = base + inv.astype(np.int32)
    return Col("cat", codes, cats=TEXT.strings[:base] + format_numbers(uq))


def _fnum(x, dec=4):
    return Col("float", np.asarray(x, float), decimals=dec)


def _frame(world, key, parts):
    """One chunk's rows of one event table: columns concatenated, times shifted, sorted by stay and time."""
    cols = ORDER[key]
    d = _concat(parts, cols)
    st = np.asarray(d["stay"], np.int64)
    for tc in ("charttime", "starttime", "endtime"):
        if tc in d and len(d[tc]):
            d[tc] = np.asarray(d[tc], np.int64) + world.shift[st]
    tcol = "charttime" if "charttime" in d else "starttime"
    t = np.asarray(d[tcol], np.int64)
    o = _stay_time_order(st, t, world.intime)
    return {c: Coded(v.codes[o], v.cats) if isinstance(v, Coded) else v[o] for c, v in d.items()}


def _stay_time_order(st, t, intime):
    """The permutation np.lexsort((t, st)) (stable: ties keep their order), computed faster.

    Fast path: one int64 key per row, stay | time since the stay's INTIME | row number, all distinct, so a
    plain (unstable, SIMD) np.sort orders them exactly as the stable sort and the row numbers are the
    permutation. Times are taken relative to the stay's INTIME (a constant per stay), so the order within a
    stay is unchanged. Falls back to the stable sorts when the three fields do not fit in 63 bits."""
    m = len(t)
    if not m:
        return np.zeros(0, np.int64)
    if st.min() >= 0:
        rel = t - np.asarray(intime, np.int64)[st]
        rmin = rel.min()
        rel -= rmin
        b_i, b_t, b_s = int(m - 1).bit_length(), int(rel.max()).bit_length(), int(st.max()).bit_length()
        if b_i + b_t + b_s <= 63:
            key = (st << (b_t + b_i)) | (rel << b_i) | np.arange(m, dtype=np.int64)
            key.sort()
            return key & ((1 << b_i) - 1)
    if t.max() - t.min() < (1 << 40) and 0 <= st.min() and st.max() < (1 << 22):
        return np.argsort(st * (1 << 40) + (t - t.min()), kind="stable")
    return np.lexsort((t, st))


def _ce(world, ce, rng, off):
    m = len(ce["stay"])
    st = np.asarray(ce["stay"], np.int64)
    mv = world.S["system"][st] != 0
    err = mv & (rng.random(m) < 0.004)
    no_icu = rng.random(m) < 0.003
    vn = ce["valuenum"].astype(float)
    vn_err = np.where(err & ~np.isnan(vn), vn * 1.6, vn)
    charttime = np.asarray(ce["charttime"], np.int64)
    e = err & ~np.isnan(vn)  # a wrong value, marked ERROR = 1: VALUE shows it too
    value = np.where(e, np.round(vn_err, 2), ce["value"].astype(float))
    vcode = np.where(e, -1, ce["vcode"]).astype(np.int32)
    # SUBJECT_ID,HADM_ID,ICUSTAY_ID rendered once per stay (ICUSTAY_ID NULL for no_icu rows), and
    # WARNING,ERROR,RESULTSTATUS,STOPPED from their three combinations (MetaVision: 0,0|1; CareVue: NotStopd)
    return {"ROW_ID": Col("int", off + np.arange(1, m + 1)), "SUBJECT_ID": _stay_ids(world, st, no_icu),
            "HADM_ID": SPANNED, "ICUSTAY_ID": SPANNED,
            "ITEMID": Col("int", np.asarray(ce["itemid"], np.int64)), "CHARTTIME": Col("time", _t(charttime)),
            "STORETIME": Col("time", _t(charttime + (rng.integers(1, 90, m) * 60))),
            "CGID": Col("int", 14000 + (st * 37 + charttime // 43200) % 7000),
            "VALUE": _value(value, vcode), "VALUENUM": _fnum(vn_err, 4), "VALUEUOM": _cat(ce["valueuom"]),
            "WARNING": raw(np.where(mv, err, 2).astype(np.int32), ["0,0,,", "0,1,,", ',,,"NotStopd"'], 4),
            "ERROR": SPANNED, "RESULTSTATUS": SPANNED, "STOPPED": SPANNED}, m


def _stay_ids(world, st, no_icu):
    """The raw column SUBJECT_ID,HADM_ID,ICUSTAY_ID of rows of stays ``st`` (ICUSTAY_ID empty where no_icu)."""
    if len(st) and np.all(st[1:] >= st[:-1]):  # sorted by stay (as _frame leaves them): no sort needed
        new = np.concatenate([[True], st[1:] != st[:-1]])
        u, inv = st[new], np.cumsum(new) - 1
    else:
        u, inv = np.unique(st, return_inverse=True)
    txt = [pc.cast(pa.array(x[u]), pa.string()) for x in (world.subject_id, world.hadm_id, world.icustay_id)]
    text = pa.concat_arrays([pc.binary_join_element_wise(*txt, ","), pc.binary_join_element_wise(*txt[:2], "", ",")])
    return raw((inv.reshape(-1) + np.where(no_icu, len(u), 0)).astype(np.int32), text, 3)


def _le(world, le, rng, off):
    sid, hid = world.subject_id, world.hadm_id
    m = len(le["stay"])
    st = np.asarray(le["stay"], np.int64)
    outpat = rng.random(m) < 0.03
    lt = np.asarray(le["charttime"], np.int64) - np.where(outpat, rng.integers(30, 300, m) * DAY, 0)
    return {"ROW_ID": Col("int", off + np.arange(1, m + 1)), "SUBJECT_ID": Col("int", sid[st]),
            "HADM_ID": Col("int", hid[st], mask=outpat), "ITEMID": Col("int", np.asarray(le["itemid"], np.int64)),
            "CHARTTIME": Col("time", _t(lt)), "VALUE": _value(le["value"], le["vcode"]), "VALUENUM": _fnum(le["valuenum"]),
            "VALUEUOM": _cat(le["valueuom"]), "FLAG": _cat(le["flag"])}, m


def _out(world, o, rng, off):
    sid, hid, iid = world.subject_id, world.hadm_id, world.icustay_id
    m = len(o["stay"])
    st = np.asarray(o["stay"], np.int64)
    ct = np.asarray(o["charttime"], np.int64)
    return {"ROW_ID": Col("int", off + np.arange(1, m + 1)), "SUBJECT_ID": Col("int", sid[st]),
            "HADM_ID": Col("int", hid[st]), "ICUSTAY_ID": Col("int", iid[st]), "CHARTTIME": Col("time", _t(ct)),
            "ITEMID": Col("int", np.asarray(o["itemid"], np.int64)), "VALUE": _fnum(o["value"]), "VALUEUOM": _cat(o["valueuom"]),
            "STORETIME": Col("time", _t(ct + 1800)), "CGID": Col("int", 15000 + st % 5000), "STOPPED": const(None, m),
            "NEWBOTTLE": const(None, m), "ISERROR": _fnum(o["iserror"], 0)}, m


def _icv(world, c, rng, off):
    sid, hid, iid = world.subject_id, world.hadm_id, world.icustay_id
    m = len(c["stay"])
    st = np.asarray(c["stay"], np.int64)
    ct = np.asarray(c["charttime"], np.int64)
    oid = 1000000 + off + np.arange(m)
    return {"ROW_ID": Col("int", off + np.arange(1, m + 1)), "SUBJECT_ID": Col("int", sid[st]),
            "HADM_ID": Col("int", hid[st]), "ICUSTAY_ID": Col("int", iid[st]), "CHARTTIME": Col("time", _t(ct)),
            "ITEMID": Col("int", np.asarray(c["itemid"], np.int64)), "AMOUNT": _fnum(c["amount"]),
            "AMOUNTUOM": _cat(c["amountuom"]), "RATE": _fnum(c["rate"]), "RATEUOM": _cat(c["rateuom"]),
            "STORETIME": Col("time", _t(ct + 1200)), "CGID": Col("int", 15000 + st % 5000), "ORDERID": Col("int", oid),
            "LINKORDERID": Col("int", oid), "STOPPED": const(None, m), "NEWBOTTLE": const(None, m),
            "ORIGINALAMOUNT": const(None, m), "ORIGINALAMOUNTUOM": _cat(c["amountuom"]),
            "ORIGINALROUTE": const("Intravenous", m), "ORIGINALRATE": _fnum(c["rate"]),
            "ORIGINALRATEUOM": _cat(c["rateuom"]), "ORIGINALSITE": const(None, m)}, m


def _imv(world, c, rng, off):
    sid, hid, iid = world.subject_id, world.hadm_id, world.icustay_id
    m = len(c["stay"])
    st = np.asarray(c["stay"], np.int64)
    s0 = np.asarray(c["starttime"], np.int64)
    e0 = np.asarray(c["endtime"], np.int64)
    is_vaso = np.isin(np.asarray(c["itemid"], np.int64), [221906, 221289, 221749, 221662, 222315])
    oid = 2000000 + off + np.arange(m)
    return {"ROW_ID": Col("int", off + np.arange(1, m + 1)), "SUBJECT_ID": Col("int", sid[st]),
            "HADM_ID": Col("int", hid[st]), "ICUSTAY_ID": Col("int", iid[st]), "STARTTIME": Col("time", _t(s0)),
            "ENDTIME": Col("time", _t(e0)), "ITEMID": Col("int", np.asarray(c["itemid"], np.int64)),
            "AMOUNT": _fnum(c["amount"], 6), "AMOUNTUOM": _cat(c["amountuom"]), "RATE": _fnum(c["rate"], 6),
            "RATEUOM": _cat(c["rateuom"]), "STORETIME": Col("time", _t(e0 + 600)), "CGID": Col("int", 15000 + st % 5000),
            "ORDERID": Col("int", oid), "LINKORDERID": Col("int", oid),
            "ORDERCATEGORYNAME": _cat(np.where(is_vaso, "01-Drips", "02-Fluids (Crystalloids)")),
            "SECONDARYORDERCATEGORYNAME": const(None, m), "ORDERCOMPONENTTYPEDESCRIPTION": const("Main order parameter", m),
            "ORDERCATEGORYDESCRIPTION": _cat(np.where(is_vaso | ~np.isnan(c["rate"].astype(float)), "Continuous Med",
                                                      "Bolus")),
            "PATIENTWEIGHT": _fnum(c["patientweight"], 1), "TOTALAMOUNT": const(None, m), "TOTALAMOUNTUOM": const(None, m),
            "ISOPENBAG": Col("int", np.zeros(m, np.int64)), "CONTINUEINNEXTDEPT": Col("int", np.zeros(m, np.int64)),
            "CANCELREASON": Col("int", np.zeros(m, np.int64)), "STATUSDESCRIPTION": _cat(c["statusdescription"]),
            "COMMENTS_EDITEDBY": const(None, m), "COMMENTS_CANCELEDBY": const(None, m), "COMMENTS_DATE": const(None, m),
            "ORIGINALAMOUNT": _fnum(c["amount"], 6), "ORIGINALRATE": _fnum(c["rate"], 6)}, m


def _pe(world, pst, ps, pend, pit, off):
    sid, hid, iid = world.subject_id, world.hadm_id, world.icustay_id
    m = len(pst)
    oid = 3000000 + off + np.arange(m)
    return {"ROW_ID": Col("int", off + np.arange(1, m + 1)), "SUBJECT_ID": Col("int", sid[pst]),
            "HADM_ID": Col("int", hid[pst]), "ICUSTAY_ID": Col("int", iid[pst]), "STARTTIME": Col("time", _t(ps)),
            "ENDTIME": Col("time", _t(pend)), "ITEMID": Col("int", pit), "VALUE": _fnum((pend - ps) / 60.0, 0),
            "VALUEUOM": const("min", m), "LOCATION": const(None, m), "LOCATIONCATEGORY": const(None, m),
            "STORETIME": Col("time", _t(pend + 600)), "CGID": Col("int", 15000 + pst % 5000), "ORDERID": Col("int", oid),
            "LINKORDERID": Col("int", oid), "ORDERCATEGORYNAME": const("Procedures", m),
            "SECONDARYORDERCATEGORYNAME": const(None, m), "ORDERCATEGORYDESCRIPTION": const("Task", m),
            "ISOPENBAG": Col("int", np.zeros(m, np.int64)), "CONTINUEINNEXTDEPT": Col("int", np.zeros(m, np.int64)),
            "CANCELREASON": Col("int", np.zeros(m, np.int64)), "STATUSDESCRIPTION": const("FinishedRunning", m),
            "COMMENTS_EDITEDBY": const(None, m), "COMMENTS_CANCELEDBY": const(None, m), "COMMENTS_DATE": const(None, m)}, m


EVENT_TABLES = {"ce": ("CHARTEVENTS", _ce), "le": ("LABEVENTS", _le), "out": ("OUTPUTEVENTS", _out),
                "icv": ("INPUTEVENTS_CV", _icv), "imv": ("INPUTEVENTS_MV", _imv), "pe": ("PROCEDUREEVENTS_MV", None)}


def write_world(world, out_dir: Path, progress: bool | None = None) -> dict:
    """Write every table of the world into ``out_dir`` (atomically: a temp dir renamed into place).

    The event tables are streamed chunk of stays by chunk (ROW_IDs continue across chunks), so memory does
    not grow with the number of stays."""
    t_start = time.time()
    rows = {}
    n = world.p.stays
    rng = np.random.default_rng([world.p.seed, 41])
    sid, hid, iid = world.subject_id, world.hadm_id, world.icustay_id
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        writers = {k: TableWriter(tmp / f"{t}.csv.gz", t) for k, (t, _) in EVENT_TABLES.items()}
        offsets = {k: 0 for k in writers}
        pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="synth-writer")
        builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="synth-build")

        def build(c, ev, wait_for):
            """Rows of chunk c sorted and turned into table columns (one builder thread, chunks in order, so
            ROW_IDs continue), then handed to the writers once chunk c - 1 is compressed."""
            jobs = []
            for j, (key, parts) in enumerate(ev.items()):
                if not parts:
                    continue
                d = _frame(world, key, parts)
                r = np.random.default_rng([world.p.seed, 41, c, j])
                if key == "pe":
                    cols, m = _pe(world, np.asarray(d["stay"], np.int64), np.asarray(d["starttime"], np.int64),
                                  np.asarray(d["endtime"], np.int64), np.asarray(d["itemid"], np.int64), offsets[key])
                else:
                    cols, m = EVENT_TABLES[key][1](world, d, r, offsets[key])
                offsets[key] += m
                jobs.append((writers[key], cols, m))
                del d
            del ev
            for f in wait_for:
                f.result()
            return [f for w, cols, m in jobs for f in w.write_async(cols, m, pool)]

        # pipeline: the main thread charts chunk c + 1 while the builder turns chunk c into columns and the
        # writer threads render (pyarrow, GIL released) and compress (ISA-L, one thread per table, in order)
        # chunk c - 1; at most these three chunks are in memory
        built = None
        try:
            for c, ev in world.iter_events(progress):
                prev = built.result() if built is not None else []
                if BUILD_THREAD:
                    built = builder.submit(build, c, ev, prev)
                else:
                    built = Future()
                    built.set_result(build(c, ev, prev))
                del ev
            for f in (built.result() if built is not None else []):
                f.result()
            # PROCEDUREEVENTS_MV: culture orders after the charted procedures
            cu = world.cult[world.cult.pe]
            pitems = cat.choice("CulturePE", "mv")
            kk = pitems.pick(rng, len(cu))
            cst = cu.stay.to_numpy()
            ct = cu.time.to_numpy() + world.shift[cst]
            o = np.lexsort((ct, cst))
            w = writers["pe"]
            w.write(*_pe(world, cst[o], ct[o], ct[o] + 60, pitems.itemids[kk][o], w.rows))
        finally:
            builder.shutdown(wait=True, cancel_futures=True)
            pool.shutdown(wait=True, cancel_futures=True)
            for w in writers.values():
                w.close()
        for key, w in writers.items():
            rows[w.table] = w.rows
        # ---------------------------------------------------------------- MICROBIOLOGYEVENTS
        cu = world.cult
        cst = cu.stay.to_numpy()
        ctime = cu.time.to_numpy() + world.shift[cst]
        spec = cat.choice("Micro", "lab")
        ks = spec.pick(rng, len(cu))
        pos = rng.random(len(cu)) < np.where(world.S["kind"][cst] == 0, 0.45, 0.1)
        orgs = cat.organisms()
        ko = rng.integers(0, len(orgs), len(cu))
        rep = np.where(pos, 2, 1)
        r_st = np.repeat(np.arange(len(cu)), rep)
        first = np.concatenate([[True], np.diff(r_st) != 0]) if len(r_st) else np.zeros(0, bool)
        org_row = pos[r_st] & ~first
        m = len(r_st)
        rows["MICROBIOLOGYEVENTS"] = write_table(tmp / "MICROBIOLOGYEVENTS.csv.gz", "MICROBIOLOGYEVENTS", {
            "ROW_ID": Col("int", np.arange(1, m + 1)), "SUBJECT_ID": Col("int", sid[cst[r_st]]),
            "HADM_ID": Col("int", hid[cst[r_st]]), "CHARTDATE": Col("time", _t(ctime[r_st] // DAY * DAY)),
            "CHARTTIME": Col("time", _t(ctime[r_st]), mask=cu.date_only.to_numpy()[r_st]),
            "SPEC_ITEMID": Col("int", spec.itemids[ks][r_st]), "SPEC_TYPE_DESC": _cat(np.array(spec.uoms, object)[ks][r_st]),
            "ORG_ITEMID": Col("int", orgs.org_itemid.to_numpy()[ko][r_st], mask=~org_row),
            "ORG_NAME": _cat(np.where(org_row, orgs.org_name.to_numpy()[ko][r_st], None)),
            "ISOLATE_NUM": Col("int", np.ones(m, np.int64), mask=~org_row),
            "AB_ITEMID": Col("int", orgs.ab_itemid.to_numpy()[ko][r_st], mask=~org_row),
            "AB_NAME": _cat(np.where(org_row, orgs.ab_name.to_numpy()[ko][r_st], None)),
            "DILUTION_TEXT": _cat(np.where(org_row, "<=1", None)), "DILUTION_COMPARISON": _cat(np.where(org_row, "<=", None)),
            "DILUTION_VALUE": Col("int", np.ones(m, np.int64), mask=~org_row),
            "INTERPRETATION": _cat(np.where(org_row, "S", None))}, m)
        # ---------------------------------------------------------------- PRESCRIPTIONS
        ab = world.abx
        ast = ab.stay.to_numpy()
        od = cat.other_drugs()
        k_other = rng.poisson(4, n)
        ost = np.repeat(np.arange(n), k_other)
        oj = rng.choice(len(od), size=len(ost), p=od.weight.to_numpy(float) / od.weight.sum())
        ostart = (world.intime[ost] + rng.uniform(-12, 48, len(ost)) * 3600).astype(np.int64) // DAY * DAY
        p_st = np.concatenate([ast, ost])
        p_start = np.concatenate([ab.startdate.to_numpy() + world.shift[ast], ostart])
        p_end = p_start + np.concatenate([rng.integers(1, 10, len(ast)), rng.integers(-1, 6, len(ost))]) * DAY
        drug = np.concatenate([ab.drug.to_numpy(), od.drug.to_numpy()[oj]]).astype(object)
        gsn = np.concatenate([ab.gsn.to_numpy(), od.gsn.to_numpy()[oj]]).astype(object)
        gsn = np.where(gsn == "", None, gsn)
        route = np.concatenate([ab.route.to_numpy(), od.route.to_numpy()[oj]]).astype(object)
        dtype_ = np.concatenate([np.full(len(ast), "MAIN", object), od.drug_type.to_numpy()[oj]])
        o = np.lexsort((p_start, p_st))
        p_st, p_start, p_end, drug, gsn, route, dtype_ = (x[o] for x in (p_st, p_start, p_end, drug, gsn, route, dtype_))
        m = len(p_st)
        rows["PRESCRIPTIONS"] = write_table(tmp / "PRESCRIPTIONS.csv.gz", "PRESCRIPTIONS", {
            "ROW_ID": Col("int", np.arange(1, m + 1)), "SUBJECT_ID": Col("int", sid[p_st]), "HADM_ID": Col("int", hid[p_st]),
            "ICUSTAY_ID": Col("int", iid[p_st], mask=rng.random(m) < 0.33), "STARTDATE": Col("time", _t(p_start)),
            "ENDDATE": Col("time", _t(p_end)), "DRUG_TYPE": _cat(dtype_), "DRUG": _cat(drug), "DRUG_NAME_POE": _cat(drug),
            "DRUG_NAME_GENERIC": _cat(drug), "FORMULARY_DRUG_CD": _cat(np.char.upper(np.array([d[:6] for d in drug], str)).astype(object)),
            "GSN": _cat(gsn), "NDC": const("0", m), "PROD_STRENGTH": const(None, m), "DOSE_VAL_RX": const(None, m),
            "DOSE_UNIT_RX": const(None, m), "FORM_VAL_DISP": const(None, m), "FORM_UNIT_DISP": const(None, m),
            "ROUTE": _cat(route)}, m)
        # ---------------------------------------------------------------- ICUSTAYS / ADMISSIONS / PATIENTS
        cu_ = ["carevue", "metavision", "both"]
        unit = CAREUNITS_of(rng, n)
        age = world.S["age"]
        unit = np.where(age < 1.0, "NICU", unit).astype(object)
        los = (world.out_s - world.intime) / DAY
        rows["ICUSTAYS"] = write_table(tmp / "ICUSTAYS.csv.gz", "ICUSTAYS", {
            "ROW_ID": Col("int", np.arange(1, n + 1)), "SUBJECT_ID": Col("int", sid), "HADM_ID": Col("int", hid),
            "ICUSTAY_ID": Col("int", iid), "DBSOURCE": Col("cat", world.S["system"].astype(np.int32), cats=cu_),
            "FIRST_CAREUNIT": _cat(unit), "LAST_CAREUNIT": _cat(unit), "FIRST_WARDID": Col("int", 10 + np.arange(n) % 50),
            "LAST_WARDID": Col("int", 10 + np.arange(n) % 50), "INTIME": Col("time", _t(world.intime)),
            "OUTTIME": Col("time", _t(world.out_s)), "LOS": _fnum(los, 4)}, n)
        a = world.adm
        ai = a.index.to_numpy()
        m = len(a)
        died = a.death.to_numpy() >= 0
        rows["ADMISSIONS"] = write_table(tmp / "ADMISSIONS.csv.gz", "ADMISSIONS", {
            "ROW_ID": Col("int", np.arange(1, m + 1)), "SUBJECT_ID": Col("int", sid[ai]), "HADM_ID": Col("int", hid[ai]),
            "ADMITTIME": Col("time", _t(a.admit.to_numpy())), "DISCHTIME": Col("time", _t(a.disch.to_numpy())),
            "DEATHTIME": Col("time", _t(a.death.to_numpy()), mask=~died), "ADMISSION_TYPE": const("EMERGENCY", m),
            "ADMISSION_LOCATION": const("EMERGENCY ROOM ADMIT", m),
            "DISCHARGE_LOCATION": _cat(np.where(died, "DEAD/EXPIRED", "HOME HEALTH CARE")), "INSURANCE": const("Medicare", m),
            "LANGUAGE": const(None, m), "RELIGION": const(None, m), "MARITAL_STATUS": const(None, m),
            "ETHNICITY": const("UNKNOWN/NOT SPECIFIED", m), "EDREGTIME": const(None, m), "EDOUTTIME": const(None, m),
            "DIAGNOSIS": _cat(np.where(world.S["kind"][ai] == 0, "SEPSIS", "OTHER")),
            "HOSPITAL_EXPIRE_FLAG": Col("int", died.astype(np.int64)), "HAS_CHARTEVENTS_DATA": Col("int", np.ones(m, np.int64))}, m)
        d = world.subj_death
        si = d.index.to_numpy()
        m = len(d)
        dh = d.death.to_numpy()
        ssn_h = (dh >= 0) & (rng.random(m) < 0.7)
        dod_hosp = np.where(dh >= 0, dh // DAY * DAY, -1)
        dod_ssn = np.where(ssn_h, dod_hosp, d.dod_ssn_late.to_numpy() // DAY * DAY)
        dod_ssn = np.where(d.dod_ssn_late.to_numpy() >= 0, dod_ssn, np.where(ssn_h, dod_hosp, -1))
        dod = np.where(dod_hosp >= 0, dod_hosp, dod_ssn)
        rows["PATIENTS"] = write_table(tmp / "PATIENTS.csv.gz", "PATIENTS", {
            "ROW_ID": Col("int", np.arange(1, m + 1)), "SUBJECT_ID": Col("int", sid[si]),
            "GENDER": Col("cat", (~world.S["female"][si]).astype(np.int32), cats=["F", "M"]),
            "DOB": Col("time", _t(world.dob.loc[si].to_numpy())), "DOD": Col("time", _t(dod), mask=dod < 0),
            "DOD_HOSP": Col("time", _t(dod_hosp), mask=dod_hosp < 0), "DOD_SSN": Col("time", _t(dod_ssn), mask=dod_ssn < 0),
            "EXPIRE_FLAG": Col("int", (dod >= 0).astype(np.int64))}, m)
        # ---------------------------------------------------------------- dictionaries
        it = cat.items()
        di = it[it.dictionary == "d_items"].reset_index(drop=True)
        m = len(di)
        s = lambda c: Col("str", di[c].to_numpy(object), mask=(di[c] == "").to_numpy())  # noqa: E731
        rows["D_ITEMS"] = write_table(tmp / "D_ITEMS.csv.gz", "D_ITEMS", {
            "ROW_ID": Col("int", np.arange(1, m + 1)), "ITEMID": Col("int", di.itemid.to_numpy(np.int64)),
            "LABEL": s("label"), "ABBREVIATION": s("abbreviation"), "DBSOURCE": s("dbsource"), "LINKSTO": s("linksto"),
            "CATEGORY": s("category"), "UNITNAME": s("unitname"), "PARAM_TYPE": s("param_type"),
            "CONCEPTID": const(None, m)}, m)
        dl = it[it.dictionary == "d_labitems"].reset_index(drop=True)
        m = len(dl)
        s = lambda c: Col("str", dl[c].to_numpy(object), mask=(dl[c] == "").to_numpy())  # noqa: E731
        rows["D_LABITEMS"] = write_table(tmp / "D_LABITEMS.csv.gz", "D_LABITEMS", {
            "ROW_ID": Col("int", np.arange(1, m + 1)), "ITEMID": Col("int", dl.itemid.to_numpy(np.int64)),
            "LABEL": s("label"), "FLUID": s("fluid"), "CATEGORY": s("category"), "LOINC_CODE": s("loinc_code")}, m)
    log.info("synth: wrote %d tables to %s in %.1f s", len(rows), out_dir, time.time() - t_start)
    return rows


def CAREUNITS_of(rng, n):
    return np.array(["MICU", "SICU", "CCU", "TSICU", "CSRU"], object)[rng.choice(5, size=n, p=[0.5, 0.17, 0.15, 0.1, 0.08])]
