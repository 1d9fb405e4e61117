"""The real pipeline (dvc.yaml, pipeline/, adrl/) on the tiny profile with `executor.kind: ray` against the two-node
cluster of tests/ray/conftest.py: the same metrics, models and evaluate outputs as a `dvc repro` on the local executor
(the training sweep's units and the evaluate stage's roll-outs ran on the cluster, as the stages' exit lines say); and
the cells of `make experiments` (benchmarks/exp_sample_efficiency.py) on the cluster give the local pool's cells."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from adrl.executor import ExecutorParams
from tests.e2e.harness import TINY, deep_update, make_project, run

pytestmark = pytest.mark.slow
COMPARED = ["reports/metrics", "reports/plots", "reports/selected.json", "models/train", "models/ais",
            "data/processed/states.parquet"]


@pytest.fixture(scope="module")
def local_project(tmp_path_factory):
    p = make_project(tmp_path_factory.mktemp("local") / "proj", TINY)
    return p, run(["dvc", "repro"], p)


def _files(root: Path) -> dict[str, bytes]:
    out = {}
    for rel in COMPARED:
        f = root / rel
        for g in ([f] if f.is_file() else sorted(f.rglob("*"))):
            if g.is_file():
                out[str(g.relative_to(root))] = g.read_bytes()
    return out


def _exit_line(log: str, stage: str) -> str:
    lines = [x for x in log.splitlines() if re.search(rf"INFO adrl(\.ope)?: {stage}: .*(executor|in this process)", x)]
    assert lines, f"no exit line of {stage} with the units' placement"
    return lines[-1]


def test_dvc_repro_on_ray_writes_what_a_local_repro_writes(ray_cluster, local_project, tmp_path):
    local, local_run = local_project
    over = deep_update(copy.deepcopy(TINY), {"executor": {"kind": "ray", "address": ray_cluster.address}})
    p = make_project(tmp_path / "proj", over)
    r = run(["dvc", "repro"], p)
    fa, fb = _files(local), _files(p)
    assert sorted(fa) == sorted(fb)
    assert "reports/metrics/evaluate.json" in fa and "reports/metrics/train.json" in fa
    assert [k for k in fa if fa[k] != fb[k]] == []   # byte for byte
    ev = json.loads(fb["reports/metrics/evaluate.json"])
    assert ev["truth"]["bcq"]["value"] is not None and ev["audit_info"]["n_candidates"] == 4
    # the exit lines say how many units ran where: on the cluster's two nodes, in the local run in this process or
    # the local pool
    train, evaluate = _exit_line(r.stderr, "train"), _exit_line(r.stderr, "evaluate")
    assert "ray executor, 4 unit(s) on 2 node(s)" in train, train   # 3 runs and a dynamics fit
    # clinician, no treatment, the 3 selected policies in 2 units, the 4 audit candidates in 2 units, the model
    # check's patients in 1
    assert "roll-outs: ray executor, 7 unit(s) on 2 node(s)" in evaluate, evaluate
    assert "roll-outs: 5 unit(s) in this process" in _exit_line(local_run.stderr, "evaluate")
    assert "local executor, 4 unit(s) on 1 host(s)" in _exit_line(local_run.stderr, "train")


def _strip(x):
    """A cell without its wall-clock fields."""
    if isinstance(x, dict):
        return {k: _strip(v) for k, v in x.items() if k not in ("seconds", "train_s", "rollout_s", "fqe_s",
                                                                       "steps_per_s")}
    if isinstance(x, list):
        return [_strip(v) for v in x]
    return x


def test_experiment_cells_on_ray_equal_the_local_pools(ray_cluster, local_project, tmp_path):
    """Two cells (2 seeds at N = 30 training stays, BCQ and AD-BCQ) and the clinician's roll-outs, on the tiny
    pipeline's cohort as the world: the same numbers from the local pool and from the cluster."""
    from benchmarks import exp_sample_efficiency as exp

    world = local_project[0]
    a = {"interactions": [0.0], "worlds": ["0.0"], "world_params": {"0.0": (0.0, 0.0)}, "sizes": [30],
         "seeds": [0, 1], "stays": 300, "patients": 30, "rollout_seed": 777, "steps": 40, "checkpoints": 2,
         "tau": 0.3, "mixers": ["linear"], "arms": ["bcq", "adbcq-linear-aug"],
         "dynamics": {"ensemble": 2, "hidden": 32, "max_epochs": 5, "patience": 5}}
    jobs = [("0.0", s, 30) for s in a["seeds"]]
    out = {}
    for kind, params in (("local", ExecutorParams()),
                         ("ray", ExecutorParams(kind="ray", address=ray_cluster.address))):
        cells, clin, where = exp.run_grid({"0.0": world}, jobs, a, tmp_path / kind, params, 2)
        out[kind] = (sorted((_strip(c) for c in cells), key=lambda c: c["seed"]), clin)
        assert where.startswith(f"{kind} executor, 3 unit(s)"), where
    assert len(out["local"][0]) == 2 and set(out["local"][0][0]["runs"]) == set(a["arms"])
    assert out["local"] == out["ray"]
