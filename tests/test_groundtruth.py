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
