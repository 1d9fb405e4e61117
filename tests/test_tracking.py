"""Tracking: one parent run per pipeline execution, one nested run per stage, explicit artifact root."""
import os

from adrl import tracking


def _runs():
    import mlflow

    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(tracking.EXPERIMENT)
    return exp, ({r.info.run_name: r for r in client.search_runs([exp.experiment_id])} if exp else {})


def test_stage_runs_nest_under_the_pipeline_run(mlflow_store):
    with tracking.pipeline_run("pipeline test") as tree:
        assert tree.run() is None  # nothing opened before a stage runs
        for stage in ("synthesize", "ingest"):
            with tracking.stage_run(stage, params={"a": {"b": 1}, "lst": [1, 2]},
                                    config={"source": {"kind": "synthetic"}, "seed": 0}) as run:
                run.log_metrics({"rows": 10, "nested": {"x": 0.5}, "skip_nan": float("nan")})
        assert tree.run() is not None
    assert tracking.PIPELINE_ENV not in os.environ

    exp, by_name = _runs()
    assert exp.artifact_location == (mlflow_store / "artifacts").as_uri()
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert set(by_name) == {"pipeline test", "synthesize", "ingest"}
    parent = by_name["pipeline test"]
    assert parent.info.status == "FINISHED" and parent.data.tags["adrl.source"] == "synthetic"
    assert parent.data.params == {"source.kind": "synthetic", "seed": "0"}  # the parameters, once, on the parent
    for stage in ("synthesize", "ingest"):
        r = by_name[stage]
        assert r.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert r.data.tags["adrl.stage"] == stage
        assert r.data.params == {"a.b": "1", "lst": "[1, 2]"}
        assert r.data.metrics == {"rows": 10.0, "nested.x": 0.5}


def test_a_pipeline_where_no_stage_runs_opens_no_run(mlflow_store):
    with tracking.pipeline_run("pipeline nothing to do") as tree:
        assert tree.run() is None
    _, by_name = _runs()
    assert by_name == {}


def test_a_dvc_experiment_is_one_run_tree_tagged_with_its_name_and_revision(mlflow_store, monkeypatch):
    monkeypatch.delenv(tracking.PIPELINE_ENV, raising=False)
    monkeypatch.setenv("DVC_EXP_NAME", "wider-window")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "a" * 40)
    for stage in ("cohort", "encode"):  # separate stage processes under `dvc exp run`
        with tracking.stage_run(stage, config={"cohort": {"recipe": "corrected"}}):
            pass
    monkeypatch.setenv("DVC_EXP_NAME", "faithful")
    with tracking.stage_run("cohort"):
        pass
    import mlflow

    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(tracking.EXPERIMENT)
    runs = client.search_runs([exp.experiment_id])
    parents = {r.data.tags["adrl.dvc_exp"]: r for r in runs if r.data.tags["adrl.stage"] == "pipeline"}
    assert set(parents) == {"wider-window", "faithful"}
    assert parents["wider-window"].info.run_name == "exp wider-window"
    kids = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents["wider-window"].info.run_id]
    assert sorted(r.info.run_name for r in kids) == ["cohort", "encode"]
    for r in runs:
        assert r.data.tags["adrl.git_commit"] == "a" * 40 == r.data.tags["mlflow.source.git.commit"]
        assert r.data.tags["adrl.dvc_exp"] in parents
    assert parents["wider-window"].info.status == "FINISHED"


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
