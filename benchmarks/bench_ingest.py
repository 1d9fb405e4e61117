"""Benchmark: streaming ingest of a CHARTEVENTS-shaped .csv.gz against two references, timed in the same run.

    /work/venv-probe/bin/python benchmarks/bench_ingest.py [--rows 5000000 20000000] [--reps 3]

For each size it generates (once, cached under benchmarks/work/) a CHARTEVENTS.csv.gz in the official 15-column
dialect with a realistic item mix (~40 % concept-map items, ~60 % other CareVue/MetaVision chart items from the
demo's D_ITEMS when available), then times, interleaved rep by rep, each in its own process:

  (a) zcat FILE > /dev/null                       plain zlib decompression
  (b) pandas read_csv(chunksize=1e6, usecols=9 columns, dtypes) + isin filter (+ CHARTTIME parsed on kept rows)
  (c) adrl ingest of the table (adrl.mimic.ingest.ingest_table: typed, filtered, written as Parquet parts)

and records wall time and peak RSS (the process's own VmHWM). Figures go to
benchmarks/results/ingest.md and benchmarks/results/ingest.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = ROOT / "benchmarks" / "work"
RESULTS = ROOT / "benchmarks" / "results"
COLS = ["SUBJECT_ID", "HADM_ID", "ICUSTAY_ID", "ITEMID", "CHARTTIME", "VALUE", "VALUENUM", "VALUEUOM", "ERROR"]


def item_mix():
    """(relevant CE items, irrelevant CE items): concept map vs other chart items of D_ITEMS."""
    from adrl.mimic.concepts import itemids_for_ingest
    from adrl.paths import demo_dir

    rel = itemids_for_ingest()["chartevents"]
    d = demo_dir() / "D_ITEMS.csv.gz"
    if d.exists():
        import pandas as pd

        di = pd.read_csv(d, usecols=["ITEMID", "LINKSTO"])
        irr = di.loc[(di.LINKSTO == "chartevents") & ~di.ITEMID.isin(rel), "ITEMID"].to_numpy(np.int32)
    else:
        irr = np.setdiff1d(np.arange(220000, 228000, dtype=np.int32), rel)
    return rel, irr


def generate(path: Path, n: int, seed: int = 0, chunk: int = 1_000_000) -> None:
    """A CHARTEVENTS-shaped .csv.gz of n rows (fast: arrow's CSV writer into an ISA-L gzip stream)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    from isal import igzip_threaded

    rng = np.random.default_rng(seed)
    rel, irr = item_mix()
    # a skewed item frequency, as in real charting (a few vitals dominate)
    wr = rng.pareto(1.2, len(rel)) + 1
    wr /= wr.sum()
    t0 = np.datetime64("2130-01-01T00:00:00", "s")
    uoms = np.array(["bpm", "mmHg", "%", "insp/min", "?F", "", "mEq/L", "mg/dL", "cmH2O", "L/min"], dtype=object)
    texts = np.array(["Normal", "Assist Control", "Nasal cannula", "1.0 ET/Trach", "Obeys Commands", "Sinus Rhythm",
                      "Yes", "No", "Clear", "Diminished"], dtype=object)
    tmp = path.with_suffix(".tmp")
    with igzip_threaded.open(tmp, "wb", compresslevel=2, threads=1) as f:
        done, first = 0, True
        while done < n:
            m = min(chunk, n - done)
            is_rel = rng.random(m) < 0.4
            item = np.where(is_rel, rng.choice(rel, m, p=wr), rng.choice(irr, m)).astype(np.int32)
            stay = rng.integers(200001, 299999, m)
            vnum = np.round(rng.normal(80, 25, m), 1)
            text = rng.random(m) < 0.25
            vstr = pc.if_else(pa.array(text), pa.array(texts[rng.integers(0, len(texts), m)], pa.string()),
                              pc.cast(pa.array(vnum), pa.string()))
            vnum_a = pa.array(np.where(text, np.nan, vnum), from_pandas=True)
            ct = t0 + rng.integers(0, 10**9, m).astype("timedelta64[s]")
            mv = stay % 2 == 0
            t = pa.table({
                "ROW_ID": pa.array(np.arange(done, done + m) + 1), "SUBJECT_ID": pa.array(stay - 190000),
                "HADM_ID": pa.array(stay - 100000), "ICUSTAY_ID": pa.array(stay), "ITEMID": pa.array(item),
                "CHARTTIME": pa.array(ct), "STORETIME": pa.array(ct + np.timedelta64(600, "s")),
                "CGID": pa.array(rng.integers(14000, 21000, m)), "VALUE": vstr, "VALUENUM": vnum_a,
                "VALUEUOM": pa.array(uoms[rng.integers(0, len(uoms), m)], pa.string()),
                "WARNING": pa.array(np.where(mv, 0, None), pa.int8(), from_pandas=True),
                "ERROR": pa.array(np.where(mv, (rng.random(m) < 0.001).astype(int), None), pa.int8(), from_pandas=True),
                "RESULTSTATUS": pa.nulls(m, pa.string()),
                "STOPPED": pa.array(np.where(mv, None, "NotStopd"), pa.string(), from_pandas=True)})
            buf = pa.BufferOutputStream()
            pacsv.write_csv(t, buf, pacsv.WriteOptions(include_header=first, quoting_style="needed"))
            f.write(buf.getvalue())
            first, done = False, done + m
    os.replace(tmp, path)


# ------------------------------------------------------------------ the three contenders (each in its own process)

PANDAS_CODE = r"""
import sys, numpy as np, pandas as pd
from adrl.mimic.concepts import itemids_for_ingest
ids = itemids_for_ingest()["chartevents"]
cols = %r
kept = 0
for ch in pd.read_csv(sys.argv[1], usecols=cols, chunksize=1_000_000,
                      dtype={"SUBJECT_ID": "Int64", "HADM_ID": "Int64", "ICUSTAY_ID": "Int64", "ITEMID": "int32",
                             "VALUE": "string", "VALUENUM": "float64", "VALUEUOM": "string", "ERROR": "Int8",
                             "CHARTTIME": "string"}):
    k = ch[ch.ITEMID.isin(ids)].copy()
    k["CHARTTIME"] = pd.to_datetime(k.CHARTTIME, format="%%Y-%%m-%%d %%H:%%M:%%S")
    kept += len(k)
print(kept)
print(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
""" % (COLS,)

OURS_CODE = r"""
import sys, shutil, pyarrow as pa
from pathlib import Path
from adrl.mimic.concepts import itemids_for_ingest
from adrl.mimic.ingest import ingest_table
out = Path(sys.argv[2]); shutil.rmtree(out, ignore_errors=True); out.mkdir(parents=True)
st = ingest_table(Path(sys.argv[1]), "chartevents", out, block_size=int(sys.argv[3]) << 20, part_rows=1_000_000,
                  keep_values=pa.array(itemids_for_ingest()["chartevents"], pa.int32()), max_bad_fraction=0.01)
print(st.rows_kept)
print(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
"""


def run_measured(cmd, shell=False) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds (user + sys, os.wait4), peak RSS (MB) and first stdout line of one process.

    Peak RSS is the child's own VmHWM (printed by the child as its last line): rusage maxrss would include the
    benchmark parent's memory copied at fork. zcat reports none (nan).
    """
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="2")
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, shell=shell, stdout=subprocess.PIPE, env=env, cwd=ROOT)
    out = p.stdout.read().decode()
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    p.returncode = rc
    if rc != 0:
        raise RuntimeError(f"{cmd} failed with {rc}")
    cpu = ru.ru_utime + ru.ru_stime
    lines = out.strip().splitlines()
    if len(lines) >= 2:
        return dt, cpu, int(lines[-1]) / 1024, lines[0]
    return dt, cpu, float("nan"), ""


def bench(path: Path, reps: int, block_mb: int) -> dict:
    py = sys.executable
    out = WORK / "out_events"
    methods = {
        "zcat": (f"zcat {path} > /dev/null", True),
        "pandas": ([py, "-c", PANDAS_CODE, str(path)], False),
        "adrl": ([py, "-c", OURS_CODE, str(path), str(out), str(block_mb)], False),
    }
    res = {m: {"seconds": [], "cpu_seconds": [], "rss_mb": [], "out": None} for m in methods}
    loads = []
    for r in range(reps):
        for m, (cmd, shell) in methods.items():
            loads.append(os.getloadavg()[0])
            s, cpu, rss, o = run_measured(cmd, shell)
            res[m]["seconds"].append(round(s, 3))
            res[m]["cpu_seconds"].append(round(cpu, 3))
            res[m]["rss_mb"].append(round(rss, 1))
            res[m]["out"] = o
            print(f"  rep {r} {m:7s} {s:7.2f} s  cpu {cpu:7.2f} s  peak RSS {rss:7.1f} MB  {o}", flush=True)
    shutil.rmtree(out, ignore_errors=True)
    if res["pandas"]["out"] != res["adrl"]["out"]:
        raise RuntimeError(f"kept rows differ: pandas {res['pandas']['out']} vs adrl {res['adrl']['out']}")
    med = {m: statistics.median(v["seconds"]) for m, v in res.items()}
    med_cpu = {m: statistics.median(v["cpu_seconds"]) for m, v in res.items()}
    ratios_each = [a / z for a, z in zip(res["adrl"]["seconds"], res["zcat"]["seconds"])]
    ratios_pd = [a / p for a, p in zip(res["adrl"]["seconds"], res["pandas"]["seconds"])]
    return {"file": path.name, "bytes": path.stat().st_size, "kept_rows": int(res["adrl"]["out"]), "runs": res,
            "median_s": med, "median_cpu_s": med_cpu, "adrl_over_zcat": [round(x, 3) for x in ratios_each],
            "adrl_over_pandas": [round(x, 3) for x in ratios_pd],
            "median_adrl_over_zcat": round(statistics.median(ratios_each), 3),
            "median_adrl_over_pandas": round(statistics.median(ratios_pd), 3),
            "load_1min_during": [round(min(loads), 2), round(max(loads), 2)]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[5_000_000, 20_000_000])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--block-mb", type=int, default=4)
    a = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
               "block_mb": a.block_mb, "sizes": {}}
    for n in a.rows:
        path = WORK / f"CHARTEVENTS_{n}.csv.gz"
        if not path.exists():
            t0 = time.perf_counter()
            generate(path, n)
            print(f"generated {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.0f} s")
        print(f"{n:,} rows:", flush=True)
        results["sizes"][str(n)] = r = bench(path, a.reps, a.block_mb)
        r["rows"] = n
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ingest.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "ingest.md").write_text(render(results) + "\n")
    print(render(results))


def render(res: dict) -> str:
    lines = ["# Ingest benchmark (CHARTEVENTS-shaped .csv.gz)", "",
             "Command: `/work/venv-probe/bin/python benchmarks/bench_ingest.py"
             f" --rows {' '.join(res['sizes'])} --reps {len(next(iter(res['sizes'].values()))['runs']['zcat']['seconds'])}`"
             f" (block {res['block_mb']} MB; {res['machine']['cpus']} CPUs, shared with other jobs: see load).", "",
             "Each contender runs in its own process, interleaved rep by rep; time = wall seconds, RSS = peak resident "
             "memory of that process (its VmHWM); CPU s = user + sys of that process (os.wait4), the "
             "load-independent measure of work on this shared machine. pandas: `read_csv(chunksize=1_000_000, usecols=9 columns, dtype=...)`"
             " + `ITEMID.isin(concept items)` + CHARTTIME parsed on kept rows; it writes nothing. adrl: "
             "`adrl.mimic.ingest.ingest_table` (ISA-L inflate thread -> pyarrow streaming CSV reader, typed columns, "
             "filter, Parquet part files written). Both keep the same number of rows (checked).", "",
             "| rows | file MB | kept | zcat s | pandas s | adrl s | adrl / zcat | adrl / pandas | adrl peak RSS MB |"
             " pandas peak RSS MB | adrl rows/s | CPU s zcat / pandas / adrl | load (1 min) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for n, r in res["sizes"].items():
        med = r["median_s"]
        lines.append(f"| {int(n):,} | {r['bytes'] / 1e6:.0f} | {r['kept_rows']:,} | {med['zcat']:.2f} | {med['pandas']:.2f}"
                     f" | {med['adrl']:.2f} | {r['median_adrl_over_zcat']:.2f} | {r['median_adrl_over_pandas']:.2f} | "
                     f"{max(r['runs']['adrl']['rss_mb']):.0f} | {max(r['runs']['pandas']['rss_mb']):.0f} | "
                     f"{int(n) / med['adrl'] / 1e6:.2f} M | {r['median_cpu_s']['zcat']:.1f} / {r['median_cpu_s']['pandas']:.1f}"
                     f" / {r['median_cpu_s']['adrl']:.1f} | {r['load_1min_during'][0]}-{r['load_1min_during'][1]} |")
    lines += ["", "Ratios are medians of the per-rep ratios (each rep runs the three back to back). Per-rep times:", ""]
    for n, r in res["sizes"].items():
        lines.append(f"- {int(n):,} rows: zcat {r['runs']['zcat']['seconds']}, pandas {r['runs']['pandas']['seconds']},"
                     f" adrl {r['runs']['adrl']['seconds']}; adrl/zcat {r['adrl_over_zcat']}, adrl/pandas "
                     f"{r['adrl_over_pandas']}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
