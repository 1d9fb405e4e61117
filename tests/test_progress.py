"""Progress off a terminal: an INFO line every $ADRL_PROGRESS_SECONDS seconds saying what is done and how fast
(the AIS epochs and losses, training runs done / total and steps/s, OPE candidates scored, roll-out steps)."""
from __future__ import annotations

import logging

import pytest

from adrl.progress import Progress


@pytest.fixture
def every_update(monkeypatch):
    """Off a terminal (pytest captures stderr) and a line at every update."""
    monkeypatch.setenv("ADRL_PROGRESS_SECONDS", "0")


def _lines(caplog, name):
    return [r.getMessage() for r in caplog.records if r.name == name and r.levelno == logging.INFO]


def test_log_lines_say_done_total_rate_and_postfix(every_update, caplog):
    caplog.set_level(logging.INFO, "adrl.t")
    bar = Progress(total=4, desc="train", unit="runs", logger="adrl.t", work=2000, work_unit="steps")
    for _ in range(3):
        bar.set_postfix(val_nll="0.1234")
        bar.update()
    bar.close()
    lines = _lines(caplog, "adrl.t")
    assert len(lines) == 3  # one per update; no closing line repeating the last one
    assert lines[0].startswith("train: 1/4 runs (25%), ") and "steps/s" in lines[0]
    assert "val nll 0.1234" in lines[0] and "elapsed" in lines[0] and "left" in lines[0]
    assert lines[-1].startswith("train: 3/4 runs (75%)")


def test_a_break_counts_the_item_and_disabled_progress_is_silent(every_update, caplog):
    caplog.set_level(logging.INFO, "adrl.t")
    for i in Progress(range(10), desc="fit", unit="epochs", logger="adrl.t"):
        if i == 4:
            break
    assert _lines(caplog, "adrl.t")[-1].startswith("fit: 5/10 epochs (50%)")
    caplog.clear()
    for _ in Progress(range(10), desc="quiet", logger="adrl.t", enabled=False):
        pass
    assert _lines(caplog, "adrl.t") == []


def test_no_line_before_the_interval(monkeypatch, caplog):
    monkeypatch.setenv("ADRL_PROGRESS_SECONDS", "3600")
    caplog.set_level(logging.INFO, "adrl.t")
    for _ in Progress(range(100), desc="fast loop", logger="adrl.t"):
        pass
    assert _lines(caplog, "adrl.t") == []  # a loop faster than the interval stays quiet, no closing line either


def test_ais_fit_logs_epochs_and_losses(every_update, caplog):
    from adrl.ais.params import AisParams
    from adrl.ais.synthetic import fake_trajectories
    from adrl.ais.train import fit_encoder

    caplog.set_level(logging.INFO, "adrl.ais")
    p = AisParams(latent_dim=4, hidden=8, lr=1e-2, batch_size=64, max_epochs=3, patience=5, seed=0, threads=1)
    fit_encoder(fake_trajectories(n_stays=60, max_len=6, seed=1), p)
    lines = [m for m in _lines(caplog, "adrl.ais") if m.startswith("encode: AIS")]
    assert lines[0].startswith("encode: AIS: 1/3 epochs")
    assert "train nll" in lines[0] and "val nll" in lines[0] and "best epoch 1" in lines[0]


def test_training_sweep_logs_runs_done_and_steps_per_second(every_update, caplog, tmp_path):
    import torch

    from adrl.rl.params import TrainParams
    from adrl.rl.train import run_sweep
    from tests.rl.factored_mdp import make_states

    torch.set_num_threads(1)
    caplog.set_level(logging.INFO, "adrl.rl")
    p = TrainParams(algorithms=["bcq", "factored_bcq"], thresholds=[0.3], seeds=[0], steps=30, checkpoint_every=10,
                    hidden=16, workers=1)
    run_sweep(make_states(200, seed=0), p, tmp_path / "m")
    lines = [m for m in _lines(caplog, "adrl.rl") if m.startswith("train: ")]
    assert lines and all("runs done" in m and "steps/s" in m for m in lines), lines
    assert lines[-1].startswith("train: 2/2 runs done"), lines


def test_ope_logs_candidates_scored(every_update, caplog):
    import numpy as np
    import pandas as pd

    from adrl.ope import estimators as est
    from adrl.ope import workflow as wf

    caplog.set_level(logging.INFO, "adrl.ope")
    data = est.make_logged(np.repeat(np.arange(4), 3), np.zeros(12, np.int64), np.r_[[0, 0, 100] * 4],
                           np.full((12, 25), 1 / 25), np.full((12, 25), 1 / 25))
    runs = [{"run_id": f"r{i}", "algorithm": "bcq", "mixer": None, "augment": None, "tau": 0.3, "seed": 0,
             "run_dir": f"r{i}"} for i in range(2)]

    def greedy_fn(run_dir, z, only_steps=None):
        return np.array([10, 20, 30]), np.zeros((3, len(z)), dtype=np.int64)

    z = np.zeros((12, 2), np.float32)
    scores = wf.score_runs(data, runs, greedy_fn, z, epsilon=0.01, clip=1000.0)
    assert isinstance(scores, pd.DataFrame) and len(scores) == 6
    lines = [m for m in _lines(caplog, "adrl.ope") if m.startswith("evaluate: OPE")]
    assert lines[0].startswith("evaluate: OPE: 1/2 runs (50%)") and "candidates scored 3" in lines[0]
    assert "candidates scored 6" in lines[-1]
