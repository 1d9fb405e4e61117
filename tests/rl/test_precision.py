"""train.precision: bfloat16 (each update's forward and backward under torch.autocast).

What holds, and is tested here: the parameters, Adam's state and the checkpoints stay float32; a bfloat16 run is
deterministic (the same params and seed give bitwise the same checkpoints); its losses follow float32's (every
checkpoint's mean losses within 2% after 60 steps; measured 0.003-0.6%), which also guards against a stale weight
cast (autocast caches each weight's bfloat16 copy until its region exits: a region around the whole loop, as first
written, trained every step on the first step's weights and left the loss flat); a batched group follows its single
runs (losses within 5%, greedy actions >= 95% alike after 60 steps); AD-BCQ's model batch is the same draws as in
float32; a sweep switched between precisions retrains (the run hash differs).

Why the batched tolerance is wider than float32's (tests/rl/test_batched.py: 1e-3 and 99%): bfloat16 keeps 8
significant bits, so two ways of summing the same products (mm and bmm kernels) round some outputs differently by
a unit in the last place (0.4%), where float32 differs by 1e-7; Adam divides each gradient by its running scale, so
a small gradient that changes sign moves its weight by up to the learning rate. Measured on this file's world after
60 steps: loss histories 1.7-3.9% apart at most, parameters up to 0.012-0.018, greedy actions 97.3-99.4% alike.
Whether bfloat16 learns values as well as float32 is a measurement, not a test: benchmarks/results/precision.md.
"""
import numpy as np
import pytest
import torch

from adrl.rl import train as T
from adrl.rl.data import states_of, transitions
from adrl.rl.policy import greedy_matrix
from adrl.rl.dynamics import fit_dynamics
from adrl.rl.params import TrainParams
from adrl.rl.train import RunSpec, dynamics_config, make_learner, train_group, train_run
from tests.rl.factored_mdp import make_states

SMALL = dict(hidden=32, steps=60, checkpoint_every=20, batch_size=50, workers=1, value_check_split="none",
             dynamics=dict(ensemble=2, hidden=16, layers=1, max_epochs=3, patience=3))
VS_FLOAT32_RTOL = 0.02   # every checkpoint's mean losses, a bfloat16 run against its float32 twin
BATCHED_RTOL, GREEDY_AGREE = 0.05, 0.95   # a bfloat16 group against its bfloat16 single runs


@pytest.fixture(scope="module")
def data():
    df = make_states(300, seed=4)
    return df, transitions(df, "train"), transitions(df, "val")


def _ck(path, run_id):
    return torch.load(path / "runs" / run_id / "checkpoints.pt", weights_only=True)


def _losses(rec):
    return {k: v for k, v in rec["history"].items() if k.startswith("loss/")}


@pytest.mark.parametrize("algorithm,mixer,augment", [("bcq", None, None), ("factored_bcq", None, None),
                                                     ("adbcq", "linear", True)])
def test_bfloat16_is_deterministic_float32_stored_and_follows_float32(data, tmp_path, algorithm, mixer, augment):
    df, tr, va = data
    p16, p32 = TrainParams(**SMALL, precision="bfloat16"), TrainParams(**SMALL)
    specs = [RunSpec(algorithm, tau, seed, mixer, augment) for tau, seed in [(0.3, 0), (0.0, 1), (0.9, 0)]]
    dyn = {s: fit_dynamics(tr, va, dynamics_config(p32), s, progress=False)[0] for s in (0, 1)} if augment else {}
    a = train_group(specs, tr, p16, tmp_path / "a", dyn)
    b = train_group(specs, tr, p16, tmp_path / "b", dyn)
    z = states_of(df, "val")
    for spec, rec_a, rec_b in zip(specs, a, b):
        ck_a, ck_b = _ck(tmp_path / "a", spec.run_id), _ck(tmp_path / "b", spec.run_id)
        assert all(v.dtype == torch.float32 and torch.equal(v, ck_b["params"][k]) for k, v in ck_a["params"].items())
        assert rec_a["history"] == rec_b["history"]
        # the single bfloat16 run follows its float32 twin, checkpoint by checkpoint
        one = train_run(spec, tr, p16, tmp_path / "s16", dyn.get(spec.seed), f"seed{spec.seed}", progress=False)
        f32 = train_run(spec, tr, p32, tmp_path / "s32", dyn.get(spec.seed), f"seed{spec.seed}", progress=False)
        for key, vals in _losses(f32).items():
            np.testing.assert_allclose(one["history"][key], vals, rtol=VS_FLOAT32_RTOL, err_msg=f"{spec.run_id} {key}")
        # bfloat16 really ran: not float32's parameters
        ck_32 = _ck(tmp_path / "s32", spec.run_id)
        assert any(not torch.equal(v, ck_32["params"][k]) for k, v in _ck(tmp_path / "s16", spec.run_id)["params"].items())
        # the batched group follows the single runs, within bfloat16's wider tolerance
        for key, vals in _losses(one).items():
            np.testing.assert_allclose(rec_a["history"][key], vals, rtol=BATCHED_RTOL, err_msg=f"{spec.run_id} {key}")
        _, g_b = greedy_matrix(tmp_path / "a" / "runs" / spec.run_id, z)
        _, g_s = greedy_matrix(tmp_path / "s16" / "runs" / spec.run_id, z)
        assert (g_b == g_s).mean() >= GREEDY_AGREE, spec.run_id


def test_model_batch_is_drawn_in_float32_under_bfloat16(data):
    """AD-BCQ's synthetic rows come from the dynamics ensemble with autocast off: the same draws as in float32."""
    df, tr, va = data
    p = TrainParams(**SMALL)
    dyn = fit_dynamics(tr, va, dynamics_config(p), 0, progress=False)[0]
    batch = [torch.from_numpy(getattr(tr, k)[:50]) for k in T.TR_KEYS]
    out = []
    for mixed in (False, True):
        lrn = make_learner(RunSpec("adbcq", 0.3, 0, "linear", True), tr, p, dyn)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mixed):
            out.append(lrn.extra(*batch))
    assert len(out[0]) == 4 and all(x.dtype == y.dtype and torch.equal(x, y) for x, y in zip(*out))
    assert out[1][0].dtype == torch.float32


def test_batched_bfloat16_casts_each_weight_once_per_update(data):
    """A batched group under bfloat16 casts each stacked weight once per update (online, target, imitation), not once
    per use, and its layers stay in bfloat16 from input to output (no float32 activation cast again between layers)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from adrl.rl.batched import BatchedLearners
    _, tr, _ = data
    p = TrainParams(**SMALL, precision="bfloat16")
    group = BatchedLearners([make_learner(RunSpec("bcq", tau, s), tr, p) for tau, s in [(0.3, 0), (0.9, 0), (0.3, 1)]])
    batch = [torch.from_numpy(getattr(tr, k)[:50]).expand(3, *getattr(tr, k)[:50].shape).contiguous()
             for k in T.TR_KEYS]
    hidden = (3, 32, 32)   # the stacked (R, in, out) hidden weight of the Q network and of its target; (2, 32, 32):
    # that of the 2 imitation networks (one per seed)
    casts = []

    class Casts(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func is torch.ops.aten._to_copy.default and isinstance(args[0], torch.Tensor):
                casts.append((tuple(args[0].shape), args[0].dtype, (kwargs or {}).get("dtype")))
            return func(*args, **(kwargs or {}))
    with torch.autocast("cpu", dtype=torch.bfloat16), Casts():
        group.update(*batch)
    to16 = [c for c in casts if c[2] == torch.bfloat16]
    assert sum(c[0] == hidden for c in to16) == 2 and sum(c[0] == (2, 32, 32) for c in to16) == 1
    assert not any(len(c[0]) == 3 and c[0][1:] == (50, 32) for c in to16), "an activation cast again"


def test_switching_precision_retrains(data):
    spec = RunSpec("bcq", 0.3, 0)
    h32 = T.run_hash(spec, TrainParams(**SMALL), 8, "data")
    h16 = T.run_hash(spec, TrainParams(**SMALL, precision="bfloat16"), 8, "data")
    assert h32 != h16 and h32 == T.run_hash(spec, TrainParams(**SMALL, precision="float32"), 8, "data")


def test_unknown_precision_names_the_key():
    with pytest.raises(ValueError, match="precision"):
        TrainParams(precision="float16")
