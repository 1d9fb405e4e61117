"""The only module that talks to MLflow.

- Tracking store: ``$MLFLOW_TRACKING_URI`` or ``sqlite:///<project>/mlflow.db``; artifacts in
  ``<project>/mlartifacts`` (set explicitly on the experiment); one experiment for the project.
- Every stage is one MLflow run (:func:`stage_run`). When the pipeline is started by ``adrl repro``,
  the command opens a parent run (:func:`pipeline_run`) and passes its id to the stages through
  ``ADRL_PARENT_RUN_ID``, so the stage runs nest under one parent per pipeline execution.
- ``ADRL_TRACKING=off`` turns logging off (the library never needs MLflow to run).
- Never log patient-level rows: parameters, metrics, aggregate tables, figures and models only.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

EXPERIMENT = os.environ.get("ADRL_EXPERIMENT", "adrl")
PARENT_ENV = "ADRL_PARENT_RUN_ID"


def project_root() -> Path:
    return Path(os.environ.get("ADRL_ROOT", Path.cwd())).resolve()


def quiet_env() -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / 'mlflow.db'}"


def artifact_location() -> str:
    return os.environ.get("ADRL_ARTIFACT_ROOT") or (project_root() / "mlartifacts").as_uri()


def enabled() -> bool:
    return os.environ.get("ADRL_TRACKING", "on").lower() not in {"off", "0", "false", "no"}


def _mlflow():
    quiet_env()
    import logging

    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    mlflow.set_tracking_uri(tracking_uri())
    return mlflow


def experiment_id() -> str:
    mlflow = _mlflow()
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        try:
            return client.create_experiment(EXPERIMENT, artifact_location=artifact_location())
        except Exception:  # created concurrently by another stage
            exp = client.get_experiment_by_name(EXPERIMENT)
            if exp is None:
                raise
    return exp.experiment_id


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=project_root(), check=True).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def params_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


class StageRun:
    """What a stage logs, bound to one run id. With tracking off every method is a no-op."""

    def __init__(self, mlflow=None, run_id: str | None = None):
        self._mlflow = mlflow
        self._client = mlflow.MlflowClient() if mlflow is not None else None
        self.run_id = run_id

    @property
    def active(self) -> bool:
        return self._mlflow is not None

    def log_params(self, params: Mapping[str, Any], prefix: str = "") -> None:
        if not self.active:
            return
        from mlflow.entities import Param

        flat = {k: (json.dumps(v) if isinstance(v, (list, tuple)) else v)
                for k, v in flatten(params, prefix).items()}
        ps = [Param(k, str(v)) for k, v in flat.items()]
        for i in range(0, len(ps), 90):  # mlflow caps params per batch at 100
            self._client.log_batch(self.run_id, params=ps[i:i + 90])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if not self.active:
            return
        import time

        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        ms = [Metric(k.replace(":", "_"), float(v), ts, int(step or 0)) for k, v in flatten(metrics).items()
              if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v]
        for i in range(0, len(ms), 1000):
            self._client.log_batch(self.run_id, metrics=ms[i:i + 1000])

    def log_metric_series(self, key: str, values, steps=None) -> None:
        """A whole curve at once (e.g. per-epoch losses) in batched calls."""
        if not self.active:
            return
        import time

        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        steps = list(range(len(values))) if steps is None else list(steps)
        ms = [Metric(key.replace(":", "_"), float(v), ts, int(s)) for v, s in zip(values, steps) if v == v]
        for i in range(0, len(ms), 1000):
            self._client.log_batch(self.run_id, metrics=ms[i:i + 1000])

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        if self.active and Path(path).exists():
            if Path(path).is_dir():
                self._client.log_artifacts(self.run_id, str(path), artifact_path=artifact_path)
            else:
                self._client.log_artifact(self.run_id, str(path), artifact_path=artifact_path)

    def log_dict(self, obj: Any, name: str) -> None:
        if self.active:
            self._client.log_dict(self.run_id, obj, name)

    def log_figure(self, fig, name: str) -> None:
        if self.active:
            self._client.log_figure(self.run_id, fig, name)

    def log_table(self, df, name: str) -> None:
        """An aggregate table (never patient rows) as an MLflow table artifact."""
        if self.active:
            self._client.log_table(self.run_id, df, artifact_file=name)

    def log_parent_metrics(self, metrics: Mapping[str, float]) -> None:
        """The same metrics on the pipeline's parent run (``$ADRL_PARENT_RUN_ID``), so pipeline executions
        compare at the top level; nothing when the stage runs without a parent (plain ``dvc repro``)."""
        parent = os.environ.get(PARENT_ENV)
        if self.active and parent:
            StageRun(self._mlflow, parent).log_metrics(metrics)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if self.active:
            for k, v in tags.items():
                self._client.set_tag(self.run_id, k, str(v))


@contextlib.contextmanager
def stage_run(stage: str, params: Mapping[str, Any] | None = None,
              tags: Mapping[str, Any] | None = None) -> Iterator[StageRun]:
    """One MLflow run for a pipeline stage, nested under ``$ADRL_PARENT_RUN_ID`` when set."""
    if not enabled():
        yield StageRun()
        return
    mlflow = _mlflow()
    exp = experiment_id()
    parent = os.environ.get(PARENT_ENV)
    base_tags = {"adrl.stage": stage, "adrl.git_commit": git_commit() or "unknown"}
    if parent:
        base_tags["mlflow.parentRunId"] = parent
    base_tags.update({k: str(v) for k, v in (tags or {}).items()})
    nested = mlflow.active_run() is not None
    with mlflow.start_run(experiment_id=exp, run_name=stage, tags=base_tags, nested=nested) as run:
        sr = StageRun(mlflow, run.info.run_id)
        if params:
            sr.log_params(params)
        yield sr


@contextlib.contextmanager
def pipeline_run(name: str, tags: Mapping[str, Any] | None = None) -> Iterator[StageRun]:
    """The parent run of one pipeline execution; its id goes to the stages via ``ADRL_PARENT_RUN_ID``."""
    if not enabled():
        yield StageRun()
        return
    mlflow = _mlflow()
    exp = experiment_id()
    base_tags = {"adrl.stage": "pipeline", "adrl.git_commit": git_commit() or "unknown"}
    base_tags.update({k: str(v) for k, v in (tags or {}).items()})
    client = mlflow.MlflowClient()
    run = client.create_run(exp, run_name=name, tags=base_tags)
    old = os.environ.get(PARENT_ENV)
    os.environ[PARENT_ENV] = run.info.run_id
    status = "FAILED"
    try:
        yield StageRun(mlflow, run.info.run_id)
        status = "FINISHED"
    finally:
        client.set_terminated(run.info.run_id, status=status)
        if old is None:
            os.environ.pop(PARENT_ENV, None)
        else:
            os.environ[PARENT_ENV] = old


def ui_command(port: int = 5000) -> list[str]:
    """The MLflow UI bound to 127.0.0.1, with job execution off (about 500 MB instead of 2.4 GB)."""
    os.environ["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    quiet_env()
    return ["mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", tracking_uri(), "--default-artifact-root", artifact_location(),
            "--workers", "1"]


def tmp_artifact_dir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="adrl-artifacts-")


def _policy_pyfunc_class():
    import mlflow.pyfunc

    class AdrlPolicyModel(mlflow.pyfunc.PythonModel):
        """A selected adrl policy: input columns z_0..z_{d-1} (AIS states), output the greedy joint action
        (action, fluid_bin, vaso_bin). Needs the adrl package (pip install adrl) where it is served."""

        def load_context(self, context):
            import json as _json

            from adrl.rl.policy import Policy

            meta = _json.loads(Path(context.artifacts["meta"]).read_text())
            self.policy = Policy.load(context.artifacts["run_dir"], step=meta["step"])
            self.d = meta["d"]

        def predict(self, context, model_input, params=None):
            import numpy as np
            import pandas as pd

            from adrl.actions import from_flat

            cols = [f"z_{i}" for i in range(self.d)]
            z = model_input[cols].to_numpy(np.float32)
            a = self.policy.greedy(z)
            f, v = from_flat(a)
            return pd.DataFrame({"action": a, "fluid_bin": f, "vaso_bin": v})

    return AdrlPolicyModel


def log_policy_model(run: StageRun, run_dir: str | os.PathLike, step: int, name: str,
                     registered_name: str | None = None, description: str = "",
                     version_tags: Mapping[str, Any] | None = None, alias: str | None = None) -> str | None:
    """Log one checkpoint of a trained run as an MLflow pyfunc model (and register it, with ``version_tags``
    on the new model version and ``alias`` pointing at it). Returns the model URI."""
    if not run.active:
        return None
    import mlflow

    from adrl import __version__

    from adrl.rl.policy import Policy

    policy = Policy.load(run_dir, step=step)
    with tempfile.TemporaryDirectory() as tmp:
        one = policy.save(Path(tmp) / "policy")  # just the selected checkpoint
        meta = Path(tmp) / "meta.json"
        meta.write_text(json.dumps({"step": int(policy.step), "d": int(policy.d or 0),
                                    "run_id": policy.record.get("run_id"), "algorithm": policy.algorithm}))
        active = mlflow.active_run()
        ctx = (contextlib.nullcontext() if active is not None and active.info.run_id == run.run_id
               else mlflow.start_run(run_id=run.run_id, nested=active is not None))
        with ctx:
            info = mlflow.pyfunc.log_model(
                name=name, python_model=_policy_pyfunc_class()(),
                artifacts={"run_dir": str(one), "meta": str(meta)},
                pip_requirements=[f"adrl=={__version__}", "torch==2.13.0", "numpy", "pandas"],
                registered_model_name=registered_name, metadata={"description": description})
    if registered_name and info.registered_model_version is not None:
        client = mlflow.MlflowClient()
        version = str(info.registered_model_version)
        if description:
            client.update_model_version(registered_name, version, description=description)
        for k, v in (version_tags or {}).items():
            client.set_model_version_tag(registered_name, version, k, "" if v is None else str(v))
        if alias:
            client.set_registered_model_alias(registered_name, alias, version)
    return info.model_uri
