import pytest
import torch

from adrl.ais.params import AisParams
from adrl.ais.synthetic import fake_trajectories

torch.set_num_threads(1)

# small and fast: the method's sizes are exercised by benchmarks/bench_ais.py
FAST = dict(latent_dim=8, hidden=32, lr=1e-2, batch_size=32, max_epochs=40, patience=8, seed=0, threads=1)


@pytest.fixture(scope="session")
def small_cohort():
    return fake_trajectories(n_stays=240, max_len=10, seed=7)


@pytest.fixture(scope="session")
def fast_params():
    return AisParams(**FAST)


@pytest.fixture(scope="session")
def fitted(small_cohort, fast_params):
    from adrl.ais.train import fit_encoder

    return fit_encoder(small_cohort, fast_params, progress=False)
