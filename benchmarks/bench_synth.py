"""Time generation of the default synthetic profile against reading it back with pandas.

Run: python benchmarks/bench_synth.py [n_stays]   -> benchmarks/results/synth.md
"""
import resource
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from adrl.synth.params import SynthParams  # noqa: E402
from adrl.synth.world import World  # noqa: E402

n = int(sys.argv[1]) if len(sys.argv) > 1 else None
p = SynthParams(profile="default", n_stays=n)
with tempfile.TemporaryDirectory() as d:
    t0 = time.time()
    w = World(p, progress=False)
    t_sim = time.time() - t0
    rows = w.write(Path(d) / "raw")
    t_gen = time.time() - t0
    t1 = time.time()
    pd.read_csv(Path(d) / "raw" / "CHARTEVENTS.csv.gz")
    t_ce = time.time() - t1
    t2 = time.time()
    for f in sorted((Path(d) / "raw").glob("*.csv.gz")):
        pd.read_csv(f, low_memory=False)
    t_all = time.time() - t2
    size = sum(f.stat().st_size for f in (Path(d) / "raw").glob("*.csv.gz"))
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
lines = [f"# synthesize benchmark ({p.stays} stays, profile {p.profile})", "",
         f"- simulate + chart: {t_sim:.1f} s; simulate + chart + write all tables: {t_gen:.1f} s",
         f"- pandas.read_csv of CHARTEVENTS alone: {t_ce:.1f} s; of every table: {t_all:.1f} s",
         f"- generation / read-back(all tables) = {t_gen / t_all:.2f}", f"- compressed size {size / 1e6:.1f} MB; peak RSS {rss:.0f} MB",
         "", "| table | rows |", "|---|---|"] + [f"| {k} | {v:,} |" for k, v in rows.items()]
out = Path(__file__).resolve().parent / "results" / "synth.md"
out.write_text("\n".join(lines) + "\n")
print("\n".join(lines))
