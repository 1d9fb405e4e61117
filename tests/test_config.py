import pytest
import yaml

from adrl.config import Config, load_config, validate_config
from adrl.errors import ConfigError


def test_project_params_yaml_is_valid_and_complete(tmp_path):
    from tests.conftest import ROOT

    cfg = load_config(ROOT / "params.yaml")
    # every knob of the typed config appears in params.yaml, so users see what they can change
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())

    def keys(d, prefix=""):
        out = set()
        for k, v in d.items():
            out.add(prefix + k)
            if isinstance(v, dict):
                out |= keys(v, prefix + k + ".")
        return out

    missing = keys(cfg.model_dump()) - keys(raw)
    assert not missing, f"params.yaml lacks keys: {sorted(missing)}"


@pytest.mark.parametrize("raw, needle", [
    ({"cohort": {"windw": {}}}, "cohort.windw: unknown key; allowed keys here: recipe"),
    ({"cohort": {"window": {"bin_h": 5}}}, "cohort.window.before_onset_h=24 is not a whole multiple of cohort.window.bin_h=5"),
    ({"cohort": {"window": {"before_onset_h": 0, "after_onset_h": 0}}}, "shorter than one bin"),
    ({"train": {"thresholds": []}}, "train.thresholds"),
    ({"train": {"thresholds": [1.5]}}, "train.thresholds"),
    ({"synth": {"profile": "huge"}}, "synth.profile: Input should be 'tiny', 'default' or 'mimic'"),
    ({"ais": {"latent_dim": "big"}}, "ais.latent_dim"),
    ({"cohort": {"split": {"fractions": [0.5, 0.5]}}}, "cohort.split.fractions"),
    ({"cohort": {"actions": {"vaso_edges": "tertiles"}}}, "cohort.actions.vaso_edges"),
])
def test_bad_parameters_name_the_key(raw, needle):
    with pytest.raises(ConfigError) as e:
        validate_config(raw)
    assert needle in str(e.value)


@pytest.mark.parametrize("raw", [{"cohort": {"split": {"fractions": [0.5, 0.5]}}},
                                 {"cohort": {"actions": {"fluid_edges_ml": [3, 2, 1]}}},
                                 {"synth": {"profile": "huge"}}, {"ais": {"latent_dim": 0}}])
def test_errors_quote_the_bad_value_once(raw):
    with pytest.raises(ConfigError) as e:
        validate_config(raw)
    line = str(e.value).splitlines()[1]
    assert line.count("got ") == 1, line


def test_recipe_resolves_null_keys_and_explicit_values_win():
    c = Config()
    assert c.cohort.fix("potassium_hold") is True
    assert c.cohort.resolved()["window"]["margin_h"] == 0
    f = validate_config({"cohort": {"recipe": "faithful", "fixes": {"error_rows": True}}}).cohort
    assert f.fix("potassium_hold") is False and f.fix("error_rows") is True
    r = f.resolved()
    assert (r["sepsis"]["window_before_h"], r["sepsis"]["window_after_h"], r["window"]["margin_h"]) == (24, 48, 4)


def test_missing_params_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("raw, key", [
    ({"train": {"steps": True}}, "train.steps"),
    ({"train": {"lr": False}}, "train.lr"),
    ({"train": {"thresholds": [0.3, True]}}, "train.thresholds"),
    ({"train": {"tau_per_head": [0.1, False]}}, "train.tau_per_head"),
    ({"seed": True}, "seed"),
    ({"cohort": {"window": {"after_onset_h": True}}}, "cohort.window.after_onset_h"),
    ({"train": {"augment": [1]}}, "train.augment"),
    ({"ingest": {"progress": 0}}, "ingest.progress"),
    ({"cohort": {"fixes": {"itemids": 1}}}, "cohort.fixes.itemids"),
])
def test_booleans_are_not_numbers_anywhere(raw, key):
    # YAML `true` must not become the number 1 (train.steps: true was one training step), nor 1 a boolean
    with pytest.raises(ConfigError) as e:
        validate_config(raw)
    msg = str(e.value)
    assert f"  {key}: " in msg and ("boolean" in msg or "true or false" in msg), msg


def test_strict_booleans_keep_valid_values():
    c = validate_config({"train": {"steps": 7, "lr": 1, "augment": [True, False], "tau_per_head": [0.1, 0.2]},
                         "cohort": {"fixes": {"itemids": False}}, "source": {"path": None}})
    assert c.train.steps == 7 and c.train.lr == 1.0 and c.train.augment == [True, False]
    assert c.cohort.fixes.itemids is False
