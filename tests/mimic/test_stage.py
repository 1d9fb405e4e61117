"""pipeline/ingest.py on the demo source (stand-in CHARTEVENTS: project data, not MIMIC data), tracking off."""
import json

from adrl.config import validate_config
from adrl.tracking import StageRun


def test_ingest_stage_writes_events_and_aggregate_metrics(demo_dir, tmp_path, monkeypatch):
    import pipeline.ingest as stage

    monkeypatch.chdir(tmp_path)
    cfg = validate_config({"source": {"kind": "demo", "path": str(demo_dir)}, "ingest": {"progress": False}})
    stage.main(cfg, StageRun())
    m = json.loads((tmp_path / "reports/metrics/ingest.json").read_text())
    rep = json.loads((tmp_path / "data/interim/events/ingest_report.json").read_text())
    assert m["total_rows_read"] == rep["totals"]["rows_read"] == m["total_rows_kept"] + m["total_rows_dropped"]
    assert m["prescriptions_rows_kept"] == 229 and m["label_drift"] == 0
    assert all(isinstance(v, (int, float)) for v in m.values())         # aggregates only, no patient rows
    # the demo tables are linked, never copied
    src = tmp_path / "data/raw/demo"
    assert (src / "LABEVENTS.csv.gz").is_symlink() and not (src / "CHARTEVENTS.csv.gz").is_symlink()
