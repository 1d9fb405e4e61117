"""params.yaml is in the shape `dvc exp run -S` writes back: an experiment's diff is the changed line only."""
from __future__ import annotations

import difflib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

DVC_YAML = """stages:
  noop:
    cmd: python -c "pass"
    params: [seed, source, synth, ingest, cohort, ais, train, evaluate, report]
"""


def _run(cmd, cwd):
    exe = Path(sys.executable).parent / cmd[0]
    if exe.exists():
        cmd = [str(exe), *cmd[1:]]
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": str(Path(sys.executable).parent) + os.pathsep
           + os.environ.get("PATH", "")}
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, f"{cmd}: {r.stdout[-2000:]}{r.stderr[-2000:]}"
    return r


@pytest.mark.skipif(shutil.which("git") is None, reason="git not found")
def test_dvc_exp_run_set_param_changes_only_that_line(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "t@adrl.invalid"],
                ["git", "config", "user.name", "t"], ["dvc", "init", "-q"], ["git", "add", "-A"],
                ["git", "commit", "-qm", "params"]):
        _run(cmd, tmp_path)
    before = (ROOT / "params.yaml").read_text().splitlines()
    # a real `dvc exp run -S` (in the workspace, so params.yaml is rewritten by DVC)
    _run(["dvc", "exp", "run", "-S", "cohort.window.after_onset_h=72", "-S", "train.steps=500"], tmp_path)
    after = (tmp_path / "params.yaml").read_text().splitlines()
    changed = [line for line in difflib.unified_diff(before, after, lineterm="", n=0)
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert len(changed) == 4, ("dvc exp run -S rewrote more than the changed lines (reshape the file with "
                               "`python scripts/params-shape.py`):\n" + "\n".join(changed))
    assert [c[0] + c[1:].split("#")[0].strip() for c in changed] == [
        "-after_onset_h: 48", "+after_onset_h: 72", "-steps:", "+steps: 500"]
