import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def demo_dir():
    """The MIMIC-III demo tables, read in place; skip with instructions where they are absent."""
    from adrl.paths import demo_dir as _demo_dir

    d = _demo_dir()
    if not (d / "ICUSTAYS.csv.gz").exists():
        pytest.skip(f"MIMIC-III demo not found at {d}. Download the MIMIC-III Clinical Database Demo v1.4 "
                    "(open access, https://physionet.org/content/mimiciii-demo/1.4/) and set ADRL_MIMIC_DEMO "
                    "to the folder holding its .csv.gz tables.")
    return d


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """A private MLflow store (sqlite + artifact folder under tmp_path) with tracking on."""
    from adrl import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("ADRL_ARTIFACT_ROOT", (tmp_path / "artifacts").as_uri())
    monkeypatch.setenv("ADRL_TRACKING", "on")
    monkeypatch.delenv(tracking.PARENT_ENV, raising=False)
    return tmp_path
