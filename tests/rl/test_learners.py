"""Every algorithm on a small factored MDP with a known optimal policy; filters; the sum reduction."""
import numpy as np
import pytest
import torch

from adrl.rl.data import transitions
from adrl.rl.nets import Mixer, masked_argmax, ratio_mask
from adrl.rl.params import TrainParams
from adrl.rl.policy import Policy, greedy_matrix, list_runs
from adrl.rl.train import RunSpec, fit_loop, make_learner, run_sweep
from tests.rl.factored_mdp import encode, make_states, optimal_action

FAST = dict(hidden=64, lr=2e-3, steps=1500, checkpoint_every=500, workers=1,
            dynamics=dict(ensemble=3, hidden=64, max_epochs=150, patience=15))


def supported_states():
    """The states the logged data visits often: s_F, s_V in 0..2 at t = 0 and t = 1."""
    f0, v0 = (a.ravel() for a in np.meshgrid(np.arange(3), np.arange(3)))
    f1, v1 = f0, v0
    z = np.concatenate([encode(f0, v0, 0), encode(f1, v1, 1)])
    return z, np.concatenate([optimal_action(f0, v0), optimal_action(f1, v1)])


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("train") / "models"
    p = TrainParams(algorithms=["bcq", "factored_bcq", "adbcq"], mixers=["linear"],
                    augment=[True, False], thresholds=[0.0], seeds=[0], **FAST)
    man = run_sweep(make_states(1000, seed=0), p, out, progress=False)
    return out, man


def test_every_algorithm_recovers_the_optimal_action(sweep):
    out, man = sweep
    z, best = supported_states()
    runs = list_runs(out)
    assert {r.run_id for r in runs} == {"bcq-tau0-s0", "factored_bcq-tau0-s0", "adbcq-linear-aug-tau0-s0",
                                        "adbcq-linear-noaug-tau0-s0"}
    for r in runs:
        g = Policy.load(r.run_dir).greedy(z)
        assert (g == best).all(), f"{r.run_id}: wrong greedy action in states {np.flatnonzero(g != best)}"


def test_greedy_matrix_matches_each_checkpoint(sweep):
    out, _ = sweep
    z, _ = supported_states()
    for r in list_runs(out):
        steps, acts = greedy_matrix(r.run_dir, z, row_chunk=7)
        assert steps.tolist() == [500, 1000, 1500] == r.steps
        assert acts.shape == (3, len(z)) and acts.dtype == np.int64
        for i, s in enumerate(steps):
            np.testing.assert_array_equal(acts[i], Policy.load(r.run_dir, step=int(s)).greedy(z))


def test_policy_api(sweep, tmp_path):
    out, man = sweep
    z, _ = supported_states()
    pol = Policy.load(out / "runs" / "adbcq-linear-aug-tau0-s0")
    q, m, g = pol.q_values(z), pol.allowed_mask(z), pol.greedy(z)
    assert q.shape == (len(z), 25) and m.shape == (len(z), 25) and m.dtype == bool
    assert g.dtype == np.int64 and (g == np.where(m, q, -np.inf).argmax(1)).all()
    beh = np.full((len(z), 25), 1 / 25)
    p = pol.action_probs(z, beh, epsilon=0.01)
    np.testing.assert_allclose(p.sum(1), 1.0)
    np.testing.assert_allclose(p[np.arange(len(z)), g], 0.99 + 0.01 / 25)
    assert (pol.action_probs(z)[np.arange(len(z)), g] == 1).all()
    with pytest.raises(Exception, match="behaviour_probs"):
        pol.action_probs(z, epsilon=0.1)
    with pytest.raises(Exception, match="d=13"):
        pol.greedy(np.zeros((2, 5), np.float32))
    with pytest.raises(Exception, match="no checkpoint at step 7"):
        Policy.load(out / "runs" / "bcq-tau0-s0", step=7)
    exported = Policy.load(pol.save(tmp_path / "exported"))          # one checkpoint, e.g. the selected one
    np.testing.assert_array_equal(exported.greedy(z), g)
    assert exported.step == pol.step == 1500
    rec = man["runs"][0]
    assert rec["steps_per_s"] > 0 and "dynamics" in man and man["dynamics"]["seed0"]["report"]["epochs"] >= 1


def _no_fluid2_when_sf0(sf, sv, t, rng):
    """Uniform behaviour, except that fluid level 2 (optimal when s_F is even) is never given when s_F = 0."""
    af, av = rng.integers(0, 5, sf.size), rng.integers(0, 5, sf.size)
    hit = sf == 0
    af[hit] = rng.choice([0, 1, 3, 4], int(hit.sum()))
    return af, av


@pytest.fixture(scope="module")
def filtered(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("filter") / "models"
    p = TrainParams(algorithms=["bcq", "factored_bcq", "adbcq"], mixers=["relu"], augment=[False],
                    thresholds=[0.3], seeds=[1], **{**FAST, "steps": 600})
    run_sweep(make_states(800, seed=3, behaviour=_no_fluid2_when_sf0), p, out, progress=False)
    return out


@pytest.mark.parametrize("algorithm", ["bcq", "factored_bcq", "adbcq"])
def test_filter_never_selects_an_action_below_threshold(algorithm, filtered):
    tau = 0.3
    (run,) = [r for r in list_runs(filtered) if r.algorithm == algorithm]
    pol = Policy.load(run.run_dir)
    z, best = supported_states()
    g = pol.greedy(z)
    sf0 = z[:, 0] == 1
    assert (best[sf0] // 5 == 2).all() and not (g[sf0] // 5 == 2).any()   # the unlogged optimum is filtered out
    with torch.no_grad():
        logits = pol.net.imit(torch.from_numpy(z))
    if algorithm == "bcq":
        pi = torch.softmax(logits, -1).numpy()
        assert (pi[np.arange(len(z)), g] / pi.max(1) > tau).all()
    else:
        pi = torch.softmax(logits.view(-1, 2, 5), -1).numpy()
        for k, ak in ((0, g // 5), (1, g % 5)):
            assert (pi[np.arange(len(z)), k, ak] / pi[:, k].max(1) > tau).all()
    assert pol.allowed_mask(z)[np.arange(len(z)), g].all()


def test_masked_argmax_ties_to_lowest_index_and_never_picks_masked():
    q = torch.tensor([[1.0, 5.0, 5.0, 100.0], [2.0, 2.0, 2.0, 2.0]])
    m = torch.tensor([[True, True, True, False], [False, True, True, True]])
    assert masked_argmax(q, m).tolist() == [1, 1]
    logp = torch.log(torch.tensor([[0.5, 0.15, 0.35], [0.2, 0.2, 0.6]]))
    assert ratio_mask(logp, 0.3).tolist() == [[True, False, True], [True, True, True]]
    assert ratio_mask(logp, 0.5).tolist() == [[True, False, True], [False, False, True]]


def test_mixers_as_in_the_table():
    z = torch.randn(3, 13)
    q = torch.tensor([[10.0, 30.0], [50.0, 70.0], [0.0, 100.0]])
    assert torch.allclose(Mixer("mean", 13)(q, z), q.mean(1))
    assert torch.allclose(Mixer("sum", 13)(q, z), q.sum(1))
    lin = Mixer("linear", 13, state_bias=True)
    assert torch.allclose(lin.weights(), torch.full((2,), 0.5))
    assert torch.allclose(lin(q, z), q.mean(1), atol=1e-5)            # w = 1/K, c = 0, b(z) = 0 at init
    for kind, width in (("mlp2", 16), ("relu", 32)):
        mx = Mixer(kind, 13, r_max=100.0, state_bias=True)
        assert mx.W.weight.shape == (width, 2)
        joint = q[:, None, :].expand(3, 25, 2)                         # (N, 25, K) -> (N, 25)
        assert mx(joint, z).shape == (3, 25)
    mlp2 = Mixer("mlp2", 13)
    # deep linear: F(q) is affine in q with slope v^T W
    d = mlp2(q + torch.tensor([1.0, 0.0]), z) - mlp2(q, z)
    assert torch.allclose(d, mlp2.weights()[0].expand(3), atol=1e-4)


def test_sum_mixer_without_augmentation_is_factored_bcq():
    """method.md 4.8: same seed and init order -> the losses match to float tolerance."""
    df = make_states(300, seed=5)
    data = transitions(df, "train")
    p = TrainParams(**{**FAST, "dynamics": TrainParams().dynamics.model_dump()}, thresholds=[0.2])
    fb = make_learner(RunSpec("factored_bcq", 0.2, 7), data, p)
    ad = make_learner(RunSpec("adbcq", 0.2, 7, mixer="sum", augment=False), data, p)
    for a, b in zip(fb.net.parameters(), ad.net.parameters()):
        assert torch.equal(a, b)                                       # same initialisation
    _, s1, h1, _ = fit_loop(fb, data, 200, 100, 10, seed=7, progress=False)
    _, s2, h2, _ = fit_loop(ad, data, 200, 100, 10, seed=7, progress=False)
    np.testing.assert_allclose(h1["loss/q"], h2["loss/mix"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h1["loss/bc"], h2["loss/bc"], rtol=1e-5, atol=1e-6)
    for a, b in zip(s1[-1].values(), s2[-1].values()):
        torch.testing.assert_close(a, b)
    # and a different mixer does not match (the test can fail)
    lin = make_learner(RunSpec("adbcq", 0.2, 7, mixer="mean", augment=False), data, p)
    _, _, h3, _ = fit_loop(lin, data, 200, 100, 10, seed=7, progress=False)
    assert not np.allclose(h1["loss/q"], h3["loss/mix"], rtol=1e-3)
