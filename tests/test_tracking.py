"""Tracking: one parent run per pipeline execution, one nested run per stage, explicit artifact root."""
import os

import pytest

from adrl import tracking


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("ADRL_ARTIFACT_ROOT", (tmp_path / "artifacts").as_uri())
    monkeypatch.setenv("ADRL_TRACKING", "on")
    monkeypatch.delenv(tracking.PARENT_ENV, raising=False)
    return tmp_path


def test_stage_runs_nest_under_the_pipeline_run(mlflow_store):
    with tracking.pipeline_run("pipeline test") as parent:
        assert os.environ[tracking.PARENT_ENV] == parent.run_id
        for stage in ("synthesize", "ingest"):
            with tracking.stage_run(stage, params={"a": {"b": 1}, "lst": [1, 2]}) as run:
                run.log_metrics({"rows": 10, "nested": {"x": 0.5}, "skip_nan": float("nan")})
    assert tracking.PARENT_ENV not in os.environ

    import mlflow

    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(tracking.EXPERIMENT)
    assert exp.artifact_location == (mlflow_store / "artifacts").as_uri()
    runs = client.search_runs([exp.experiment_id])
    by_name = {r.info.run_name: r for r in runs}
    assert set(by_name) == {"pipeline test", "synthesize", "ingest"}
    pid = by_name["pipeline test"].info.run_id
    for stage in ("synthesize", "ingest"):
        r = by_name[stage]
        assert r.data.tags["mlflow.parentRunId"] == pid
        assert r.data.tags["adrl.stage"] == stage
        assert r.data.params == {"a.b": "1", "lst": "[1, 2]"}
        assert r.data.metrics == {"rows": 10.0, "nested.x": 0.5}


def test_tracking_off_needs_no_mlflow(monkeypatch, tmp_path):
    monkeypatch.setenv("ADRL_TRACKING", "off")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'never.db'}")
    with tracking.stage_run("cohort", params={"x": 1}) as run:
        assert run.run_id is None
        run.log_metrics({"a": 1})
    assert not (tmp_path / "never.db").exists()


def test_ui_binds_to_loopback():
    cmd = tracking.ui_command(5055)
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
    assert os.environ["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
