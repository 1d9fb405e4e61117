"""The online sweep (online/params.yaml, online.executor) on the two-node Ray cluster: the same cells as in-process."""
from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import ROOT

TIMINGS = ("cpu_seconds", "seconds_env", "seconds_update", "seconds_model")


def _cfg(**executor):
    from adrl.online.params import validate_online

    raw = yaml.safe_load((ROOT / "online" / "params.yaml").read_text())
    # 2 agents x 2 seeds of 200 decisions: 4 units of a few CPU-seconds (the quick profile, whatever the file's)
    raw["online"]["profile"] = "quick"
    raw["online"]["profiles"]["quick"].update(agents=["dqn", "addqn_linear_aug"], steps=200, eval_every=100,
                                              eval_episodes=1, learning_starts=50, eps_decay=100, model_every=100)
    raw["online"]["executor"] = executor
    return validate_online(raw)


def _cells(folder):
    out = {}
    for f in sorted(folder.glob("*.json")):
        rec = json.loads(f.read_text())
        out[f.name] = {k: v for k, v in rec.items() if k not in TIMINGS}
    return out


def test_online_sweep_on_ray_gives_the_cells_of_a_local_run(ray_cluster, tmp_path, monkeypatch):
    pytest.importorskip("dm_control", reason="the online extra is not installed: pip install 'adrl[online]'")
    from adrl.online.sweep import run_sweep

    monkeypatch.setenv("MUJOCO_GL", "disable")
    local = run_sweep(_cfg(), tmp_path / "local")
    remote = run_sweep(_cfg(kind="ray", address=ray_cluster.address), tmp_path / "ray")
    assert [c["agent"] for c in remote] == [c["agent"] for c in local] == ["dqn", "addqn_linear_aug"]
    a, b = _cells(tmp_path / "local"), _cells(tmp_path / "ray")
    assert len(a) == 2 and a == b
