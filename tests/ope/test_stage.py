"""The evaluate stage end to end on a tiny states table and fake training runs (the rl_api seam)."""
import json
import zlib

import numpy as np
import pandas as pd
import pytest

from adrl.config import validate_config
from adrl.errors import InputError
from adrl.ope import workflow as wf
from adrl.tracking import StageRun


def states_table(seed=0, n=(80, 50, 50), d=4):
    rng = np.random.default_rng(seed)
    rows, sid = [], 0
    for split, n_split in zip(("train", "val", "test"), n):
        for _ in range(n_split):
            sid += 1
            L = int(rng.integers(2, 7))
            acts = rng.choice([0, 1, 5, 6, 12], size=L, p=[0.4, 0.2, 0.2, 0.1, 0.1])
            survived = rng.random() < 0.8
            for t in range(L):
                last = t == L - 1
                dec = -1 if last else int(acts[t + 1])
                z = rng.normal(size=d)
                z[0] = (0 if last else dec) + 0.1 * rng.normal()
                rows.append({"subject_id": sid, "icustay_id": 1000 + sid, "traj": sid, "step": t, "split": split,
                             "decision_fluid": -1 if last else dec // 5, "decision_vaso": -1 if last else dec % 5,
                             "decision": dec, "reward": 100.0 * survived if t == L - 2 else 0.0,
                             "done": t == L - 2, "last": last, **{f"z_{i}": z[i] for i in range(d)}})
    return pd.DataFrame(rows)


class FakeRuns:
    """Runs whose checkpoints copy the clinician (round(z_0)) on a share of decisions growing with the step."""

    def __init__(self):
        self.runs = []
        for alg, mixer, aug in [("bcq", None, None), ("factored_bcq", None, None), ("adbcq", "linear", True),
                                ("adbcq", "mlp2", False)]:
            for seed in (0, 1):
                self.runs.append({"run_id": f"{alg}-{mixer}-{seed}", "algorithm": alg, "mixer": mixer,
                                  "augment": aug, "tau": 0.3, "seed": seed, "run_dir": f"runs/{alg}-{mixer}-{seed}"})
        self.calls = 0

    def greedy(self, run_dir, z, only_steps=None):
        self.calls += 1
        steps = np.arange(100, 1100, 100)
        rng = np.random.default_rng(zlib.crc32(run_dir.encode()))
        u = rng.random((1, len(z)))
        agree_p = 0.4 + 0.5 * steps[:, None] / steps.max()
        clin = np.clip(np.rint(z[:, 0]), 0, 24).astype(np.int64)
        a = np.where(u < agree_p, clin[None], (clin[None] + 7) % 25)
        keep = np.ones(len(steps), bool) if only_steps is None else np.isin(steps, np.asarray(only_steps))
        return steps[keep], a[keep]


@pytest.fixture
def stage(tmp_path, monkeypatch):
    import pipeline.evaluate as ev

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/processed").mkdir(parents=True)
    states_table().to_parquet(tmp_path / "data/processed/states.parquet")
    fake = FakeRuns()
    monkeypatch.setattr(ev, "rl_api", lambda: (lambda models_dir: fake.runs, fake.greedy))
    cfg = validate_config({"evaluate": {"knn_k": 10, "bootstrap": 50, "calibration_rows": 200,
                                        "select_by": "wis_ess_pareto",  # run_evaluation without FQE below
                                        "truth": {"n_patients": 0}, "audit": {"candidates": 0},  # no simulator
                                        "fqe": {"candidates": 12, "steps": 200, "target_every": 20,
                                                "hidden": 16}}})
    return ev, cfg, tmp_path


def test_stage_writes_table_selection_and_plots(stage):
    ev, cfg, root = stage
    ev.main(cfg, StageRun())

    def strict(text):  # NaN / Infinity are not JSON: DVC and other readers choke on them
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in a JSON output"))

    table = strict((root / "reports/metrics/test_table.json").read_text())
    assert [r["policy"] for r in table["rows"]] == ["clinician", "bcq", "factored_bcq", "adbcq"]
    for r in table["rows"]:
        assert r["true_value"] is None and r["wis_ci"][0] <= r["wis"] <= r["wis_ci"][1]
        assert 0 <= r["agreement"] <= 1
    assert table["rows"][0]["ess"] == 50 and table["rows"][0]["agreement"] == 1.0
    assert table["rows"][3]["variant"] in {"adbcq[linear,aug]", "adbcq[mlp2,noaug]"}
    ev_json = strict((root / "reports/metrics/evaluate.json").read_text())
    # the AD-BCQ pick is listed once, under adbcq; the other variant under its own name
    other = ({"adbcq[linear,aug]", "adbcq[mlp2,noaug]"} - {table["rows"][3]["variant"]}).pop()
    assert set(ev_json["selected"]) == {"bcq", "factored_bcq", "adbcq", other}
    # FQE / WDR beside WIS for every selected policy, with CIs; FQE's convergence record is reported
    for r in table["rows"][1:]:
        assert np.isfinite(r["fqe"]) and r["fqe_ci"][0] <= r["fqe"] <= r["fqe_ci"][1] and np.isfinite(r["wdr"])
        assert isinstance(r["fqe_converged"], bool) and isinstance(r["flagged"], bool)
        assert r["flagged"] == bool(r["flags"])
        assert (not r["fqe_converged"]) <= any("FQE not converged" in f for f in r["flags"])
    assert ev_json["fqe"]["n_candidates"] >= 8 and ev_json["select_by"] == "wis_ess_pareto"
    assert ev_json["audit"] is None and "0" in ev_json["audit_info"]["skipped"]
    for s in ev_json["selected"].values():
        assert s["validation"]["wis"] is not None and s["n_candidates"] == 20
        assert s["cutoff_sensitivity"][0]["cutoff_from"] == 0
    assert ev_json["behaviour"]["val"]["self_fit"]["joint"]["top1"] > 0.3
    selected = json.loads((root / "reports/selected.json").read_text())
    assert selected["bcq"]["step"] in range(100, 1100, 100)
    pareto = pd.read_csv(root / "reports/plots/pareto_adbcq.csv")
    assert len(pareto) == 40 and pareto["selected"].sum() == 1 and pareto["selected_variant"].sum() == 2
    assert (root / "reports/figures/pareto.png").stat().st_size > 0
    assert (root / "reports/figures/behaviour_calibration.png").stat().st_size > 0


def test_true_values_fill_the_table(stage):
    ev, cfg, root = stage
    fake = FakeRuns()
    out = wf.run_evaluation(cfg.evaluate, ev.read_states(), fake.runs, fake.greedy)
    t = wf.build_test_table(out["results"]["test"], out["chosen"], true_values={"bcq": 80.0,
                                                                              "adbcq": {"value": 85.0, "se": 0.5}})
    rows = {r["policy"]: r for r in t["rows"]}
    assert rows["bcq"]["true_value"] == 80.0 and rows["bcq"]["wis_minus_true"] == pytest.approx(rows["bcq"]["wis"] - 80)
    assert rows["adbcq"]["true_value_se"] == 0.5 and rows["clinician"]["true_value"] is None
    # the same from the written table, as the lead fills it after the simulator roll-outs
    t2 = wf.with_true_values(json.loads(json.dumps(wf.build_test_table(out["results"]["test"], out["chosen"]))),
                             {"bcq": 80.0, "adbcq": {"value": 85.0, "se": 0.5}})
    assert t2["rows"] == t["rows"]
    with pytest.raises(InputError, match="no such row"):
        wf.with_true_values(t2, {"dqn": 1.0})


def test_states_contract_violations_are_named(stage):
    ev, cfg, root = stage
    df = states_table()
    bad = df.copy()
    bad.loc[bad.index[1], "decision"] = -1
    with pytest.raises(InputError, match="decision == -1 does not match"):
        wf.split_arrays(bad, "train")
    with pytest.raises(InputError, match="missing required column"):
        wf.split_arrays(df.drop(columns=["reward"]), "train")
    with pytest.raises(InputError, match="no rows with split"):
        wf.split_arrays(df, "holdout")


def test_policies_of_wrong_length_name_the_run(stage):
    ev, cfg, root = stage
    fake = FakeRuns()

    def short(run_dir, z, only_steps=None):
        steps, a = fake.greedy(run_dir, z, only_steps)
        return steps, a[:, :-1]

    with pytest.raises(InputError, match="run bcq-None-0 .* expected \\(candidates"):
        wf.run_evaluation(cfg.evaluate, ev.read_states(), fake.runs, short)


@pytest.mark.slow
def test_stage_with_real_training_runs(stage):
    """Integration with the RL room's API: list_runs / greedy_matrix on a tiny real sweep."""
    torch = pytest.importorskip("torch")
    policy = pytest.importorskip("adrl.rl.policy")
    train = pytest.importorskip("adrl.rl.train")
    torch.set_num_threads(1)
    ev, _, root = stage
    cfg = validate_config({"train": {"algorithms": ["bcq", "factored_bcq"], "steps": 100, "checkpoint_every": 50,
                                     "hidden": 32, "batch_size": 32},
                           "evaluate": {"knn_k": 10, "bootstrap": 50, "calibration_rows": 200,
                                        "select_by": "wis_ess_pareto"}})
    train.run_sweep(pd.read_parquet(root / "data/processed/states.parquet"), cfg.train, root / "models/train",
                    progress=False)
    runs = policy.list_runs(root / "models/train")
    out = wf.run_evaluation(cfg.evaluate, ev.read_states(), runs, policy.greedy_matrix)
    rows = {r["policy"]: r for r in out["table"]["rows"]}
    assert set(rows) == {"clinician", "bcq", "factored_bcq"}
    assert rows["bcq"]["step"] in (50, 100) and 0 <= rows["bcq"]["agreement"] <= 1
    assert len(out["scores"]) == 4


def test_same_params_same_numbers(stage):
    ev, cfg, root = stage
    fake = FakeRuns()
    a = wf.run_evaluation(cfg.evaluate, ev.read_states(), fake.runs, fake.greedy)
    b = wf.run_evaluation(cfg.evaluate, ev.read_states(), fake.runs, fake.greedy)
    assert json.dumps(a["table"]) == json.dumps(b["table"])
    pd.testing.assert_frame_equal(a["scores"], b["scores"])


def test_unknown_select_by_names_the_key(stage):
    from adrl.errors import ConfigError

    with pytest.raises(ConfigError, match="evaluate.select_by"):
        validate_config({"evaluate": {"select_by": "best_guess"}})
    ev, cfg, root = stage
    scores = wf.run_evaluation(cfg.evaluate, ev.read_states(), FakeRuns().runs, FakeRuns().greedy)["scores"]
    with pytest.raises(InputError, match="evaluate.select_by: unknown rule 'best_guess'"):
        wf.select_models(scores, 50, 0.069, select_by="best_guess")
    no_fqe = cfg.evaluate.model_copy(update={"select_by": "fqe",
                                             "fqe": cfg.evaluate.fqe.model_copy(update={"candidates": 0})})
    with pytest.raises(InputError, match="evaluate.select_by: fqe needs FQE, but evaluate.fqe.candidates is 0"):
        wf.run_evaluation(no_fqe, ev.read_states(), FakeRuns().runs, FakeRuns().greedy)


def test_fqe_that_does_not_converge_is_reported_and_flagged(stage, capsys):
    from adrl.cli import main as cli
    ev, cfg, root = stage
    raw = {"evaluate": {**cfg.evaluate.model_dump(), "select_by": "fqe",
                        "fqe": {"candidates": 8, "steps": 40, "target_every": 20, "lr": 1e-5, "hidden": 8}}}
    bad = validate_config(raw)
    ev.main(bad, StageRun())
    ev_json = json.loads((root / "reports/metrics/evaluate.json").read_text())
    assert ev_json["fqe"]["n_converged"] == 0
    n = ev_json["fqe"]["n_candidates"]
    assert n >= 8 and any(f"FQE: {n} of {n} fits did not converge" in w for w in ev_json["warnings"])
    table = json.loads((root / "reports/metrics/test_table.json").read_text())
    for r in table["rows"][1:]:
        assert r["fqe_converged"] is False and r["flagged"] is True
        assert any(f.startswith("FQE not converged") for f in r["flags"])
        assert "selection flagged" in r["flags"]           # no converged fit to choose from
    capsys.readouterr()
    assert cli(["show", "--table", str(root / "reports/metrics/test_table.json")]) == 0
    shown = capsys.readouterr().out
    assert "FQE not converged" in shown and "never get the alias `champion`" in shown


def test_audit_on_a_real_source_says_so_and_the_rest_runs(stage, caplog):
    ev, cfg, root = stage
    raw = {"source": {"kind": "demo"},
           "evaluate": {**cfg.evaluate.model_dump(), "audit": {"candidates": 10, "n_patients": 50}}}
    real = validate_config(raw)
    with caplog.at_level("WARNING"):
        ev.main(real, StageRun())
    assert "evaluate.audit: source.kind is demo, which has no simulator truth: the audit is skipped" in caplog.text
    ev_json = json.loads((root / "reports/metrics/evaluate.json").read_text())
    assert ev_json["audit"] is None and "no simulator truth" in ev_json["audit_info"]["skipped"]
    assert set(ev_json["selected"]) >= {"bcq", "factored_bcq", "adbcq"} and ev_json["fqe"]["n_candidates"] > 0
    assert (root / "reports/plots/audit.csv").read_text().startswith("run_id,algorithm")   # header only
