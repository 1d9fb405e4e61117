"""The action grid, the DecQN reduction and the online parameters' errors (no environment needed)."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from adrl.errors import ConfigError
from adrl.online.agents import ADDQN, AgentConfig
from adrl.online.env import ActionGrid
from adrl.online.params import load_online, validate_online
from tests.conftest import ROOT


@pytest.mark.parametrize("n", [3, 9, 17, 33])
def test_action_grid_has_an_exact_noop_and_a_one_to_one_flat_index(n):
    g = ActionGrid(n)
    assert len(g.levels) == n and g.levels[0] == -1.0 and g.levels[-1] == 1.0
    assert g.levels[g.noop] == 0.0 and g.noop == n // 2                   # zero force: the no-op level
    assert np.allclose(np.diff(g.levels), 2.0 / (n - 1))                   # evenly spaced in [-1, 1]
    a = np.arange(n * n)
    ax, ay = g.from_flat(a)
    assert np.array_equal(g.to_flat(ax, ay), a)                            # flat <-> (a_x, a_y), one to one
    assert len({(int(x), int(y)) for x, y in zip(ax, ay)}) == n * n
    assert np.array_equal(g.forces(g.noop_flat), [0.0, 0.0])
    assert np.array_equal(g.forces(g.to_flat(0, n - 1)), [-1.0, 1.0])     # a_x drives x, a_y drives y


@pytest.mark.parametrize("n", [4, 1, 0, 2.5, True])
def test_even_or_bad_n_is_refused(n):
    with pytest.raises(ConfigError, match="odd number of levels"):
        ActionGrid(n)


def _batch(n, B=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, 4, generator=g), torch.randint(n * n, (B,), generator=g), torch.rand(B, generator=g),
            torch.randn(B, 4, generator=g), torch.zeros(B))


def test_decqn_is_addqn_with_the_mean_mixer_and_no_augmentation_exactly():
    n = 9
    dec = ADDQN(4, AgentConfig(kind="decqn", n=n), seed=3)
    ad = ADDQN(4, AgentConfig(kind="addqn", n=n, mixer="mean", augment=False), seed=3)
    assert dec.cfg.mixer == "mean" and dec.cfg.augment is False
    for i in range(20):
        b = _batch(n, seed=i)
        s1, s2 = dec.update(*b), ad.update(*b)
        assert s1["loss/mix"].item() == s2["loss/mix"].item()
    for p1, p2 in zip(dec.net.parameters(), ad.net.parameters()):
        assert torch.equal(p1, p2)
    # DecQN's value is the mean of the per-actuator utilities, and its greedy joint action is the pair of
    # per-actuator argmaxes (the decentralised argmax)
    z = torch.randn(32, 4)
    q = dec.heads(z)
    ax, ay = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    want = (q[:, 0, ax.reshape(-1)] + q[:, 1, ay.reshape(-1)]) / 2
    assert torch.allclose(dec.values(z), want, atol=1e-6)
    assert torch.equal(dec.greedy(z), q[:, 0].argmax(-1) * n + q[:, 1].argmax(-1))


def _raw(profile="quick"):
    raw = yaml.safe_load((ROOT / "online" / "params.yaml").read_text())
    raw["online"]["profile"] = profile
    return raw


def test_project_online_params_are_valid_for_both_profiles():
    for profile in ("quick", "full"):
        cfg = validate_online(_raw(profile))
        p = cfg.active()
        assert all(n % 2 == 1 for n in p.levels)
        for name in p.agents:
            cfg.agent_config(name, p.levels[0])
    full = validate_online(_raw("full")).active()
    assert len(full.seeds) >= 5 and set(full.levels) == {9, 17, 33} and set(full.tasks) == {"easy", "hard"}


@pytest.mark.parametrize("edit, needle", [
    (lambda o: o["profiles"]["quick"].update(levels=[8]), "online.profiles.quick.levels"),
    (lambda o: o["profiles"]["quick"].update(tasks=["medium"]), "online.profiles.quick.tasks"),
    (lambda o: o["agents"][0].update(kind="ppo"), "online.agents.0.kind"),
    (lambda o: o["agents"][2].update(mixer="max"), "online.agents.2.mixer"),
    (lambda o: o["profiles"]["quick"].update(agents=["dqn", "nope"]), "online.profiles.quick.agents: unknown agent 'nope'"),
    (lambda o: o.update(lr="fast"), "online.lr"),
    (lambda o: o.update(profile="huge"), "online.profile"),
    (lambda o: o.update(gama=0.9), "online.gama: unknown key"),
])
def test_bad_online_parameters_name_the_key(edit, needle):
    raw = _raw()
    edit(raw["online"])
    with pytest.raises(ConfigError) as e:
        validate_online(raw)
    assert needle in str(e.value)
    if "levels" in needle:
        assert "odd number of levels" in str(e.value)
    if "mixer" in needle:
        assert "unknown mixer 'max'" in str(e.value)


def test_stage_exits_2_with_the_key_and_no_traceback(tmp_path):
    raw = _raw()
    raw["online"]["profiles"]["quick"]["levels"] = [10]
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "ADRL_ONLINE_PARAMS": str(bad), "ADRL_TRACKING": "off", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "pipeline.online_train"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "online.profiles.quick.levels" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "reports").exists()                      # nothing half-written


def test_missing_online_params_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_online(tmp_path / "nope.yaml")


def test_a_finished_cell_is_reused_only_with_the_same_parameters_and_code(monkeypatch):
    from adrl.online import sweep

    cfg = validate_online(_raw())
    h = sweep.cell_hash(cfg, "easy", 9, "dqn")
    assert sweep.cell_hash(validate_online(_raw()), "easy", 9, "dqn") == h
    raw = _raw()
    raw["online"]["lr"] = 0.002
    assert sweep.cell_hash(validate_online(raw), "easy", 9, "dqn") != h
    monkeypatch.setattr(sweep, "code_hash", lambda: "other source")
    assert sweep.cell_hash(cfg, "easy", 9, "dqn") != h


def test_stage_runs_and_logs_one_mlflow_tree_per_execution(tmp_path, mlflow_store):
    """`python -m pipeline.online_train` end to end with tracking on (a tiny profile: one agent, one seed): the cell
    is written, and MLflow holds a parent run `online-quick` with the parameters and one child per cell."""
    pytest.importorskip("dm_control", reason="the online extra is not installed: pip install 'adrl[online]'")
    import mlflow

    from adrl import tracking

    raw = _raw()
    raw["online"]["profiles"]["quick"].update(agents=["decqn"], seeds=[0], steps=60, eval_every=30,
                                              eval_episodes=1, learning_starts=20, eps_decay=30, model_every=30)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "ADRL_ONLINE_PARAMS": str(params), "PYTHONPATH": str(ROOT), "MUJOCO_GL": "disable"}
    env.pop(tracking.PIPELINE_ENV, None)
    r = subprocess.run([sys.executable, "-m", "pipeline.online_train"], cwd=work, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert [f.name for f in (work / "reports" / "online" / "runs").glob("*.json")] == ["easy_n9_decqn.json"]

    # this test's store, named explicitly (an earlier test in the session may have set mlflow's global tracking URI)
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{mlflow_store / 'mlflow.db'}")
    exp = client.get_experiment_by_name(tracking.EXPERIMENT)
    runs = {x.info.run_name: x for x in client.search_runs([exp.experiment_id])}
    assert set(runs) == {"online-quick", "easy/n=9/decqn"}
    parent, cell = runs["online-quick"], runs["easy/n=9/decqn"]
    assert parent.info.status == "FINISHED" and parent.data.params["profile"] == "quick"
    assert parent.data.tags["adrl.online.profile"] == "quick"
    assert cell.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert cell.data.params["agent"] == "decqn" and "final_return" in cell.data.metrics
