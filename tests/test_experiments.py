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
