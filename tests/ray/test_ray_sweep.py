"""The training sweep on a real two-node Ray cluster (tests/ray/conftest.py): the same outputs as the local pool,
units on both nodes, and a node killed mid-sweep costs a retry, not the sweep."""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch

from adrl.executor import ExecutorParams
from adrl.rl.params import TrainParams
from adrl.rl.train import run_sweep
from tests.rl.factored_mdp import make_states

# 2 seeds x (bcq, adbcq with augmentation): 4 one-run groups and 2 dynamics fits, a few seconds of CPU each
SMALL = dict(algorithms=["bcq", "adbcq"], mixers=["linear"], augment=[True], thresholds=[0.3], seeds=[0, 1],
             hidden=32, steps=40, checkpoint_every=20, value_check_split="val", workers=2,
             dynamics=dict(ensemble=2, hidden=32, layers=1, max_epochs=5, patience=5))


@pytest.fixture(scope="module")
def states():
    return make_states(200, seed=9)


@pytest.fixture(scope="module")
def local_out(states, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "train"
    man = run_sweep(states, TrainParams(**SMALL), out)
    assert man["placement"].startswith("local executor")
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()}


def _same_outputs(a: Path, b: Path) -> None:
    fa, fb = _files(a), _files(b)
    assert sorted(fa) == sorted(fb)
    assert any(k.endswith("checkpoints.pt") for k in fa) and any(k.endswith("ensemble.pt") for k in fa)
    for k in fa:
        if k.endswith(".pt"):   # same tensors (torch.save's archive bytes are compared too, below)
            ta, tb = torch.load(a / k, weights_only=True), torch.load(b / k, weights_only=True)
            flat_a, flat_b = _flat(ta), _flat(tb)
            assert flat_a.keys() == flat_b.keys(), k
            assert all(torch.equal(flat_a[n], flat_b[n]) for n in flat_a), k
        assert fa[k] == fb[k], f"{k} differs between the local and the Ray executor"


def _flat(x, prefix=""):
    if isinstance(x, dict):
        return {n: v for key, val in x.items() for n, v in _flat(val, f"{prefix}{key}/").items()}
    return {prefix: x} if isinstance(x, torch.Tensor) else {}


def _nodes(placement: str) -> int:
    # "ray executor, 6 unit(s) on 2 node(s): 1a2b3c4d (127.0.0.1) 3, ..."
    return int(placement.split(" on ")[1].split(" node")[0])


def test_cluster_listens_on_loopback_only(ray_cluster):
    from tests.ray.cluster import listening

    for node in ("head", "second"):
        addrs = listening(ray_cluster.members(node))
        assert addrs, f"node {node} listens on nothing"
        assert all(a.startswith("127.0.0.1:") for a in addrs), (node, addrs)


def test_ray_sweep_writes_what_the_local_pool_writes(ray_cluster, states, local_out, tmp_path):
    out = tmp_path / "train"
    man = run_sweep(states, TrainParams(**SMALL), out, executor=ExecutorParams(kind="ray", address=ray_cluster.address))
    assert man["placement"].startswith("ray executor, 6 unit(s)"), man["placement"]
    assert _nodes(man["placement"]) == 2, man["placement"]   # both nodes ran units
    _same_outputs(local_out, out)
    assert not [q for q in out.rglob(".*") if q.name.endswith(".tmp")]   # no staging leftovers


def test_a_node_killed_mid_sweep_costs_a_retry_not_the_sweep(ray_cluster, states, local_out, tmp_path):
    out, killed = tmp_path / "train", []

    def kill_second_node():
        # as soon as the second node runs a unit, kill its raylet (its workers die with it)
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            if ray_cluster.busy_worker("second", ("_group_job", "_dynamics_job")):
                os.kill(ray_cluster.raylet("second"), signal.SIGKILL)
                killed.append(time.time())
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_second_node, daemon=True)
    killer.start()
    man = run_sweep(states, TrainParams(**SMALL), out,
                    executor=ExecutorParams(kind="ray", address=ray_cluster.address, max_retries=2))
    killer.join()
    assert killed, "the second node never ran a unit"
    assert "retried" in man["placement"], man["placement"]   # the unit that ran on the killed node ran again
    assert len(man["runs"]) == 4
    _same_outputs(local_out, out)
