"""`adrl apply` and the states contract's checks: Q values and allowed sets of all 25 actions, no decision on a
stay's last row, any trained run, and named errors (no traceback, exit 2) for bad states files."""
import argparse
import json

import numpy as np
import pandas as pd
import pytest

from adrl import cli
from adrl.errors import InputError
from adrl.rl.data import read_states, transitions
from adrl.rl.nets import masked_argmax
from adrl.rl.params import TrainParams
from adrl.rl.policy import Policy
from adrl.rl.train import run_sweep
from tests.rl.factored_mdp import make_states

ZC = [f"z_{i}" for i in range(13)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("apply")
    p = TrainParams(algorithms=["bcq", "adbcq"], mixers=["linear"], augment=[False], thresholds=[0.3], seeds=[0],
                    steps=30, checkpoint_every=10, hidden=32, workers=1)
    man = run_sweep(make_states(60, seed=0), p, root / "models", progress=False)
    runs = {r["algorithm"]: r["run_id"] for r in man["runs"]}
    (root / "selected.json").write_text(json.dumps({"adbcq": {"run_id": runs["adbcq"], "step": 20}}))
    states = make_states(20, seed=3)
    states.to_parquet(root / "states.parquet", index=False)
    return root, runs, states


def _apply(root, *extra, states="states.parquet", out="out.parquet"):
    return cli.main(["apply", "--states", str(root / states), "--out", str(root / out),
                     "--models", str(root / "models"), "--selected", str(root / "selected.json"), *extra])


def test_apply_outputs_q_values_and_allowed_sets_and_no_decision_on_last_rows(trained):
    root, runs, states = trained
    assert _apply(root, "--run", runs["bcq"]) == 0
    out = pd.read_parquet(root / "out.parquet")
    assert len(out) == len(states) and (out["icustay_id"].to_numpy() == states["icustay_id"].to_numpy()).all()
    live = ~states["last"].to_numpy(bool)
    assert (out["decision_row"].to_numpy() == live).all()
    pol = Policy.load(root / "models" / "runs" / runs["bcq"])            # --run without --checkpoint: the last
    assert pol.step == 30
    q, m = pol.q_and_mask(states[ZC].to_numpy(np.float32))
    got_q = out[[f"q_{j}" for j in range(25)]].to_numpy()
    got_m = out[[f"allowed_{j}" for j in range(25)]].to_numpy()
    np.testing.assert_allclose(got_q[live], q[live], rtol=1e-6)
    assert (got_m[live] == m[live]).all() and got_m[live].any(axis=1).all()
    import torch
    greedy = masked_argmax(torch.from_numpy(q), torch.from_numpy(m)).numpy()
    assert (out["action"].to_numpy()[live] == greedy[live]).all()
    assert (out["action"] == 5 * out["fluid_bin"] + out["vaso_bin"])[live].all()
    # a stay's last row: no decision (no action, no Q, nothing allowed)
    assert (out.loc[~live, ["action", "fluid_bin", "vaso_bin"]] == -1).all().all()
    assert np.isnan(got_q[~live]).all() and not got_m[~live].any()


def test_apply_a_selected_policy_at_another_checkpoint(trained):
    root, runs, states = trained
    assert _apply(root, "--policy", "adbcq") == 0
    sel = pd.read_parquet(root / "out.parquet")
    assert _apply(root, "--policy", "adbcq", "--checkpoint", "10", out="out10.parquet") == 0
    c10 = pd.read_parquet(root / "out10.parquet")
    z = states[ZC].to_numpy(np.float32)
    for frame, step in ((sel, 20), (c10, 10)):
        q, _ = Policy.load(root / "models" / "runs" / runs["adbcq"], step=step).q_and_mask(z)
        live = frame["decision_row"].to_numpy()
        np.testing.assert_allclose(frame[[f"q_{j}" for j in range(25)]].to_numpy()[live], q[live], rtol=1e-6)


def test_without_last_column_the_last_step_of_each_stay_takes_no_decision(trained):
    root, runs, states = trained
    states[["icustay_id", "step", *ZC]].to_parquet(root / "bare.parquet", index=False)
    assert _apply(root, "--run", runs["bcq"], states="bare.parquet", out="bare_out.parquet") == 0
    out = pd.read_parquet(root / "bare_out.parquet")
    assert (out["decision_row"].to_numpy() == ~states["last"].to_numpy(bool)).all()


@pytest.mark.parametrize("value, kind", [(np.nan, "NaN"), (np.inf, "infinite"), (-np.inf, "infinite")])
def test_non_finite_state_is_a_named_error_not_a_confident_no_treatment(trained, capsys, value, kind):
    root, runs, states = trained
    bad = states.copy()
    bad.loc[7, "z_4"] = value
    bad.to_parquet(root / "bad.parquet", index=False)
    assert _apply(root, "--policy", "adbcq", states="bad.parquet", out="bad_out.parquet") == 2
    err = capsys.readouterr().err
    assert "bad.parquet" in err and "row 7" in err and "z_4" in err and kind in err
    assert not (root / "bad_out.parquet").exists()


def test_states_file_that_is_not_parquet_is_named(trained, capsys):
    root, runs, _ = trained
    (root / "notparquet.parquet").write_text("icustay_id,z_0\n1,0.5\n")
    assert _apply(root, "--policy", "adbcq", states="notparquet.parquet") == 2
    err = capsys.readouterr().err
    assert "notparquet.parquet" in err and "Parquet" in err and "Traceback" not in err


def test_text_in_a_state_column_is_named(trained, capsys):
    root, runs, states = trained
    bad = states.copy()
    bad["z_2"] = bad["z_2"].astype(str)
    bad.loc[5, "z_2"] = "n/a"
    bad.to_parquet(root / "text.parquet", index=False)
    assert _apply(root, "--policy", "adbcq", states="text.parquet") == 2
    err = capsys.readouterr().err
    assert "text.parquet" in err and "z_2" in err and "row 5" in err
    with pytest.raises(InputError, match="z_2"):   # the train stage reads states the same way
        read_states(root / "text.parquet")
    with pytest.raises(InputError, match="Parquet"):
        (root / "garbage.parquet").write_bytes(b"PAR1 not really")
        read_states(root / "garbage.parquet")


def test_run_and_policy_together_or_unknown_run_are_named(trained, capsys):
    root, runs, _ = trained
    assert _apply(root, "--run", runs["bcq"], "--policy", "adbcq") == 2
    assert _apply(root, "--run", "nope-s0") == 2
    err = capsys.readouterr().err
    assert "--run and --policy" in err and "--run nope-s0" in err


def test_every_option_of_every_subcommand_has_help():
    parser = cli.build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [f"{name} {a.dest}" for name, sp in subs.choices.items() for a in sp._actions
               if not isinstance(a, argparse._HelpAction) and not a.help]
    assert not missing, f"options without help text: {missing}"
    assert {"repro", "ui", "check-params", "show", "apply"} <= set(subs.choices)


# ---- the states contract: `done` on row t agrees with `last` on row t+1 -------------------------------------
@pytest.mark.parametrize("change", ["done_early", "done_missing", "done_on_last"])
def test_done_must_agree_with_last_of_the_next_row(change):
    df = make_states(10)
    # rows of traj 3: step 0 (done False), step 1 (done True: step 2 is last), step 2 (last)
    r = {s: int(np.flatnonzero(((df.traj == 3) & (df.step == s)).to_numpy())[0]) for s in range(3)}
    if change == "done_early":
        df.loc[r[0], "done"] = True
        row = r[0]
    elif change == "done_missing":
        df.loc[r[1], "done"] = False    # training would bootstrap from the outcome row
        row = r[1]
    else:
        df.loc[r[2], "done"] = True
        row = r[2]
    with pytest.raises(InputError, match=rf"my_states.parquet: row {row}: done"):
        transitions(df, "train", where="my_states.parquet")


def test_non_finite_states_in_training_name_row_and_column():
    df = make_states(10)
    df.loc[4, "z_9"] = np.nan
    with pytest.raises(InputError, match="row 4, column z_9: NaN"):
        transitions(df, "train")


def test_the_policy_object_refuses_non_finite_states(trained):
    # the same guard for every caller (the MLflow pyfunc model, roll-outs): never a silent "no treatment"
    root, runs, states = trained
    pol = Policy.load(root / "models" / "runs" / runs["adbcq"])
    z = states[ZC].to_numpy(np.float32).copy()
    z[3, 6] = np.nan
    for name in ("greedy", "q_values", "q_and_mask"):
        with pytest.raises(InputError, match="row 3, column z_6 is not finite"):
            getattr(pol, name)(z)
