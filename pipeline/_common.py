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
import sys
import time
from typing import Callable

from adrl.config import Config, load_config
from adrl.errors import AdrlError
from adrl import tracking

log = logging.getLogger("adrl")


def setup_logging() -> None:
    logging.basicConfig(level=os.environ.get("ADRL_LOG", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def run_stage(name: str, fn: Callable[[Config, tracking.StageRun], None],
              params_of: Callable[[Config], dict] | None = None) -> None:
    """Run ``fn(cfg, run)`` inside an MLflow stage run; AdrlError -> message on stderr, exit 2."""
    setup_logging()
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    tracking.quiet_env()
    t0 = time.time()
    try:
        cfg = load_config()
        params = params_of(cfg) if params_of else {}
        with tracking.stage_run(name, params=params, config=cfg.model_dump(mode="json")) as run:
            fn(cfg, run)
            run.log_metrics({"stage_seconds": time.time() - t0})
    except AdrlError as e:
        print(f"adrl {name}: error: {e}", file=sys.stderr)
        sys.exit(2)
    log.info("%s done in %.1f s", name, time.time() - t0)
