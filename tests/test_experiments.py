"""make experiments (benchmarks/exp_sample_efficiency.py) with named arms: arm names parse into the run and the
model-batch options they promise, bad names say what is wrong, and the contrasts the report draws pair the right
arms with paired-by-seed intervals."""
import pytest

from benchmarks.exp_sample_efficiency import arm_contrasts, contrast_rows, parse_arm

ARMS = ["bcq", "factored_bcq", "adbcq-linear-noaug", "adbcq-linear-aug-soft", "adbcq-linear-aug-sample",
        "adbcq-linear-aug-logged", "adbcq-linear-aug-soft-survaction", "adbcq-linear-aug-sample-shuffle",
        "adbcq-linear-aug-sample-noise0.5"]


def test_arm_names_parse_into_their_options():
    spec, opts = parse_arm("adbcq-sum-aug-sample-noise0.5", 0.3, 2)
    assert (spec.algorithm, spec.mixer, spec.augment, spec.seed, spec.tau) == ("adbcq", "sum", True, 2, 0.3)
    assert opts == {"termination": "sample", "control": "noise", "noise_scale": 0.5}
    assert parse_arm("adbcq-linear-aug-soft-survaction", 0.3, 0)[1] == {"termination": "soft",
                                                                        "survival_input": "action"}
    assert parse_arm("factored_bcq", 0.1, 1)[1] == {}


@pytest.mark.parametrize("name, needle", [("adbcq-cubic-aug", "unknown arm"), ("adbcq-linear-aug-fast", "'fast'"),
                                          ("adbcq-linear-aug-noisex", "noise needs a scale"),
                                          ("adbcq-linear-noaug-sample", "need augmentation")])
def test_bad_arm_names_say_what_is_wrong(name, needle):
    with pytest.raises(SystemExit, match=needle):
        parse_arm(name, 0.3, 0)


def test_contrasts_pair_each_question_with_its_reference():
    pairs = {(k, ref): q for k, ref, q in arm_contrasts(ARMS)}
    assert pairs[("factored_bcq", "bcq")] == "factored against joint BCQ"
    assert pairs[("adbcq-linear-aug-sample", "adbcq-linear-noaug")] == "augmentation against none"
    assert pairs[("adbcq-linear-aug-sample", "adbcq-linear-aug-sample-shuffle")].startswith("the model's")
    assert pairs[("adbcq-linear-aug-sample", "adbcq-linear-aug-sample-noise0.5")].startswith("the model's")
    assert pairs[("adbcq-linear-aug-soft-survaction", "adbcq-linear-aug-soft")].startswith("survival head")
    assert pairs[("adbcq-linear-aug-logged", "adbcq-linear-aug-sample")] == "termination rule against sample"
    assert all(k in ARMS and ref in ARMS for k, ref in pairs)
    # a contrast whose reference arm was not run is left out, not drawn against nothing
    assert not any(ref == "adbcq-linear-aug-sample" for _, ref, _ in arm_contrasts(["factored_bcq",
                                                                                    "adbcq-linear-aug-logged"]))


def test_contrast_rows_are_paired_by_seed_and_pooled():
    pol = {"bcq": {"values": [80.0, 81.0, 82.0]}, "factored_bcq": {"values": [81.0, 82.0, 83.0]}}
    s = {"by_size": {"250": {"policies": pol}, "1000": {"policies": {k: {"values": [v + 1 for v in p["values"]]}
                                                                     for k, p in pol.items()}}}}
    rows = contrast_rows(s, {"arms": ["bcq", "factored_bcq"]})
    row = next(r for r in rows if r.startswith("| factored against joint BCQ"))
    # the same +1.0 in every seed: a zero-width interval at each N and pooled
    assert row.count("+1.0 [+1.0, +1.0]") == 3


def test_mixer_ablation_contrasts_each_mixer_with_linear_under_the_same_options():
    arms = ["factored_bcq", "adbcq-linear-aug-sample", "adbcq-mean-aug-sample", "adbcq-relu-aug-sample",
            "adbcq-sum-aug-soft"]
    pairs = {(k, ref): q for k, ref, q in arm_contrasts(arms)}
    assert pairs[("adbcq-mean-aug-sample", "adbcq-linear-aug-sample")] == "mixer against linear"
    assert pairs[("adbcq-relu-aug-sample", "adbcq-linear-aug-sample")] == "mixer against linear"
    # its linear counterpart (soft termination) was not run: no contrast against a different linear arm
    assert not any(k == "adbcq-sum-aug-soft" and q == "mixer against linear" for (k, _), q in pairs.items())


def _run(value, key="K"):
    return {"value": value, "key": key, "converged": True, "selected": {"value": value}}


def _cell(world, seed, n, runs):
    return {"world": world, "seed": seed, "n_train": n, "runs": runs, "seconds": {"total": 60.0}}


def test_a_run_on_another_world_adds_to_the_recorded_results_and_pairs_by_seed():
    """A second run (another world, an extra arm on some seeds) keeps what was recorded; runs of other settings
    are left out; paired differences use the seeds both arms have, never values of different seeds."""
    from benchmarks.exp_sample_efficiency import arm_key, merge_recorded, seed_pairs, summarise

    a = {"steps": 10, "tau": 0.3, "patients": 5, "rollout_seed": 1, "checkpoints": 2, "stays": 50, "dynamics": {},
         "worlds": ["1.0"], "world_params": {"1.0": (1.0, 0.0)}, "sizes": [100], "seeds": [0, 1, 2],
         "arms": ["factored_bcq", "adbcq-mean-aug"]}
    key = arm_key(a)
    recorded = {"args": {"worlds": ["0.0"], "world_params": {"0.0": [0.0, 0.0]}, "arms": ["bcq", "factored_bcq"]},
                "summary": {"0.0": {"clinician": {"value": 77.0, "se": 1.0}, "no_treatment": {"value": 60.0}}},
                "cells": [_cell("0.0", s, 100, {"bcq": _run(80.0 + s, key), "factored_bcq": _run(81.0 + s, key),
                                                "old": _run(1.0, {"steps": 1})}) for s in (0, 1, 2)]}
    now = [_cell("1.0", s, 100, {"factored_bcq": _run(70.0 + s, key)} | (
        {"adbcq-mean-aug": _run(72.0 + 2 * s, key)} if s > 0 else {})) for s in (0, 1, 2)]
    cells, wide, clin = merge_recorded(recorded, now, {"1.0": {"clinician": {"value": 70.0, "se": 1.0}}}, a)
    assert len(cells) == 6 and wide["worlds"] == ["0.0", "1.0"]
    assert wide["arms"] == ["bcq", "factored_bcq", "adbcq-mean-aug"]
    assert not any("old" in c["runs"] for c in cells)
    assert clin["0.0"]["clinician"]["value"] == 77.0 and clin["1.0"]["clinician"]["value"] == 70.0
    s = summarise(cells, clin, wide)
    P0, P1 = s["0.0"]["by_size"][100]["policies"], s["1.0"]["by_size"][100]["policies"]
    assert P0["factored_bcq"]["values"] == [81.0, 82.0, 83.0] and "adbcq-mean-aug" not in P0
    assert P1["adbcq-mean-aug"]["seeds"] == [1, 2]
    va, vb = seed_pairs(P1, "adbcq-mean-aug", "factored_bcq")
    assert (va, vb) == ([74.0, 76.0], [71.0, 72.0])
    # a second run over the same cells adds arms to them rather than replacing their runs
    more = [_cell("0.0", 0, 100, {"adbcq-mean-aug": _run(90.0, key)})]
    again, wide2, _ = merge_recorded({"args": wide, "summary": {}, "cells": cells}, more, {}, a)
    c0 = next(c for c in again if c["world"] == "0.0" and c["seed"] == 0)
    assert set(c0["runs"]) == {"bcq", "factored_bcq", "adbcq-mean-aug"}


def test_a_run_with_other_settings_refuses_to_merge_into_recorded_results(tmp_path):
    """The results file is rewritten with the new runs merged in, so a run whose settings differ (here: tau) stops
    before any work and names the file, instead of dropping what was recorded."""
    import json

    from benchmarks.exp_sample_efficiency import main

    rec = tmp_path / "res.json"
    rec.write_text(json.dumps({"cells": [_cell("0.0", 0, 100, {"bcq": _run(80.0, {"tau": 0.3})})]}))
    with pytest.raises(SystemExit, match="res.json: 1 recorded runs were trained with other settings"):
        main(["--arms", "bcq", "--tau", "0.1", "--out", str(tmp_path), "--name", "res",
              "--work", str(tmp_path / "work")])
    assert json.loads(rec.read_text())["cells"][0]["runs"]["bcq"]["value"] == 80.0
    assert not (tmp_path / "work").exists()


def test_the_figure_draws_a_merged_grid_with_a_world_run_at_one_size(tmp_path):
    from benchmarks.exp_sample_efficiency import figure_arms, summarise

    key = "K"
    a = {"worlds": ["0.0", "1.0"], "world_params": {"0.0": (0.0, 0.0), "1.0": (1.0, 0.0)}, "sizes": [100, 400],
         "arms": ["bcq", "factored_bcq", "adbcq-mean-aug"], "tau": 0.3, "steps": 10, "patients": 5}
    cells = [_cell("0.0", s, n, {"bcq": _run(80.0 + s, key), "factored_bcq": _run(81.0 + s * s, key)})
             for s in (0, 1, 2) for n in (100, 400)]
    cells += [_cell("1.0", s, 400, {"factored_bcq": _run(70.0 + s, key), "adbcq-mean-aug": _run(71.0 - s, key)})
              for s in (0, 1, 2)]
    s = summarise(cells, {"0.0": {"clinician": {"value": 77.0, "se": 1.0}}}, a)
    figure_arms(s, a, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 10_000


def test_worlds_pooled_rows_pair_by_world_and_seed_and_count_intervals_excluding_zero():
    """The report's all-worlds section: a contrast at each N pools the (world, seed) pairs of every world, and the
    count of AD-BCQ intervals against factored BCQ that exclude 0 is taken per world and N, exactly (not from
    rounded text)."""
    from benchmarks.exp_sample_efficiency import worlds_pooled_rows

    def pol(fact, ad):
        return {"factored_bcq": {"values": fact, "seeds": [0, 1, 2], "selected": {"values": fact}},
                "adbcq-linear-noaug": {"values": ad, "seeds": [0, 1, 2], "selected": {"values": fact}}}
    s = {"0.0": {"by_size": {"250": {"policies": pol([80.0, 81.0, 82.0], [81.0, 82.0, 83.0])}}},   # +1 each seed
         "1.0": {"by_size": {"250": {"policies": pol([80.0, 81.0, 82.0], [83.0, 84.0, 85.0])}}}}   # +3 each seed
    a = {"worlds": ["0.0", "1.0"], "world_params": {"0.0": (0.0, 0.0), "1.0": (1.0, 0.0)},
         "arms": ["factored_bcq", "adbcq-linear-noaug"]}
    rows = worlds_pooled_rows(s, a)
    row = next(r for r in rows if "adbcq-linear-noaug - factored_bcq" in r)
    assert "| +2.0 [" in row and row.endswith("| 6 |")   # six pairs, from both worlds
    final = next(r for r in rows if "(final checkpoints)" in r)
    assert "2 of 2 exclude 0 (2 above, 0 below" in final
    assert "interaction = 0: 1 of 1; interaction = 1: 1 of 1" in final
    selected = next(r for r in rows if "(FQE-selected checkpoints)" in r)
    assert "0 of 2 exclude 0" in selected   # the selected values are equal: zero-width intervals at 0
    assert worlds_pooled_rows({"0.0": s["0.0"]}, a | {"worlds": ["0.0"]}) == []   # one world: nothing to pool


def test_a_cell_whose_arms_are_all_recorded_fits_nothing(tmp_path):
    """On a new machine (or with a fresh --work) a cell whose every arm is in the recorded results is rendered from
    them: no world is read, no encoder or model fitted, nothing trained (the project folder does not even exist)."""
    from benchmarks.exp_sample_efficiency import arm_key, run_cell

    a = {"arms": ["bcq", "factored_bcq"], "world_params": {"1.0": [1.0, 0.0]}, "steps": 100, "tau": 0.3,
         "patients": 10, "rollout_seed": 7, "checkpoints": 2, "stays": 50, "dynamics": {}}
    key = arm_key(a)
    rec = {"world": "1.0", "seed": 3, "n_train": 125, "n_train_transitions": 1200, "seconds": {"total": 9.0},
           "runs": {"bcq": {"key": key, "value": 80.0}, "factored_bcq": {"key": key, "value": 81.0},
                    "adbcq-linear-noaug": {"key": key, "value": 79.0}}}
    a["recorded"] = [rec, {**rec, "seed": 4}]
    out = run_cell(str(tmp_path / "no-project"), "1.0", 3, 125, a, str(tmp_path / "cell"))
    assert out["runs"] == {"bcq": rec["runs"]["bcq"], "factored_bcq": rec["runs"]["factored_bcq"]}
    assert (out["seed"], out["n_train_transitions"], out["arms"]) == (3, 1200, ["bcq", "factored_bcq"])
    assert not (tmp_path / "cell").exists()
    # an arm recorded with other settings is not reused: the cell would be fitted, and the project is missing
    a["recorded"] = [{**rec, "runs": {**rec["runs"], "bcq": {"key": {**key, "steps": 5}, "value": 1.0}}}]
    from adrl.errors import ConfigError
    with pytest.raises(ConfigError, match="no-project/params.yaml: parameters file not found"):
        run_cell(str(tmp_path / "no-project"), "1.0", 3, 125, a, str(tmp_path / "cell"))
