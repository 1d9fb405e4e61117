"""`make bench`: every benchmark with its default arguments, one after the other (about an hour on 2 cores).

Each writes its figures to benchmarks/results/. Run one alone with `python -m benchmarks.bench_<name> --help`.
"""
from __future__ import annotations

import subprocess
import sys

BENCHES = [["bench_synth", "gen"], ["bench_synth", "policies"], ["bench_synth", "report"], ["bench_ingest"],
           ["bench_cohort"], ["bench_ais"], ["bench_train"], ["bench_ope"], ["bench_pipeline"]]


def main() -> int:
    failed = []
    for name, *args in BENCHES:
        print(f"== {name} {' '.join(args)}", flush=True)
        if subprocess.call([sys.executable, "-m", f"benchmarks.{name}", *args]) != 0:
            failed.append(name)
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
