"""Benchmark the `cohort` stage on a MIMIC-scale synthetic cohort (goal: < 5 minutes on 2 cores for ~20,000 septic
stays; cohort.md / issue 3).

    python benchmarks/bench_cohort.py                      # synth profile mimic (60,000 stays)
    python benchmarks/bench_cohort.py --stays 6000         # a smaller world (figures are per stay as well)
    python benchmarks/bench_cohort.py --events data/interim/events   # an existing interim directory

Steps: simulate the synthetic world (adrl.synth, not timed) -> ingest (not timed) -> the cohort stage as
pipeline/cohort.py runs it (timed: load interim events, recipe, featurisation, fit, write outputs). Peak RSS
of the process is reported. Results go to benchmarks/results/cohort.md.
"""
from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adrl.cohort.build import build_cohort, write_outputs  # noqa: E402
from adrl.cohort.mimic_adapter import build_spec  # noqa: E402
from adrl.cohort.params import CohortParams  # noqa: E402
from adrl.errors import InputError  # noqa: E402
from pipeline.cohort import load_events  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--stays", type=int, default=None, help="ICU stays to simulate (default: synth profile mimic)")
    ap.add_argument("--events", type=Path, default=None, help="use this interim events directory instead")
    ap.add_argument("--work", type=Path, default=None, help="working directory (default: a temporary one)")
    ap.add_argument("--recipe", default="corrected")
    ap.add_argument("--replicate", type=int, default=1,
                    help="tile the interim tables K times with shifted ids (a K-times larger cohort of the same "
                         "patients; simulating 60,000 stays at once needs ~15 GB of memory)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cohort.md")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    work = a.work or Path(tempfile.mkdtemp(prefix="bench_cohort_"))
    prep = {}
    events = a.events
    if events is None:
        from adrl.mimic.ingest import ingest
        from adrl.synth.params import SynthParams
        from adrl.synth.world import World

        sp = SynthParams(profile="mimic") if a.stays is None else SynthParams(n_stays=a.stays)
        raw = work / "raw"
        if not (raw / "ICUSTAYS.csv.gz").exists():
            t = time.perf_counter()
            World(sp).write(raw)
            prep["synthesize_s"] = time.perf_counter() - t
        events = work / "events"
        if not (events / "icustays").exists():
            t = time.perf_counter()
            try:
                ingest(raw, events, progress=False)
            except InputError as e:
                if "does not match the dictionaries" not in str(e):
                    raise
                # the synthetic world's D_ITEMS may lack concept items it never charts: benchmark anyway
                import adrl.mimic.ingest as ing
                from adrl.mimic.concepts import DictionaryCheck

                logging.getLogger("bench").warning("dictionary check failed, ingesting without it: %s", e)
                prep["note"] = "ingest run without the D_ITEMS check (synthetic D_ITEMS lacks some concept items)"
                ing.dictionary_check = lambda d: DictionaryCheck()
                ingest(raw, events, progress=False)
            prep["ingest_s"] = time.perf_counter() - t
        prep["stays_simulated"] = sp.stays
    if a.replicate > 1:
        events = replicate(events, work / f"events_x{a.replicate}", a.replicate)
        prep["replicated"] = f"{a.replicate} x"
    p = CohortParams(recipe=a.recipe)
    t0 = time.perf_counter()
    spec = build_spec(p)
    static, ev, load_chunk = load_events(p, spec, events)
    t1 = time.perf_counter()
    res = build_cohort(static, ev, p, spec, load_chunk=load_chunk)
    t2 = time.perf_counter()
    write_outputs(res, p, work / "processed", work / "reports" / "cohort_flow.json")
    t3 = time.perf_counter()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    final = res.flow["steps"][-1]["stays"]
    septic = next(s["stays"] for s in res.flow["steps"] if s["step"].startswith("septic"))
    lines = [
        "# Benchmark: cohort stage",
        "",
        f"Command: `python benchmarks/bench_cohort.py {' '.join(argv if argv is not None else sys.argv[1:])}`"
        f" (recipe {a.recipe}, {os.cpu_count()} CPUs visible, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']})",
        "",
        "| quantity | value |",
        "|---|---|",
        *(f"| {k} | {v:.1f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in prep.items()),
        f"| ICU stays (ICUSTAYS) | {res.flow['steps'][0]['stays']} |",
        f"| septic stays | {septic} |",
        f"| final trajectories | {final} |",
        f"| trajectory rows | {len(res.trajectories)} |",
        f"| pre-pass: static + infection tables (s) | {t1 - t0:.1f} |",
        f"| recipe: chunked event reads + featurise + selection + fit (s) | {t2 - t1:.1f} |",
        f"| write outputs + export (s) | {t3 - t2:.1f} |",
        f"| **cohort stage total (s)** | **{t3 - t0:.1f}** |",
        f"| seconds per 1,000 septic stays | {1000 * (t3 - t0) / max(septic, 1):.2f} |",
        f"| peak RSS (MB) | {rss:.0f} |",
        "",
        "Goal: < 300 s for ~20,000 septic stays on 2 cores.",
        "",
    ]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text("\n".join(lines))
    print("\n".join(lines))


def replicate(src: Path, dst: Path, k: int) -> Path:
    """Write the interim tables of ``src`` K times into ``dst`` with ids shifted by i * 10**8 (not timed)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    if (dst / "icustays").exists():
        return dst
    for tdir in sorted(x for x in src.iterdir() if x.is_dir()):
        out = dst / tdir.name
        out.mkdir(parents=True, exist_ok=True)
        t = ds.dataset(str(tdir), format="parquet").to_table()
        for i in range(k):
            cols = {}
            for name in t.column_names:
                c = t.column(name)
                if name in ("subject_id", "hadm_id", "icustay_id"):
                    c = pc.add(c, pa.scalar(i * 10**8, c.type))
                cols[name] = c
            pq.write_table(pa.table(cols, schema=t.schema), out / f"part-{i:05d}.parquet")
    return dst


if __name__ == "__main__":
    main()
