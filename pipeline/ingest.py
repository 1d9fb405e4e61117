"""Stage `ingest`: stream the source's MIMIC-III tables into data/interim/events (cohort.md section 2.5).

deps: the source directory (params `source`), adrl/mimic   params: source, ingest
outs: data/interim/events/ (Parquet part files + ingest_report.json)   metrics: reports/metrics/ingest.json
"""
from __future__ import annotations

import logging

from adrl import paths
from adrl.mimic.ingest import ingest, metrics_of
from adrl.mimic.source import resolve_source
from pipeline._common import run_stage, write_metrics

log = logging.getLogger("adrl.mimic")

METRICS = paths.METRICS / "ingest.json"


def main(cfg, run) -> None:
    p = cfg.ingest
    src = resolve_source(cfg.source.kind, cfg.source.path)   # demo: stand-in CHARTEVENTS with its fixed seed 0
    report = ingest(src, paths.INTERIM_EVENTS, block_size_mb=p.block_size_mb, part_rows=p.part_rows,
                    max_bad_fraction=p.max_bad_fraction, progress=p.progress,
                    # a synthetic world's dictionaries may list only the items it charts: absent items are counted
                    missing_items="warn" if cfg.source.kind == "synthetic" else "error")
    metrics = metrics_of(report)
    ce = report["files"].get("chartevents", {})
    log.info("ingest: %d rows read, %d kept in %.1f s (CHARTEVENTS %s rows/s)", metrics["total_rows_read"],
             metrics["total_rows_kept"], metrics["seconds"], ce.get("rows_per_s"))
    write_metrics(METRICS, metrics)
    run.log_metrics(metrics)
    run.log_dict({k: v for k, v in report.items() if k != "source"}, "ingest_report.json")  # aggregates only


if __name__ == "__main__":
    run_stage("ingest", main, params_of=lambda cfg: {"source": cfg.source.model_dump(mode="json"),
                                                       "ingest": cfg.ingest.model_dump(mode="json")})
