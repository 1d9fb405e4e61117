"""The only module that talks to MLflow.

- Tracking store: ``$MLFLOW_TRACKING_URI`` or ``sqlite:///<project>/mlflow.db``; artifacts in
  ``<project>/mlartifacts`` (set explicitly on the experiment); one experiment for the project.
- Every stage is one MLflow run (:func:`stage_run`). One pipeline execution is one run tree: a parent run
  with a child run per stage that ran. ``adrl repro`` names the tree through ``ADRL_PIPELINE_KEY`` (see
  :func:`pipeline_run`); under ``dvc exp run`` the DVC experiment's name (``DVC_EXP_NAME``) names it. The
  first stage that runs creates the parent, so a no-op ``adrl repro`` or ``dvc exp run`` opens no run.
  ``ADRL_PARENT_RUN_ID`` (an existing parent run id) still works. Plain ``dvc repro``: top-level stage runs.
- Every run is tagged with the git revision (``adrl.git_commit``, ``mlflow.source.git.commit``; the
  experiment's baseline under ``dvc exp run``) and the DVC experiment name (``adrl.dvc_exp``) when there is one.
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
# a model-training experiment, not a GenAI one: the MLflow UI then shows its runs, not the GenAI overview
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
PIPELINE_ENV = "ADRL_PIPELINE_KEY"     # set by `adrl repro`: the run tree of this execution
PIPELINE_NAME_ENV = "ADRL_PIPELINE_NAME"
DVC_EXP_ENV, DVC_BASELINE_ENV = "DVC_EXP_NAME", "DVC_EXP_BASELINE_REV"  # set by `dvc exp run` for every stage


def project_root() -> Path:
    """$ADRL_ROOT, else the DVC project that runs the stage ($DVC_ROOT: `dvc exp run --temp` runs stages in a
    scratch copy, whose MLflow store would be thrown away), else the working directory."""
    return Path(os.environ.get("ADRL_ROOT") or os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def quiet_env() -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    # progress bars of artifact downloads (model registration) are carriage-return noise in a log file
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


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
            return client.create_experiment(EXPERIMENT, artifact_location=artifact_location(), tags=EXPERIMENT_TAGS)
        except Exception:  # created concurrently by another stage
            exp = client.get_experiment_by_name(EXPERIMENT)
            if exp is None:
                raise
    if any(exp.tags.get(k) != v for k, v in EXPERIMENT_TAGS.items()):
        for k, v in EXPERIMENT_TAGS.items():
            client.set_experiment_tag(exp.experiment_id, k, v)
    return exp.experiment_id


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=project_root(), check=True).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def git_revision() -> str | None:
    """The commit the results belong to: the experiment's baseline under ``dvc exp run``, else HEAD."""
    return os.environ.get(DVC_BASELINE_ENV) or git_commit()


def run_tags(stage: str) -> dict[str, str]:
    """Tags of every run: stage, git revision, DVC experiment name (under ``dvc exp run``)."""
    rev = git_revision() or "unknown"
    tags = {"adrl.stage": stage, "adrl.git_commit": rev}
    if rev != "unknown":
        tags["mlflow.source.git.commit"] = rev
    if os.environ.get(DVC_EXP_ENV):
        tags["adrl.dvc_exp"] = os.environ[DVC_EXP_ENV]
    return tags


def pipeline_key() -> tuple[str, str] | None:
    """(key, run name) of the run tree the current process belongs to, or None (plain ``dvc repro``)."""
    if os.environ.get(PIPELINE_ENV):
        key = os.environ[PIPELINE_ENV]
        return key, os.environ.get(PIPELINE_NAME_ENV) or f"pipeline {key}"
    if os.environ.get(DVC_EXP_ENV):
        name = os.environ[DVC_EXP_ENV]
        return f"dvc-exp:{name}:{os.environ.get(DVC_BASELINE_ENV, '')}", f"exp {name}"
    return None


def find_pipeline_run(key: str) -> str | None:
    """Id of the parent run with ``adrl.pipeline_key == key`` (None: no stage has run under that key)."""
    if not enabled():
        return None
    mlflow = _mlflow()
    runs = mlflow.MlflowClient().search_runs([experiment_id()], filter_string=f"tags.`adrl.pipeline_key` = '{key}'",
                                             max_results=1)
    return runs[0].info.run_id if runs else None


def _parent_for_stage(client, exp: str, config: Mapping[str, Any] | None) -> str | None:
    """The parent run id of a stage: ``$ADRL_PARENT_RUN_ID``, or the run tree of :func:`pipeline_key`
    (created here by the first stage that runs, with the full parameters and the pipeline's tags)."""
    if os.environ.get(PARENT_ENV):
        return os.environ[PARENT_ENV]
    pk = pipeline_key()
    if pk is None:
        return None
    key, name = pk
    found = find_pipeline_run(key)
    if found:
        client.update_run(found, status="RUNNING")
        return found
    tags = {**run_tags("pipeline"), "adrl.pipeline_key": key}
    if config:
        tags.update({"adrl.source": config.get("source", {}).get("kind"),
                     "adrl.cohort.recipe": config.get("cohort", {}).get("recipe"),
                     "adrl.params_hash": params_hash(config)})
    run = client.create_run(exp, run_name=name, tags={k: str(v) for k, v in tags.items() if v is not None})
    if config:
        StageRun(_mlflow(), run.info.run_id).log_params(config)
    return run.info.run_id


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

    def __init__(self, mlflow=None, run_id: str | None = None, parent_id: str | None = None):
        self._mlflow = mlflow
        self._client = mlflow.MlflowClient() if mlflow is not None else None
        self.run_id = run_id
        self.parent_id = parent_id

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
        """The same metrics on the pipeline's parent run (the run tree this stage belongs to, or
        ``$ADRL_PARENT_RUN_ID``), so pipeline executions compare at the top level; nothing when the stage runs
        without a parent (plain ``dvc repro``)."""
        parent = self.parent_id or os.environ.get(PARENT_ENV)
        if self.active and parent:
            StageRun(self._mlflow, parent).log_metrics(metrics)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if self.active:
            for k, v in tags.items():
                self._client.set_tag(self.run_id, k, str(v))


@contextlib.contextmanager
def stage_run(stage: str, params: Mapping[str, Any] | None = None,
              tags: Mapping[str, Any] | None = None, config: Mapping[str, Any] | None = None) -> Iterator[StageRun]:
    """One MLflow run for a pipeline stage, nested in the run tree of this execution (see the module doc).

    ``config``: all parameters, logged on the parent run when this stage creates it."""
    if not enabled():
        yield StageRun()
        return
    mlflow = _mlflow()
    exp = experiment_id()
    client = mlflow.MlflowClient()
    parent = _parent_for_stage(client, exp, config)
    base_tags = run_tags(stage)
    if parent:
        base_tags["mlflow.parentRunId"] = parent
    base_tags.update({k: str(v) for k, v in (tags or {}).items()})
    nested = mlflow.active_run() is not None
    status = "FAILED"
    try:
        with mlflow.start_run(experiment_id=exp, run_name=stage, tags=base_tags, nested=nested) as run:
            sr = StageRun(mlflow, run.info.run_id, parent_id=parent)
            if params:
                sr.log_params(params)
            yield sr
        status = "FINISHED"
    finally:
        if parent and pipeline_key() is not None and not os.environ.get(PARENT_ENV):
            client.set_terminated(parent, status=status)  # the tree is done until the next stage reopens it


@contextlib.contextmanager
def pipeline_run(name: str, tags: Mapping[str, Any] | None = None) -> Iterator["PipelineRun"]:
    """One pipeline execution (``adrl repro``): its stages share a run tree through ``ADRL_PIPELINE_KEY``.

    The parent run is created by the first stage that runs, so nothing is opened when nothing runs;
    afterwards :class:`PipelineRun` logs to it (if it exists) and closes it."""
    import uuid

    old = {k: os.environ.get(k) for k in (PIPELINE_ENV, PIPELINE_NAME_ENV)}
    key = uuid.uuid4().hex
    os.environ[PIPELINE_ENV], os.environ[PIPELINE_NAME_ENV] = key, name
    pr = PipelineRun(key, tags)
    status = "FAILED"
    try:
        yield pr
        status = "FINISHED"
    finally:
        pr.close(status)
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class PipelineRun:
    """The parent run of an ``adrl repro`` execution, found after the stages ran (None when none ran)."""

    def __init__(self, key: str, tags: Mapping[str, Any] | None = None):
        self.key, self.tags = key, dict(tags or {})
        self.status: str | None = None  # set it to FAILED when the pipeline failed without an exception

    def run(self) -> StageRun | None:
        """The parent run, if a stage created it."""
        if not enabled():
            return None
        rid = find_pipeline_run(self.key)
        return StageRun(_mlflow(), rid) if rid else None

    def close(self, status: str) -> None:
        r = self.run()
        if r is not None:
            if self.tags:
                r.set_tags(self.tags)
            r._client.set_terminated(r.run_id, status=self.status or status)


def ui_command(port: int = 5000) -> list[str]:
    """The MLflow UI bound to 127.0.0.1, with job execution off (about 500 MB instead of 2.4 GB)."""
    os.environ["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    quiet_env()
    return ["mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", tracking_uri(), "--default-artifact-root", artifact_location(),
            "--workers", "1"]


def runs_url(port: int = 5000) -> str:
    """The UI address of the project experiment's runs (not the GenAI overview)."""
    return f"http://127.0.0.1:{port}/#/experiments/{experiment_id()}/runs?workflowType=machine_learning"


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


@contextlib.contextmanager
def _quiet_model_logging():
    """MLflow's advice on logging a Python model (add type hints; CloudPickle: use models-from-code) is for the
    model's author, not for whoever runs the pipeline: keep it out of the pipeline's log."""
    import logging
    import warnings

    lg = logging.getLogger("mlflow.pyfunc")
    old_level, old_show = lg.level, warnings.showwarning

    def show(message, *args, **kwargs):  # MLflow resets the warning filters itself ("once"): drop at display
        if "type hints" not in str(message) and "CloudPickle" not in str(message):
            old_show(message, *args, **kwargs)

    lg.setLevel(logging.ERROR)
    warnings.showwarning = show
    try:
        yield
    finally:
        lg.setLevel(old_level)
        warnings.showwarning = old_show


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
        with ctx, _quiet_model_logging():
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
