"""What every stage script shares: config, threads, seeds, one MLflow run, clean errors.

A stage script is short: params in, deps in, call adrl, outs out, log to MLflow::

    def main(cfg, run):          # run: adrl.tracking.StageRun
        ...
    if __name__ == "__main__":
        run_stage("cohort", main)
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import Any, Callable

from adrl import paths
from adrl.config import Config, load_config
from adrl.errors import AdrlError
from adrl.io import write_json
from adrl import tracking

log = logging.getLogger("adrl")

# Wall-clock figures change every run, so they stay out of the DVC metrics files (`dvc metrics diff` of two
# identical runs is empty): each stage writes them to reports/timings/<stage>.json (not a DVC metric, git-ignored)
# and logs them to MLflow.
TIMINGS_DIR = paths.REPORTS / "timings"
timings: dict[str, Any] = {}


def is_timing(key: str) -> bool:
    """seconds, seconds_per_epoch, fit_seconds, steps_per_s, chartevents_rows_per_s, ..."""
    key = str(key)
    return "seconds" in key or key.endswith("_per_s")


def split_timings(metrics: dict) -> tuple[dict, dict]:
    """(metrics without wall-clock fields, the wall-clock fields), nested dicts included."""
    keep, times = {}, {}
    for k, v in metrics.items():
        if is_timing(k):
            times[k] = v
        elif isinstance(v, dict):
            kv, tv = split_timings(v)
            keep[k] = kv
            if tv:
                times[k] = tv
        else:
            keep[k] = v
    return keep, times


def write_metrics(path, metrics: dict) -> dict:
    """Write a stage's DVC metrics file without its timings (kept for reports/timings/); returns what was written."""
    keep, times = split_timings(metrics)
    timings.update(times)
    write_json(path, keep)
    return keep


def _terminate(signum, frame):
    # SIGTERM (e.g. `kill`, a CI timeout) unwinds like Ctrl-C: temporary outputs are removed, worker processes
    # stopped and the MLflow run closed, instead of dying on the spot
    raise SystemExit(128 + signum)


def setup_logging() -> None:
    logging.basicConfig(level=os.environ.get("ADRL_LOG", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def run_stage(name: str, fn: Callable[[Config, tracking.StageRun], None],
              params_of: Callable[[Config], dict] | None = None) -> None:
    """Run ``fn(cfg, run)`` inside an MLflow stage run; AdrlError -> message on stderr, exit 2."""
    setup_logging()
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    tracking.quiet_env()
    main_thread = threading.current_thread() is threading.main_thread()
    old_term = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    t0 = time.time()
    timings.clear()
    try:
        cfg = load_config()
        params = params_of(cfg) if params_of else {}
        with tracking.stage_run(name, params=params, config=cfg.model_dump(mode="json")) as run:
            fn(cfg, run)
            timings["stage_seconds"] = time.time() - t0
            run.log_metrics({"stage_seconds": timings["stage_seconds"]})
            write_json(TIMINGS_DIR / f"{name}.json", timings)
    except AdrlError as e:
        print(f"adrl {name}: error: {e}", file=sys.stderr)
        sys.exit(2)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, old_term if old_term is not None else signal.SIG_DFL)
    log.info("%s done in %.1f s", name, time.time() - t0)
