"""The synthetic world: table layout, determinism, actions, mortality, separability, roll-outs, atomicity."""
import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adrl.config import validate_config
from adrl.errors import ConfigError
from adrl.synth import physiology as ph
from adrl.synth.params import SynthParams
from adrl.synth.rollout import RolloutWorld, rollout
from adrl.synth.world import World
from adrl.synth.writer import headers

TABLES = ["PATIENTS", "ADMISSIONS", "ICUSTAYS", "CHARTEVENTS", "LABEVENTS", "INPUTEVENTS_CV", "INPUTEVENTS_MV",
          "OUTPUTEVENTS", "PRESCRIPTIONS", "MICROBIOLOGYEVENTS", "PROCEDUREEVENTS_MV", "D_ITEMS", "D_LABITEMS"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("synth") / "raw"
    w = World(SynthParams(profile="tiny", n_stays=200, seed=3), progress=False)
    w.write(d)
    return w, d


def test_every_table_written_with_official_header(tiny):
    _, d = tiny
    for t in TABLES:
        with gzip.open(d / f"{t}.csv.gz", "rt") as f:
            head = f.readline().rstrip("\n")
        assert head == ",".join(f'"{c}"' for c in headers()[t]), t


def test_headers_and_formats_match_demo(tiny, demo_dir):
    _, d = tiny
    for t in TABLES:
        if t == "CHARTEVENTS":
            continue
        with gzip.open(demo_dir / f"{t}.csv.gz", "rt") as f:
            assert f.readline() == ",".join(f'"{c}"' for c in headers()[t]) + "\n", t
    with gzip.open(d / "LABEVENTS.csv.gz", "rt") as f:
        lines = [f.readline() for _ in range(2000)]
    body = "".join(lines[1:])
    import re
    assert re.search(r',\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,"', body)  # unquoted time, quoted string
    assert not re.search(r',0\.\d', body)                          # decimals without a leading zero
    assert re.search(r',\.\d', body)
    pd.read_csv(d / "CHARTEVENTS.csv.gz", nrows=1000)


def test_same_seed_same_bytes(tiny, tmp_path):
    w, d = tiny
    w2 = World(SynthParams(profile="tiny", n_stays=200, seed=3), progress=False)
    w2.write(tmp_path / "raw")
    for t in TABLES:
        a = hashlib.sha256((d / f"{t}.csv.gz").read_bytes()).hexdigest()
        b = hashlib.sha256((tmp_path / "raw" / f"{t}.csv.gz").read_bytes()).hexdigest()
        assert a == b, t


def test_actions_and_mortality(tiny):
    w, _ = tiny
    s = w.summary()
    assert min(s["action_counts"]) > 0 or sum(s["action_counts"]) < 6000
    assert s["no_vaso_fraction"] > 0.75
    assert 0.2 < s["septic_fraction"] < 0.5
    assert 0.03 < s["mortality_septic"] < 0.35


def test_all_25_actions_on_default_scale():
    w = World(SynthParams(profile="tiny", n_stays=1500, seed=0), progress=False)
    s = w.summary()
    assert min(s["action_counts"]) > 0, s["action_counts"]
    assert 0.8 < s["no_vaso_fraction"] < 0.99


def _effect(interaction):
    rng = np.random.default_rng(0)
    n = 64
    z = rng.normal(0, 0.7, (n, ph.NL))
    eps = rng.standard_normal((4, n, ph.NL))
    abx = np.full(n, 0.03)
    eff = []
    for vaso in (0.0, 0.1, 0.5):
        base = ph.transition(z, np.zeros(n), np.full(n, vaso), abx, eps, interaction)
        big = ph.transition(z, np.full(n, 2500.0), np.full(n, vaso), abx, eps, interaction)
        eff.append(big - base)
    return eff


def test_fluid_effect_separable_without_interaction():
    e = _effect(0.0)
    assert np.abs(e[0]).max() > 0.1
    assert np.allclose(e[0], e[1]) and np.allclose(e[0], e[2])


def test_fluid_effect_depends_on_vaso_with_interaction():
    e = _effect(1.0)
    assert np.abs(e[0] - e[2]).max() > 0.05


def test_rollout_deterministic_and_bad_policy_worse():
    a = rollout("clinician", 300, 7, progress=False)
    b = rollout("clinician", 300, 7, progress=False)
    assert np.array_equal(a["died"], b["died"])
    bad = rollout(lambda h, w: (np.full(w.n, 4000.0), np.full(w.n, 1.5)), 300, 7, progress=False)
    assert bad["survival"] < a["survival"]


def test_rollout_events_in_interim_schema():
    from adrl.mimic.schema import INTERIM

    w = RolloutWorld(20, 1)
    ev = w.reset()
    for t in ("chartevents", "labevents", "inputevents_mv", "outputevents"):
        assert list(ev[t].columns) == list(INTERIM[t])
    ev = w.step(np.full(20, 600.0), np.full(20, 0.2))
    assert len(ev["chartevents"]) > 0


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    from adrl.synth import tables

    w = World(SynthParams(profile="tiny", n_stays=40, seed=1), progress=False)
    calls = {"n": 0}
    real = tables.write_table

    def boom(path, table, cols, n):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(path, table, cols, n)

    monkeypatch.setattr(tables, "write_table", boom)
    with pytest.raises(KeyboardInterrupt):
        w.write(tmp_path / "raw")
    assert not (tmp_path / "raw").exists()
    assert list(tmp_path.iterdir()) == []


def test_bad_parameter_names_key():
    with pytest.raises(ConfigError, match="synth.n_stays"):
        validate_config({"synth": {"n_stays": 5}})
