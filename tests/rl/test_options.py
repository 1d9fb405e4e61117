"""AD-BCQ's configurable options (method.md 4.1-4.3): heads, state_cond, relu_monotone, mlp2_activation,
bc_filter and tau_per_head. Each trains, saves and reloads; the filters are checked on hand-set logits."""
import json
from dataclasses import asdict

import numpy as np
import pytest
import torch

from adrl.config import validate_config
from adrl.errors import ConfigError
from adrl.rl.adbcq import ADBCQConfig, ADBCQNet
from adrl.rl.data import transitions
from adrl.rl.dynamics import fit_dynamics
from adrl.rl.factored_bcq import FactoredBCQConfig, FactoredBCQNet
from adrl.rl.nets import Mixer, joint_mask, joint_q_pairs, masked_argmax
from adrl.rl.params import TrainParams
from adrl.rl.policy import Policy, greedy_matrix
from adrl.rl.train import (RunSpec, algo_config, value_bounds, dynamics_config, expand_sweep, fit_loop, lr_factor,
                            make_learner, train_run)
from tests.rl.factored_mdp import D, make_states

SMALL = dict(hidden=32, steps=40, checkpoint_every=20, batch_size=50, workers=1,
             dynamics=dict(ensemble=2, hidden=32, layers=2, max_epochs=3, patience=3))


@pytest.fixture(scope="module")
def data():
    torch.set_num_threads(1)
    df = make_states(200, seed=4)
    tr, va = transitions(df, "train"), transitions(df, "val")
    dyn, _, _ = fit_dynamics(tr, va, dynamics_config(TrainParams(**SMALL)), 0, progress=False)
    return tr, dyn


OPTIONS = [  # (algorithm, mixer, augment, TrainParams options, a state_dict key only this option has)
    ("adbcq", "linear", True, {"heads": "separate"}, "heads_net.nets.1.4.weight"),
    ("adbcq", "linear", True, {"state_cond": "hyper"}, "mixer.hyper.2.bias"),
    ("adbcq", "mean", False, {"state_cond": "bias"}, "mixer.bias.2.bias"),
    ("adbcq", "relu", False, {"state_cond": "none", "relu_monotone": True}, None),
    ("adbcq", "mlp2", False, {"mlp2_activation": "tanh"}, None),
    ("adbcq", "linear", True, {"bc_filter": "joint"}, None),
    ("adbcq", "relu", True, {"tau_per_head": [0.2, 0.6]}, None),
    ("factored_bcq", None, None, {"tau_per_head": [0.2, 0.6]}, None),
    # the model batch B_k (method.md 4.5) and E3's controls: train.dynamics keys, recorded in AD-BCQ's config
    ("adbcq", "linear", True, {"dynamics": {"termination": "sample"}}, None),
    ("adbcq", "linear", True, {"dynamics": {"termination": "logged"}}, None),
    ("adbcq", "linear", True, {"dynamics": {"next_state": "mean"}}, None),
    ("adbcq", "linear", True, {"dynamics": {"control": "shuffle"}}, None),
    ("adbcq", "linear", True, {"dynamics": {"control": "noise", "noise_scale": 0.5}}, None),
    ("adbcq", "linear", True, {"dynamics": {"survival_input": "action"}}, None),
]
MODEL_FIT_OPTS = ("survival_input",)   # train.dynamics keys of the model's fit (the others shape B_k)


def _opt_id(o):
    opts = o[3].get("dynamics", o[3])
    return f"{o[0]}-{o[1]}-" + "-".join(f"{k}={v}" if "dynamics" in o[3] else k for k, v in opts.items())


@pytest.mark.parametrize("algorithm, mixer, augment, opts, key", OPTIONS,
                         ids=[_opt_id(o) for o in OPTIONS])
def test_option_trains_saves_and_reloads(algorithm, mixer, augment, opts, key, data, tmp_path):
    tr, dyn = data
    dyn_opts = opts.get("dynamics", {})
    opts = {k: v for k, v in opts.items() if k != "dynamics"}
    p = TrainParams(**{**SMALL, "dynamics": {**SMALL["dynamics"], **dyn_opts}}, **opts, algorithms=[algorithm],
                    mixers=[mixer or "linear"])
    if any(k in MODEL_FIT_OPTS for k in dyn_opts):   # a model fitted with this option
        dyn = fit_dynamics(tr, transitions(make_states(200, seed=4), "val"), dynamics_config(p), 0, progress=False)[0]
    spec = RunSpec(algorithm, 0.3, 0, mixer, augment,
                   tuple(opts["tau_per_head"]) if "tau_per_head" in opts else None)
    rec = train_run(spec, tr, p, tmp_path, dyn if spec.needs_dynamics else None, "seed0", progress=False)
    assert rec["run_id"] == spec.run_id and all(np.isfinite(v) for v in rec["final"].values())
    # run.json records every option; Policy.load rebuilds the same config and network
    saved = json.loads((tmp_path / "runs" / spec.run_id / "run.json").read_text())["config"]
    cfg = algo_config(spec, p, value_bounds(tr, p.gamma))
    for k, v in opts.items():
        assert saved[k] == v
    for k, v in dyn_opts.items():   # B_k's keys in the learner's config; the fit's key in the model's
        assert (dyn.surv is None) == (v == "action") if k in MODEL_FIT_OPTS else saved[k] == v
    pol = Policy.load(tmp_path / "runs" / spec.run_id)
    assert type(cfg)(**saved) == cfg
    if key is not None:
        assert key in pol.net.state_dict()
    # the same seed retrained in memory gives the reloaded policy's greedy actions
    learner = make_learner(spec, tr, p, dyn if spec.needs_dynamics else None)
    fit_loop(learner, tr, p.steps, p.batch_size, p.checkpoint_every, spec.seed, progress=False,
             lr_schedule=p.lr_schedule)
    z = np.random.default_rng(0).random((64, D)).astype(np.float32)
    np.testing.assert_array_equal(pol.greedy(z), Policy(learner.net).greedy(z))
    np.testing.assert_allclose(pol.q_values(z), Policy(learner.net).q_values(z), rtol=1e-6, atol=1e-5)
    assert pol.allowed_mask(z)[np.arange(len(z)), pol.greedy(z)].all()
    steps, acts = greedy_matrix(tmp_path / "runs" / spec.run_id, z)
    assert steps.tolist() == [20, 40]
    np.testing.assert_array_equal(acts[-1], pol.greedy(z))


def test_separate_heads_are_independent_networks():
    net = ADBCQNet(D, ADBCQConfig(hidden=16, heads="separate"))
    z = torch.randn(4, D, requires_grad=True)
    q = net.heads(z)
    assert q.shape == (4, 2, 5)
    q[:, 0].sum().backward()                      # Q_F's gradient never reaches Q_V's network
    assert all(p.grad is None or not p.grad.any() for p in net.heads_net.nets[1].parameters())
    assert all(p.grad.abs().sum() > 0 for p in net.heads_net.nets[0].parameters())
    # z -> 2 x (d -> h -> h -> 5), against the shared trunk's d -> h -> h -> 10
    assert [m.out_features for m in net.heads_net.nets[0] if isinstance(m, torch.nn.Linear)] == [16, 16, 5]


def _q_grid(n, seed):
    g = torch.Generator().manual_seed(seed)
    return 100 * torch.rand(n, 2, 5, generator=g)


def test_monotone_relu_mixer_is_monotone_and_argmax_factorises():
    torch.manual_seed(0)
    mono = Mixer("relu", D, monotone=True, state_bias=True)
    plain = Mixer("relu", D)
    plain.load_state_dict({k: v for k, v in mono.state_dict().items() if not k.startswith("bias")})
    z = torch.randn(500, D)
    q = torch.empty(500, 2).uniform_(-100, 100)
    with torch.no_grad():
        for k in range(2):
            step = torch.zeros(2)
            step[k] = 7.0
            assert ((mono(q + step, z) - mono(q, z)) >= -1e-4).all()
        # without |W|, |v| the same parameters give a mixer that decreases somewhere (the test can fail)
        assert ((plain(q + torch.tensor([7.0, 0.0]), z) - plain(q, z)) < -1e-3).any() or \
            ((plain(q + torch.tensor([0.0, 7.0]), z) - plain(q, z)) < -1e-3).any()
        # joint argmax over M = A_F x A_V equals the pair of per-head argmaxes
        q2 = _q_grid(500, 1)
        m2 = torch.rand(500, 2, 5, generator=torch.Generator().manual_seed(2)) > 0.4
        m2[:, :, 0] |= ~m2.any(-1)                 # no empty head set
        joint = masked_argmax(mono(joint_q_pairs(q2), z[:500]), joint_mask(m2))
        per_head = masked_argmax(q2[:, 0], m2[:, 0]) * 5 + masked_argmax(q2[:, 1], m2[:, 1])
        assert torch.equal(joint, per_head)


def test_mlp2_tanh_is_not_affine():
    torch.manual_seed(0)
    mx = Mixer("mlp2", D, activation="tanh")
    z, q = torch.randn(3, D), torch.tensor([[0.0, 0.0], [100.0, 0.0], [200.0, 0.0]])
    with torch.no_grad():
        f = mx(q, z)
    assert mx.weights() is None
    assert abs(float((f[2] - f[1]) - (f[1] - f[0]))) > 1e-3      # a deep linear mixer would give 0


def test_hyper_weights_start_at_one_over_k_and_are_per_state():
    torch.manual_seed(0)
    mx = Mixer("linear", D, hyper=True, state_bias=True)
    z = torch.randn(6, D)
    q = _q_grid(6, 3)
    pairs = joint_q_pairs(q)                                          # (N, 25, K)
    with torch.no_grad():
        torch.testing.assert_close(mx.state_weights(z), torch.full((6, 2), 0.5))
        torch.testing.assert_close(mx(pairs, z), pairs.mean(-1))      # w = 1/K, c = 0, b = 0 at start
        for prm in mx.parameters():
            prm.add_(0.3 * torch.randn_like(prm))
        w, b = mx.state_weights(z), mx.state_bias_values(z)
        assert (w.std(0) > 1e-3).all()                                # the weights now depend on the state
        want = (w[:, None, :] * pairs).sum(-1) + mx.c
        torch.testing.assert_close(mx(pairs, z, with_bias=False), want)   # w(z) stays without b(z)
        torch.testing.assert_close(mx(pairs, z), want + b[:, None])
        torch.testing.assert_close(mx(pairs[:, 7], z), want[:, 7] + b)    # (N, K) rows broadcast alike


@pytest.mark.parametrize("mixer", ["mean", "sum", "mlp2", "relu"])
def test_hyper_rejects_other_mixers(mixer):
    with pytest.raises(ConfigError, match=r"train\.state_cond.*linear"):
        validate_config({"train": {"state_cond": "hyper", "mixers": ["linear", mixer]}})
    with pytest.raises(ConfigError, match=r"train\.state_cond.*linear"):
        ADBCQConfig(mixer=mixer, state_cond="hyper")
    validate_config({"train": {"state_cond": "hyper", "mixers": [mixer], "algorithms": ["bcq"]}})  # no adbcq


def test_state_cond_resolution_and_conflicts():
    assert ADBCQConfig(mixer="linear").cond == "bias" and ADBCQConfig(mixer="sum").cond == "none"
    assert ADBCQConfig(mixer="sum", state_bias=True).cond == "bias"
    assert ADBCQConfig(mixer="linear", state_cond="none").use_bias is False
    assert ADBCQConfig(mixer="linear", state_cond="hyper").use_bias is True
    with pytest.raises(ConfigError, match=r"train\.state_cond: none contradicts train\.state_bias: on"):
        validate_config({"train": {"state_cond": "none", "state_bias": "on"}})
    with pytest.raises(ConfigError, match="train.state_cond"):
        ADBCQConfig(state_cond="hyper", state_bias=False)
    with pytest.raises(ConfigError, match="train.heads"):
        ADBCQConfig(heads="shard")


def _set_imit_logits(net, logits):
    """Constant imitation logits: zero last-layer weights, the bias carries the logits."""
    with torch.no_grad():
        net.imit[-1].weight.zero_()
        net.imit[-1].bias.copy_(torch.as_tensor(logits, dtype=torch.float32))


def _joint_logits(ratios: dict[tuple[int, int], float]):
    lg = np.full(25, np.log(1e-4))
    for (af, av), r in ratios.items():
        lg[5 * af + av] = np.log(r)
    return lg


@pytest.mark.parametrize("ratios, slice_f, slice_v", [
    # interventional slices: (a_F, no-op) and (no-op, a_V) in M; (4, 4) sits at the threshold, excluded
    ({(2, 0): 1.0, (3, 0): 0.5, (0, 1): 0.8, (1, 4): 0.31, (4, 4): 0.3, (4, 3): 0.29}, {2, 3}, {1}),
    # no (a_F, no-op) and no (no-op, a_V) in M: both heads fall back to the marginal slices
    ({(1, 2): 1.0, (3, 4): 0.9, (4, 1): 0.2}, {1, 3}, {2, 4}),
    # mixed: fluid has an interventional slice, vaso falls back
    ({(2, 0): 1.0, (1, 3): 0.9}, {2}, {0, 3}),
])
def test_joint_filter_on_hand_set_logits(ratios, slice_f, slice_v):
    tau = 0.3
    torch.manual_seed(0)
    net = ADBCQNet(D, ADBCQConfig(tau=tau, hidden=16, bc_filter="joint"))
    assert net.imit[-1].out_features == 25
    _set_imit_logits(net, _joint_logits(ratios))
    z = torch.randn(200, D)
    with torch.no_grad():
        sub, m25 = net.masks(z)
        q, allowed = net(z)
    want = {5 * af + av for (af, av), r in ratios.items() if r > tau + 1e-6}
    assert all(set(np.flatnonzero(row).tolist()) == want for row in m25.numpy())
    assert torch.equal(allowed, m25)
    assert all(set(np.flatnonzero(row).tolist()) == slice_f for row in sub[:, 0].numpy())
    assert all(set(np.flatnonzero(row).tolist()) == slice_v for row in sub[:, 1].numpy())
    # the greedy action lies in M, never where pi(a|z)/max pi <= tau
    g = masked_argmax(q, allowed).numpy()
    pi = torch.softmax(net.imit(z), -1).detach().numpy()
    assert (pi[np.arange(len(g)), g] / pi.max(1) > tau).all()
    assert set(g.tolist()) <= want


def test_joint_filter_loss_is_the_25_way_nll():
    torch.manual_seed(0)
    net = ADBCQNet(D, ADBCQConfig(hidden=16, bc_filter="joint", logit_penalty=0.0))
    _set_imit_logits(net, np.log(np.arange(1, 26) / 325.0))
    a = torch.tensor([0, 7, 24])
    with torch.no_grad():
        loss = net.imitation_loss(torch.randn(3, D), a, 0.0)
    assert abs(loss.item() - float(-np.log(np.array([1, 8, 25]) / 325.0).mean())) < 1e-5


@pytest.mark.parametrize("net_cls, cfg_cls", [(FactoredBCQNet, FactoredBCQConfig), (ADBCQNet, ADBCQConfig)])
def test_per_head_thresholds_on_hand_set_logits(net_cls, cfg_cls):
    ratios = np.array([1.0, 0.5, 0.25, 0.1, 0.7])                   # pi / max pi, per head
    logits = np.concatenate([np.log(ratios), np.log(ratios)])        # fluid, then vaso
    z = torch.randn(5, D)
    masks = {}
    for name, kw in (("per_head", {"tau_per_head": (0.2, 0.6)}), ("shared", {})):
        torch.manual_seed(0)
        net = net_cls(D, cfg_cls(tau=0.2, hidden=16, **kw))
        _set_imit_logits(net, logits)
        with torch.no_grad():
            masks[name] = net(z)[1]
    allowed_f, allowed_v = {0, 1, 2, 4}, {0, 4}                       # tau_F = 0.2, tau_V = 0.6
    want = {5 * f + v for f in allowed_f for v in allowed_v}
    assert all(set(np.flatnonzero(row).tolist()) == want for row in masks["per_head"].numpy())
    shared = {5 * f + v for f in allowed_f for v in allowed_f}       # tau = 0.2 for both heads
    assert all(set(np.flatnonzero(row).tolist()) == shared for row in masks["shared"].numpy())


@pytest.mark.parametrize("raw, needle", [
    ({"tau_per_head": [0.2, 1.0]}, "train.tau_per_head"),
    ({"tau_per_head": [-0.1, 0.3]}, "train.tau_per_head"),
    ({"tau_per_head": [0.1]}, "train.tau_per_head"),
    ({"tau_per_head": [0.1, 0.2], "bc_filter": "joint"}, "train.tau_per_head"),
    ({"mlp2_activation": "relu"}, "train.mlp2_activation"),
    ({"bc_filter": "both"}, "train.bc_filter"),
    ({"lr_schedule": "step"}, "train.lr_schedule"),
])
def test_bad_option_values_name_the_key(raw, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        validate_config({"train": raw})


def test_tau_per_head_is_recorded_and_validated_in_the_configs():
    p = TrainParams(tau_per_head=[0.1, 0.4], thresholds=[0.3, 0.5], seeds=[0, 1])
    specs = expand_sweep(p)
    # bcq keeps the thresholds sweep; the factored filters run once per variant and seed with (tau_F, tau_V)
    assert [s.run_id for s in specs] == ["bcq-tau0.3-s0", "bcq-tau0.3-s1", "bcq-tau0.5-s0", "bcq-tau0.5-s1",
                                         "factored_bcq-tauF0.1V0.4-s0", "factored_bcq-tauF0.1V0.4-s1",
                                         "adbcq-linear-aug-tauF0.1V0.4-s0", "adbcq-linear-aug-tauF0.1V0.4-s1"]
    for spec in specs[4:]:
        cfg = algo_config(spec, p)
        assert cfg.tau_per_head == (0.1, 0.4)
        assert json.loads(json.dumps(asdict(cfg)))["tau_per_head"] == [0.1, 0.4]
    assert not hasattr(algo_config(specs[0], p), "tau_per_head")
    with pytest.raises(ConfigError, match="train.tau_per_head"):
        FactoredBCQConfig(tau_per_head=(0.1, 1.2))


def test_lr_schedules_on_hand_checked_steps():
    """constant 1; linear 1 - (step - 1) / steps; cosine 0.5 (1 + cos(pi (step - 1) / steps)): both start at 1,
    cross at the middle and end at 1/steps (linear) or about (pi / steps)^2 / 4 (cosine)."""
    assert [lr_factor("constant", s, 4) for s in (1, 4)] == [1.0, 1.0]
    assert [lr_factor("linear", s, 4) for s in (1, 2, 3, 4)] == [1.0, 0.75, 0.5, 0.25]
    np.testing.assert_allclose([lr_factor("cosine", s, 4) for s in (1, 2, 3, 4)],
                               [1.0, 0.5 + 0.5 * np.cos(np.pi / 4), 0.5, 0.5 - 0.5 * np.cos(np.pi / 4)])
    assert lr_factor("cosine", 10_000, 10_000) < lr_factor("linear", 10_000, 10_000)
    with pytest.raises(ConfigError, match=r"train\.lr_schedule"):
        lr_factor("step", 1, 4)
