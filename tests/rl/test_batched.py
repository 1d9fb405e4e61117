"""Batched sweeps (issue 13): a group of runs trained as one vectorised model equals each run trained alone; a killed
sweep resumes where it stopped; train.device; groups split by the memory budget; the output folder is never
silently replaced.

Runs of a group that differ only in tau (here the two seed-0 runs) train one imitation network (adrl/rl/batched.py
says why that is exact); the equivalence below holds with that sharing.

Why not bitwise equality: the batched path runs the same losses through vmap, so the matrix products are batched
(bmm kernels, and AD-BCQ's synthetic rows padded to the longest run of the group); float32 sums are then accumulated
in another order. Differences start at ~1e-7 relative and grow slowly with training; what holds, and is tested: the
loss histories and checkpoints agree to TOL after every checkpoint, and the greedy actions of every checkpoint agree
on at least 99% of states (a near-tie between two allowed actions can flip).
"""
import json
import logging
import shutil

import numpy as np
import pytest
import torch

from adrl.errors import ConfigError, InputError
from adrl.rl import train as T
from adrl.rl.batched import BatchedLearners
from adrl.rl.data import states_of, transitions
from adrl.rl.dynamics import fit_dynamics
from adrl.rl.params import TrainParams
from adrl.rl.policy import greedy_matrix
from adrl.rl.train import RunSpec, dynamics_config, plan_groups, run_sweep, train_group, train_run
from tests.rl.factored_mdp import make_states

SMALL = dict(hidden=32, steps=60, checkpoint_every=20, batch_size=50, workers=1, value_check_split="none",
             dynamics=dict(ensemble=2, hidden=16, layers=1, max_epochs=3, patience=3))
RTOL, ATOL = 1e-3, 1e-5      # checkpoints and loss histories after 60 steps
GREEDY_AGREE = 0.99


@pytest.fixture(scope="module")
def data():
    df = make_states(300, seed=4)
    return df, transitions(df, "train"), transitions(df, "val")


@pytest.mark.parametrize("algorithm,mixer,augment", [("bcq", None, None), ("factored_bcq", None, None),
                                                     ("adbcq", "linear", True)])
def test_batched_group_equals_single_runs(data, tmp_path, algorithm, mixer, augment):
    df, tr, va = data
    p = TrainParams(**SMALL)
    specs = [RunSpec(algorithm, tau, seed, mixer, augment) for tau, seed in [(0.3, 0), (0.0, 1), (0.9, 0)]]
    dyn = {s: fit_dynamics(tr, va, dynamics_config(p), s, progress=False)[0] for s in (0, 1)} if augment else {}
    batched = train_group(specs, tr, p, tmp_path / "batched", dyn)
    z = states_of(df, "val")
    for spec, rec_b in zip(specs, batched):
        assert rec_b["group_size"] == 3
        rec_s = train_run(spec, tr, p, tmp_path / "single", dyn.get(spec.seed), f"seed{spec.seed}", progress=False)
        for key, vals in rec_s["history"].items():
            np.testing.assert_allclose(rec_b["history"][key], vals, rtol=RTOL, atol=ATOL, err_msg=f"{spec.run_id} {key}")
        ck_b = torch.load(tmp_path / "batched" / "runs" / spec.run_id / "checkpoints.pt", weights_only=True)
        ck_s = torch.load(tmp_path / "single" / "runs" / spec.run_id / "checkpoints.pt", weights_only=True)
        assert ck_b["steps"].tolist() == ck_s["steps"].tolist() == [20, 40, 60]
        for k, v in ck_s["params"].items():
            torch.testing.assert_close(ck_b["params"][k], v, rtol=RTOL, atol=ATOL, msg=f"{spec.run_id} {k}")
        _, g_b = greedy_matrix(tmp_path / "batched" / "runs" / spec.run_id, z)
        _, g_s = greedy_matrix(tmp_path / "single" / "runs" / spec.run_id, z)
        assert (g_b == g_s).mean() >= GREEDY_AGREE, spec.run_id
        # only some checkpoints (what FQE asks for): the same actions as those rows of all; unknown steps left out
        st_o, g_o = greedy_matrix(tmp_path / "batched" / "runs" / spec.run_id, z, only_steps=[60, 20, 35])
        assert st_o.tolist() == [20, 60] and np.array_equal(g_o, g_b[[0, 2]]), spec.run_id
    # the runs of a group are not the same run: different seeds/thresholds give different networks
    ck = [torch.load(tmp_path / "batched" / "runs" / s.run_id / "checkpoints.pt", weights_only=True) for s in specs]
    first = next(iter(ck[0]["params"]))
    assert not torch.allclose(ck[0]["params"][first], ck[1]["params"][first])
    # the two seed-0 runs (tau 0.3 and 0.9) trained one imitation network: bitwise the same in both checkpoints
    imit = [k for k in ck[0]["params"] if k.startswith("imit.")]
    assert imit and all(torch.equal(ck[0]["params"][k], ck[2]["params"][k]) for k in imit)


@pytest.mark.parametrize("algorithm,mixer,augment", [("bcq", None, None), ("factored_bcq", None, None),
                                                     ("adbcq", "linear", True)])
def test_imitation_network_does_not_depend_on_tau(data, tmp_path, algorithm, mixer, augment):
    """Why runs that differ only in tau can share one imitation network: trained alone, two such runs end with
    bitwise the same imitation network and imitation loss, while their Q networks differ; in a batched group they
    train one copy (U = 2 networks for 3 runs of 2 seeds)."""
    _, tr, va = data
    p = TrainParams(**SMALL)
    dyn = {s: fit_dynamics(tr, va, dynamics_config(p), s, progress=False)[0] for s in (0, 1)} if augment else {}
    specs = [RunSpec(algorithm, tau, seed, mixer, augment) for tau, seed in [(0.0, 0), (0.9, 0), (0.3, 1)]]
    recs = [train_run(s, tr, p, tmp_path, dyn.get(s.seed), progress=False) for s in specs[:2]]
    ck = [torch.load(tmp_path / "runs" / s.run_id / "checkpoints.pt", weights_only=True)["params"] for s in specs[:2]]
    imit = [k for k in ck[0] if k.startswith("imit.")]
    assert imit and all(torch.equal(ck[0][k], ck[1][k]) for k in imit)
    assert recs[0]["history"]["loss/bc"] == recs[1]["history"]["loss/bc"]
    assert any(not torch.equal(ck[0][k], ck[1][k]) for k in ck[0] if k not in imit)
    learners = [T.make_learner(s, tr, p, dyn.get(s.seed)) for s in specs]
    b = BatchedLearners(learners)
    assert (b.U, b.imit_of) == (2, [0, 0, 1])
    assert BatchedLearners(learners, share_imitation=False).U == 3
    # sharing is only sound on the same batches: a group fed different batches for the shared runs is refused
    z = torch.from_numpy(tr.z[:150]).reshape(3, 50, -1)
    a, r, z2, done = (torch.from_numpy(getattr(tr, k)[:150]).reshape(3, 50, *getattr(tr, k).shape[1:])
                      for k in ("a", "r", "z2", "done"))
    with pytest.raises(ValueError, match="share an imitation network were given different batches"):
        b.update(z, a, r, z2, done)


SWEEP = dict(SMALL, algorithms=["bcq", "factored_bcq"], thresholds=[0.1, 0.3], seeds=[0, 1], group_size=1)


@pytest.mark.parametrize("group_size,crash_after", [(1, 3), (2, 4)])
def test_killed_sweep_reruns_only_what_is_missing(data, tmp_path, monkeypatch, group_size, crash_after):
    """Killed after some runs are written (one run at a time, or batched groups of 2 thresholds sharing an imitation
    network), a rerun trains only the missing runs, and they equal an uninterrupted sweep's."""
    df = data[0]
    p = TrainParams(**{**SWEEP, "group_size": group_size})
    trained: list[str] = []
    real = T.train_group

    def counting(specs, *a, **k):
        trained.extend(s.run_id for s in specs)
        return real(specs, *a, **k)

    monkeypatch.setattr(T, "train_group", counting)

    def crash(rec):
        if len(trained) == crash_after:
            raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        run_sweep(df, p, tmp_path / "m", on_run=crash)
    done_before = sorted(q.name for q in (tmp_path / "m" / "runs").iterdir())
    assert len(done_before) == crash_after and not (tmp_path / "m" / "runs.json").exists()
    mtimes = {n: (tmp_path / "m" / "runs" / n / "run.json").stat().st_mtime_ns for n in done_before}
    trained.clear()
    man = run_sweep(df, p, tmp_path / "m")
    all_ids = [r["run_id"] for r in man["runs"]]
    assert len(all_ids) == 8 and sorted(trained) == sorted(set(all_ids) - set(done_before))
    assert all((tmp_path / "m" / "runs" / n / "run.json").stat().st_mtime_ns == t for n, t in mtimes.items())
    # the resumed sweep holds what an uninterrupted one trains
    trained.clear()
    run_sweep(df, p, tmp_path / "fresh")
    for rid in all_ids:
        a = torch.load(tmp_path / "m" / "runs" / rid / "checkpoints.pt", weights_only=True)
        b = torch.load(tmp_path / "fresh" / "runs" / rid / "checkpoints.pt", weights_only=True)
        assert all(torch.equal(a["params"][k], b["params"][k]) for k in a["params"]), rid
    # a rerun with everything complete trains nothing; a changed knob retrains every run it touches
    trained.clear()
    run_sweep(df, p, tmp_path / "m")
    assert trained == []
    run_sweep(df, TrainParams(**{**SWEEP, "group_size": group_size, "steps": 40}), tmp_path / "m")
    assert sorted(trained) == sorted(all_ids)
    assert json.loads((tmp_path / "m" / "runs" / all_ids[0] / "run.json").read_text())["steps"][-1] == 40


def test_existing_folder_that_is_not_a_training_output_is_refused(data, tmp_path):
    out = tmp_path / "m"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="refusing to write into it"):
        run_sweep(data[0], TrainParams(**{**SWEEP, "algorithms": ["bcq"]}), out)
    assert (out / "notes.txt").read_text() == "mine" and sorted(q.name for q in out.iterdir()) == ["notes.txt"]


def test_runs_of_an_earlier_sweep_are_removed_and_said(data, tmp_path, caplog):
    p = TrainParams(**{**SWEEP, "algorithms": ["bcq"], "thresholds": [0.3]})
    run_sweep(data[0], TrainParams(**{**SWEEP, "algorithms": ["bcq"], "thresholds": [0.1]}), tmp_path / "m")
    with caplog.at_level(logging.INFO, logger="adrl.rl"):
        man = run_sweep(data[0], p, tmp_path / "m")
    assert sorted(q.name for q in (tmp_path / "m" / "runs").iterdir()) == sorted(r["run_id"] for r in man["runs"])
    assert "removing 2 run(s) of an earlier sweep" in caplog.text


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a GPU")
def test_cuda_without_a_gpu_is_a_clear_error_and_auto_falls_back(data, tmp_path, caplog):
    with pytest.raises(ConfigError, match="train.device is cuda, but torch finds no CUDA device"):
        run_sweep(data[0], TrainParams(**{**SWEEP, "device": "cuda"}), tmp_path / "m")
    assert not (tmp_path / "m").exists()
    with caplog.at_level(logging.INFO, logger="adrl.rl"):
        man = run_sweep(data[0], TrainParams(**{**SWEEP, "algorithms": ["bcq"], "thresholds": [0.3],
                                                "seeds": [0], "device": "auto"}), tmp_path / "m")
    assert man["device"] == "cpu" and "train.device: auto -> cpu (no CUDA device found)" in caplog.text


def test_groups_keep_a_seeds_thresholds_together(data):
    """group_split: seeds. A seed's thresholds share one imitation network: group_size 20 over 8 thresholds x 5 seeds
    gives groups of whole seeds (16, 16, 8), not 20 + 20 with one seed trained in both; a seed larger than a group is
    split."""
    d = data[1].dim
    taus = [0, 0.01, 0.05, 0.1, 0.3, 0.5, 0.75, 0.9999]
    p = TrainParams(**{**SWEEP, "algorithms": ["bcq"], "thresholds": taus, "seeds": [0, 1, 2, 3, 4], "group_size": 20,
                       "group_split": "seeds"})
    groups = plan_groups(T.expand_sweep(p), p, d)
    assert [len(g) for g in groups] == [16, 16, 8]
    assert [sorted({s.seed for s in g}) for g in groups] == [[0, 1], [2, 3], [4]]
    small = TrainParams(**{**SWEEP, "algorithms": ["bcq"], "thresholds": taus, "seeds": [0, 1], "group_size": 5,
                           "group_split": "seeds"})
    groups = plan_groups(T.expand_sweep(small), small, d)
    assert [len(g) for g in groups] == [5, 3, 5, 3] and all(len({s.seed for s in g}) == 1 for g in groups)
    assert sorted(s.run_id for g in groups for s in g) == sorted(s.run_id for s in T.expand_sweep(small))


def test_balanced_groups_are_the_fewest_of_equal_size(data):
    """group_split: balanced (the default). 40 runs in groups of at most 20 are 20 + 20 (seed 2's thresholds in both,
    each group training its own copy of seed 2's imitation network), so 2 workers get 20 runs each where cutting
    between seeds gave one 24 and the other 16; sizes differ by at most one; every run once, seeds in order."""
    d = data[1].dim
    taus = [0, 0.01, 0.05, 0.1, 0.3, 0.5, 0.75, 0.9999]
    for seeds, size, want in (([0, 1, 2, 3, 4], 20, [20, 20]), ([0, 1, 2, 3, 4], 8, [8] * 5),
                              ([0, 1, 2, 3, 4], 16, [14, 13, 13]), ([0, 1], 5, [4, 4, 4, 4]), ([0], 20, [8])):
        p = TrainParams(**{**SWEEP, "algorithms": ["bcq"], "thresholds": taus, "seeds": seeds, "group_size": size})
        specs = T.expand_sweep(p)
        groups = plan_groups(specs, p, d)
        assert [len(g) for g in groups] == want, (seeds, size)
        flat = [s for g in groups for s in g]
        assert sorted(s.run_id for s in flat) == sorted(s.run_id for s in specs)
        assert [s.seed for s in flat] == sorted(s.seed for s in specs)
    p = TrainParams(**{**SWEEP, "algorithms": ["bcq"], "thresholds": taus, "seeds": [0, 1, 2, 3, 4], "group_size": 20})
    groups = plan_groups(T.expand_sweep(p), p, d)
    assert [sorted({s.seed for s in g}) for g in groups] == [[0, 1, 2], [2, 3, 4]]
    b = BatchedLearners([T.make_learner(s, data[1], p) for s in groups[0]])
    assert b.U == 3 and b.imit_of == [0] * 8 + [1] * 8 + [2] * 4


def test_groups_fill_the_workers(data, tmp_path, caplog):
    """One learner's 40 runs at train.group_size 40 on 2 workers were one group, and one worker sat idle: with fewer
    groups than workers the costliest group is halved (balanced, seeds in order) until every worker has one; a sweep
    with at least as many groups as workers keeps them whole."""
    d = data[1].dim
    taus = [0, 0.01, 0.05, 0.1, 0.3, 0.5, 0.75, 0.9999]
    grid = dict(SWEEP, thresholds=taus, seeds=[0, 1, 2, 3, 4], group_size=40, group_memory_mb=8192)
    p = TrainParams(**{**grid, "algorithms": ["bcq"]})
    assert [len(g) for g in plan_groups(T.expand_sweep(p), p, d)] == [40]
    groups = plan_groups(T.expand_sweep(p), p, d, slots=2)
    assert [len(g) for g in groups] == [20, 20]
    assert [sorted({s.seed for s in g}) for g in groups] == [[0, 1, 2], [2, 3, 4]]
    assert [len(g) for g in plan_groups(T.expand_sweep(p), p, d, slots=3)] == [10, 10, 20]   # the first of equals
    full = TrainParams(**{**grid, "algorithms": ["bcq", "factored_bcq", "adbcq"], "mixers": ["linear"],
                          "augment": [True]})
    assert [len(g) for g in plan_groups(T.expand_sweep(full), full, d, slots=2)] == [40, 40, 40]
    # four slots: the augmented group (cost 80) is halved first
    four = plan_groups(T.expand_sweep(full), full, d, slots=4)
    assert sorted((g[0].algorithm, len(g)) for g in four) == [("adbcq", 20), ("adbcq", 20), ("bcq", 40),
                                                             ("factored_bcq", 40)]
    one = TrainParams(**{**grid, "algorithms": ["bcq"], "thresholds": [0.3], "seeds": [0]})
    assert [len(g) for g in plan_groups(T.expand_sweep(one), one, d, slots=2)] == [1]   # nothing to halve
    # the sweep fills its workers: 4 runs, group_size 4, 2 workers -> 2 groups of 2
    small = TrainParams(**{**SWEEP, "algorithms": ["bcq"], "group_size": 4, "workers": 2})
    with caplog.at_level(logging.INFO, logger="adrl.rl"):
        man = run_sweep(data[0], small, tmp_path / "m")
    assert "4 to train in 2 batched group(s)" in caplog.text
    assert [r["group_size"] for r in man["runs"]] == [2, 2, 2, 2]
    # a rerun after a crash trains the missing runs in their groups of the whole sweep (here the 2 runs of one group
    # together, not halved again into 2 single runs, whose numbers would differ by float rounding): same bytes
    runs = tmp_path / "m" / "runs"
    before = {q.parent.name: q.read_bytes() for q in sorted(runs.glob("*/checkpoints.pt"))}
    lost = [r["run_id"] for r in man["runs"] if r["seed"] == 0]   # one group's runs (seed 0's 2 thresholds)
    assert len(lost) == 2 and set(lost) <= set(before)
    for name in lost:
        shutil.rmtree(runs / name)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="adrl.rl"):
        run_sweep(data[0], small, tmp_path / "m")
    assert "2 to train in 1 batched group(s)" in caplog.text
    assert {q.parent.name: q.read_bytes() for q in sorted(runs.glob("*/checkpoints.pt"))} == before


def test_units_go_out_fits_first_then_costliest_groups_first(data):
    """The method's grid in groups of 20 on 2 workers: the sweep used to leave its last AD-BCQ group (seed 4, 8
    runs, about 4 minutes at 10,000 steps) to one worker while the other had nothing left (benchmarks/results/
    sweep.md). unit_order sends the dynamics fits first (the augmented groups wait for them), then groups by cost,
    an augmented run counting twice, so the smallest model-free groups come last."""
    d = data[1].dim
    taus = [0, 0.01, 0.05, 0.1, 0.3, 0.5, 0.75, 0.9999]
    p = TrainParams(**{**SWEEP, "algorithms": ["bcq", "factored_bcq", "adbcq"], "mixers": ["linear"],
                       "augment": [True], "thresholds": taus, "seeds": [0, 1, 2, 3, 4], "group_size": 20,
                       "group_split": "seeds"})
    groups = plan_groups(T.expand_sweep(p), p, d)
    units = [("group", g) for g in groups] + [("dyn", s) for s in range(5)]
    order = T.unit_order(units)
    assert [x for k, x in order[:5]] == [0, 1, 2, 3, 4] and all(k == "dyn" for k, _ in order[:5])
    got = [(g[0].algorithm, len(g)) for _, g in order[5:]]
    assert got[:2] == [("adbcq", 16), ("adbcq", 16)]
    assert sorted(got[2:7]) == sorted([("bcq", 16), ("bcq", 16), ("factored_bcq", 16), ("factored_bcq", 16),
                                       ("adbcq", 8)])
    assert sorted(got[7:]) == [("bcq", 8), ("factored_bcq", 8)]
    assert sorted(id(g) for _, g in order[5:]) == sorted(id(g) for g in groups)


def test_groups_that_would_not_fit_are_split(data, tmp_path, caplog):
    d = data[1].dim
    p = TrainParams(**{**SWEEP, "group_size": 20, "group_memory_mb": 2048})
    specs = T.expand_sweep(p)
    assert [len(g) for g in plan_groups(specs, p, d)] == [4, 4]          # one group per architecture
    per_run = T.run_bytes(specs[0], p, d)
    budget = int(np.ceil(2.5 * per_run / 2**20))
    small = TrainParams(**{**SWEEP, "group_size": 20, "group_memory_mb": budget})
    n_fit = int(budget * 2**20 // per_run)
    assert 1 <= n_fit < 4, "the test needs a budget that holds some but not all of a group"
    groups = plan_groups(specs, small, d)
    assert all(len(g) <= n_fit for g in groups) and sorted(s.run_id for g in groups for s in g) == \
        sorted(s.run_id for s in specs)
    with caplog.at_level(logging.INFO, logger="adrl.rl"):
        man = run_sweep(data[0], small, tmp_path / "m", log_every=0.05)
    assert len(man["runs"]) == 8 and "split into groups of <=" in caplog.text
    assert "8/8 runs done" in caplog.text
