"""Stage `synthesize`: write the synthetic MIMIC-III v1.4 tables to data/raw/synthetic/ (params: synth, seed)."""
from __future__ import annotations

import time

from adrl.paths import METRICS, RAW_SYNTHETIC
from adrl.synth.world import World
from pipeline._common import run_stage, write_metrics


def main(cfg, run):
    t0 = time.time()
    world = World(cfg.synth)
    rows = world.write(RAW_SYNTHETIC)
    summary = world.summary()
    summary["rows"] = rows
    summary["seconds"] = time.time() - t0
    write_metrics(METRICS / "synth.json", summary)
    run.log_metrics({k: v for k, v in summary.items() if isinstance(v, (int, float))})
    run.log_metrics({f"rows.{k}": v for k, v in rows.items()})
    run.log_dict(summary, "synth_summary.json")


if __name__ == "__main__":
    run_stage("synthesize", main, params_of=lambda cfg: {"synth": cfg.synth.model_dump(), "seed": cfg.seed})
