"""Ground-truth roll-outs: several learned policies rolled out together give exactly what each gives alone through
the old path (the batch featuriser at every decision); errors name the policy."""
import logging

import numpy as np
import pytest

from adrl import groundtruth as gt
from adrl.errors import InputError
from adrl.synth.params import SynthParams
from benchmarks.bench_rollout import linear_policy, reference_setup

N, SEED = 30, 7


@pytest.fixture(scope="module")
def setup():
    import torch

    torch.set_num_threads(1)
    return reference_setup(n_fit=40, latent=4, hidden=8)


@pytest.fixture(scope="module")
def policies():
    # a state-dependent policy and two fixed ones (most fluid, no pressor; no fluid, most pressor)
    return {"linear": linear_policy(4, 0), "fluids": lambda z: np.full(len(z), 20),
            "pressors": lambda z: np.full(len(z), 4)}


@pytest.fixture(scope="module")
def together(setup, policies):
    return gt.true_values({**policies, "clinician": "clinician"}, N, SEED, SynthParams(), *setup, progress=False)


def test_together_equals_each_alone_through_the_old_path(setup, policies, together):
    for name, pol in policies.items():
        alone = gt.true_value_reference(pol, N, SEED, SynthParams(), *setup, progress=False)
        assert together[name] == alone, name  # value, se, n, seed, decisions, dose_recovery
    assert together["clinician"] == gt.true_value("clinician", N, SEED, SynthParams())
    # the policies really differ (other doses, so other patients' courses), so the equality is not that of one
    # trajectory
    assert len({tuple(together[k].values()) for k in policies}) == len(policies)
    assert together["fluids"]["value"] != together["pressors"]["value"]
    assert all(0.8 < together[k]["dose_recovery"] <= 1 for k in policies)


def test_several_passes_and_the_single_policy_api(setup, policies, together, monkeypatch, caplog):
    monkeypatch.setattr(gt, "MAX_STAYS_PER_PASS", 2 * N)  # two policies per pass
    monkeypatch.setattr(gt, "LOG_EVERY_S", 0.0)
    with caplog.at_level(logging.INFO, logger="adrl.groundtruth"):
        again = gt.true_values(dict(reversed(list(policies.items()))), N, SEED, SynthParams(), *setup)
    assert list(again) == list(reversed(list(policies)))
    assert all(again[k] == together[k] for k in policies)
    assert gt.true_value(policies["fluids"], N, SEED, SynthParams(), *setup, progress=False) == together["fluids"]
    progress = [r.getMessage() for r in caplog.records if "patients done" in r.getMessage()]
    assert progress and "policies 1-2 of 3" in progress[0] and "bin 2/18" in progress[0]


def test_bad_policies_are_named(setup):
    with pytest.raises(InputError, match="'bad'.*outside 0..24"):
        gt.true_values({"bad": lambda z: np.full(len(z), 30)}, 20, SEED, SynthParams(), *setup, progress=False)
    with pytest.raises(InputError, match="unknown policy 'random'"):
        gt.true_values({"x": "random"}, 20, SEED, SynthParams())
    with pytest.raises(InputError, match="featuriser, the AIS encoder and action edges"):
        gt.true_value(lambda z: np.zeros(len(z), int), 20, SEED, SynthParams())


def test_roll_out_units_split_in_order_within_the_pass_limit(monkeypatch):
    names = [f"p{i}" for i in range(7)]
    assert gt.rollout_units([], 100) == []
    # one slot: the passes true_values makes (MAX_STAYS_PER_PASS stays each, even passes)
    monkeypatch.setattr(gt, "MAX_STAYS_PER_PASS", 300)
    assert gt.rollout_units(names, 100, 1) == [["p0", "p1", "p2"], ["p3", "p4", "p5"], ["p6"]]
    assert gt.rollout_units(names, 1000, 1) == [[n] for n in names]   # more patients than a pass: one each
    # more slots: more, smaller units, still in order and covering every policy once
    monkeypatch.setattr(gt, "MAX_STAYS_PER_PASS", 8000)
    for slots in (1, 2, 3, 7, 50):
        units = gt.rollout_units(names, 100, slots)
        assert [n for u in units for n in u] == names
        assert len(units) == min(slots, len(names))


def test_units_on_an_executor_give_the_numbers_of_one_call(setup, policies, together):
    """The learned policies split over a pool of two processes (units of two policies and of one, the clinician a
    unit of its own): every number equals the single in-process call's (common random numbers)."""
    import multiprocessing as mp

    from adrl.executor import ExecutorParams, make_executor

    pols = {"linear": policies["linear"], "linear2": linear_policy(4, 1), "linear3": linear_policy(4, 2)}
    with make_executor(ExecutorParams(), 2, mp_context=mp.get_context("spawn")) as ex:
        r = gt.Rollouts(SynthParams(), setup, ex)
        got = r.true_values({"clinician": "clinician", **pols}, N, SEED)
        where = r.where()
    assert list(got) == ["clinician", *pols]
    assert got["linear"] == together["linear"] and got["clinician"] == together["clinician"]
    alone = gt.true_values(pols, N, SEED, SynthParams(), *setup, progress=False)
    assert all(got[k] == alone[k] for k in pols)
    assert where.startswith("local executor, 3 unit(s) on 1 host(s)"), where
    # in this process: the same numbers, the units counted
    r = gt.Rollouts(SynthParams(), setup)
    assert r.true_values({"clinician": "clinician", **pols}, N, SEED) == got
    assert r.where() == "2 unit(s) in this process"
    with pytest.raises(InputError, match="featuriser, the AIS encoder and action edges"):
        gt.Rollouts(SynthParams()).true_values(pols, N, SEED)
