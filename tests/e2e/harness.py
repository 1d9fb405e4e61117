"""Run the real pipeline (dvc.yaml + pipeline/ + adrl/) in a scratch copy of the project on a tiny profile."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]

# A tiny profile: every stage runs for real, on few stays and few steps.
TINY = {
    "synth": {"profile": "tiny"},
    "ais": {"max_epochs": 3, "patience": 2},
    "train": {"steps": 60, "checkpoint_every": 20, "thresholds": [0.3], "seeds": [0]},
    "evaluate": {"bootstrap": 50, "knn_k": 20, "truth": {"n_patients": 60},
                 "fqe": {"candidates": 9, "steps": 200, "target_every": 20, "hidden": 32, "batch_size": 256},
                 "audit": {"candidates": 4, "n_patients": 30}},
}


def deep_update(d: dict, u: dict) -> dict:
    for k, v in u.items():
        if isinstance(v, dict) and isinstance(d.get(k), dict):
            deep_update(d[k], v)
        else:
            d[k] = v
    return d


def make_project(dst: Path, overrides: dict | None = None, git: bool = False) -> Path:
    """A scratch copy of the project. ``git``: a git repository with the code committed (what `dvc exp run`
    needs), as on a fresh clone; otherwise a DVC project without git."""
    dst.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for d in ("adrl", "pipeline"):
        shutil.copytree(ROOT / d, dst / d, ignore=ignore)
    shutil.copy(ROOT / "dvc.yaml", dst / "dvc.yaml")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    deep_update(params, TINY if overrides is None else overrides)
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if not git:
        run(["dvc", "init", "--no-scm", "-q"], dst)
        return dst
    shutil.copy(ROOT / ".gitignore", dst / ".gitignore")
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "e2e@adrl.invalid"],
                ["git", "config", "user.name", "adrl e2e"], ["dvc", "init", "-q"],
                ["dvc", "config", "core.autostage", "true"], ["git", "add", "-A"],
                ["git", "commit", "-qm", "code"]):
        run(cmd, dst)
    return dst


def env_for(project: Path) -> dict:
    env = dict(os.environ)
    env.update({
        "PYTHONPATH": str(project) + os.pathsep + env.get("PYTHONPATH", ""),
        "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}",
        "ADRL_ARTIFACT_ROOT": (project / "mlartifacts").as_uri(),
        "ADRL_TRACKING": "on",
        "DVC_NO_ANALYTICS": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "OMP_NUM_THREADS": "2",
        "ADRL_ROOT": str(project),
        "PATH": str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
    })
    for k in ("ADRL_PARENT_RUN_ID", "ADRL_PIPELINE_KEY", "ADRL_PIPELINE_NAME", "DVC_EXP_NAME", "DVC_EXP_BASELINE_REV"):
        env.pop(k, None)
    return env


def run(cmd: list[str], project: Path, check: bool = True, timeout: int = 1800) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent
    if cmd[0] in ("dvc", "adrl", "mlflow") and (exe / cmd[0]).exists():
        cmd = [str(exe / cmd[0]), *cmd[1:]]
    if cmd[0] == "adrl":
        cmd = [sys.executable, "-m", "adrl.cli", *cmd[1:]]
    p = subprocess.run(cmd, cwd=project, env=env_for(project), capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-4000:]}\n{p.stderr[-6000:]}")
    return p
