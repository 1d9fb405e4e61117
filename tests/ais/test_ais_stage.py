"""The `encode` stage end to end on a fake cohort: outputs, metrics, curves, figures, MLflow records."""
import json

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from adrl.ais.encoder import AisEncoder
from adrl.io import write_parquet
from adrl.schemas import STATES_DECISION_COLUMNS, STATES_ID_COLUMNS, z_columns
from tests.ais.conftest import FAST
from tests.conftest import ROOT


@pytest.fixture
def project(tmp_path, monkeypatch, small_cohort):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["ais"] = dict(FAST, max_epochs=6)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    write_parquet(tmp_path / "data/processed/trajectories.parquet", small_cohort)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ADRL_PARAMS", str(tmp_path / "params.yaml"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("ADRL_ARTIFACT_ROOT", (tmp_path / "artifacts").as_uri())
    monkeypatch.delenv("ADRL_PARENT_RUN_ID", raising=False)
    return tmp_path


def test_encode_stage_writes_its_outputs_and_logs_to_mlflow(project, small_cohort, monkeypatch):
    monkeypatch.setenv("ADRL_TRACKING", "on")
    from pipeline import encode
    from pipeline._common import run_stage

    run_stage("encode", encode.main, params_of=lambda cfg: {"ais": cfg.ais.model_dump()})

    states = pd.read_parquet(project / "data/processed/states.parquet")
    assert list(states.columns) == list(STATES_ID_COLUMNS) + z_columns(8) + list(STATES_DECISION_COLUMNS)
    assert len(states) == len(small_cohort)
    assert str(pq.read_schema(project / "data/processed/states.parquet").field("z_0").type) == "float"
    enc = AisEncoder.load(project / "models/ais")
    assert enc.latent_dim == 8
    pd.testing.assert_frame_equal(enc.encode_trajectories(small_cohort), states)
    m = json.loads((project / "reports/metrics/encode.json").read_text())
    assert {"best_epoch", "val_nll", "naive_val_nll"} <= set(m)
    # wall-clock fields change every run: they live in reports/timings/, not in the DVC metrics file
    assert not {"seconds", "seconds_per_epoch"} & set(m)
    t = json.loads((project / "reports/timings/encode.json").read_text())
    assert {"seconds", "seconds_per_epoch", "stage_seconds"} <= set(t)
    curve = pd.read_csv(project / "reports/plots/ais_loss.csv")
    assert list(curve.columns) == ["epoch", "train_nll", "val_nll"] and len(curve) == m["epochs_run"]
    for f in ("ais_loss.png", "ais_vs_naive.png"):
        assert (project / "reports/figures" / f).stat().st_size > 1000

    import mlflow

    client = mlflow.MlflowClient()
    run = client.search_runs([client.get_experiment_by_name("adrl").experiment_id])[0]
    assert run.data.params["ais.latent_dim"] == "8"
    assert run.data.metrics["best_epoch"] == m["best_epoch"]
    assert len(client.get_metric_history(run.info.run_id, "ais_val_nll")) == m["epochs_run"]
    arts = {a.path for a in client.list_artifacts(run.info.run_id, "models/ais")}
    assert arts == {"models/ais/model.pt", "models/ais/config.json", "models/ais/training.json"}


def test_encode_stage_missing_input_is_a_clean_error(project, monkeypatch, capsys):
    monkeypatch.setenv("ADRL_TRACKING", "off")
    (project / "data/processed/trajectories.parquet").unlink()
    from pipeline import encode
    from pipeline._common import run_stage

    with pytest.raises(SystemExit) as e:
        run_stage("encode", encode.main)
    assert e.value.code == 2
    assert "trajectories.parquet: trajectory table not found" in capsys.readouterr().err
    assert not (project / "data/processed/states.parquet").exists()
