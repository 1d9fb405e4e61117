"""Where the stages read and write (relative to the project root). dvc.yaml uses the same paths."""
from __future__ import annotations

from pathlib import Path

RAW_SYNTHETIC = Path("data/raw/synthetic")     # synthesize -> MIMIC-III v1.4 tables (*.csv.gz)
INTERIM_EVENTS = Path("data/interim/events")  # ingest -> one Parquet dataset per table + ingest_report.json
PROCESSED = Path("data/processed")            # cohort -> trajectories.parquet, stays.parquet, ...
TRAJECTORIES = PROCESSED / "trajectories.parquet"
TRAJECTORIES_RAW = PROCESSED / "trajectories_raw.parquet"
STAYS = PROCESSED / "stays.parquet"
COHORT_ARTIFACTS = PROCESSED / "cohort"       # normalization.json, action_edges.json (aggregates)
EXPORT = PROCESSED / "export"
STATES = PROCESSED / "states.parquet"         # encode -> AIS states
MODELS = Path("models")
AIS_MODEL = MODELS / "ais"
REPORTS = Path("reports")
METRICS = REPORTS / "metrics"
FIGURES = REPORTS / "figures"
PLOTS = REPORTS / "plots"


def demo_dir() -> Path:
    """The MIMIC-III demo: $ADRL_MIMIC_DEMO, else ../shared/data/mimic3-demo next to the project."""
    import os

    env = os.environ.get("ADRL_MIMIC_DEMO")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent.parent
    return here.parent / "shared" / "data" / "mimic3-demo"
