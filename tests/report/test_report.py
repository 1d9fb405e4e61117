"""The report's formatting, figures and Table 1 (what a reader sees), without running the pipeline."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from adrl.config import Config, validate_config
from adrl.report import build
from adrl.report.html import Table, _fmt, render_html, render_markdown


def test_parameters_keep_their_significant_digits_and_seeds_have_no_separator():
    cfg = validate_config({"ais": {"lr": 0.0005}, "evaluate": {"truth": {"seed": 12345}},
                           "train": {"lr": 0.0003, "weight_decay": 0.001}})
    params = dict(build._flat_params(cfg))
    assert params["ais.lr"] == "0.0005" and params["train.lr"] == "0.0003"
    assert params["train.weight_decay"] == "0.001" and params["train.dynamics.lr"] == "0.001"
    assert params["train.polyak"] == "0.005" and params["evaluate.ess_cutoff_c"] == "0.069"
    assert params["train.dynamics.weight_decay"] == "1e-05"
    assert params["evaluate.truth.seed"] == "12345" and params["cohort.split.seed"] == "42"
    assert params["train.tau_per_head"] == "null" and params["train.reuse_real"] == "true"
    page = render_html("t", "s", [build.Section("p", "p", [Table(["parameter", "value"], list(params.items()))])])
    assert "<td>0.0005</td>" in page and "<td>12345</td>" in page and "12,345" not in page
    md = render_markdown("t", "s", [build.Section("p", "p", [Table(["parameter", "value"], list(params.items()))])])
    assert "| ais.lr | 0.0005 |" in md


@pytest.mark.parametrize("value, shown", [(0.0005, "0.0005"), (0.069, "0.07"), (84.6153, "84.62"), (1316, "1,316"),
                                          (0.0, "0.00"), (float("nan"), ""), (2.5e7, "25,000,000"), (-0.004, "-0.004")])
def test_measured_numbers_never_round_to_zero(value, shown):
    assert _fmt(value) == shown


def test_the_title_names_the_real_source():
    assert build.report_title(Config()) == "adrl: sepsis treatment policies from a synthetic ICU world (MIMIC-III v1.4 layout)"
    assert build.report_title(validate_config({"source": {"kind": "mimic", "path": "/x"}})).endswith("from MIMIC-III v1.4")


EDGES = {"fluid": {"edges": [500.0, 1000.0, 2000.0]}, "vaso": {"edges": [0.0963, 0.1804, 0.3689]}}


@pytest.fixture
def captured(monkeypatch):
    """The matplotlib figure a report figure function would encode as PNG."""
    figs = []
    monkeypatch.setattr(build, "fig_png", lambda fig, dpi=100: figs.append(fig) or b"png")
    return figs


def test_action_heatmaps_label_bins_with_dose_ranges(captured):
    counts = np.arange(25).reshape(5, 5)
    build.heatmap_figure({"clinician": counts, "adbcq": counts}, 100, EDGES, bin_h=4)
    ax = captured[0].axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0: none", "1: 0-500", "2: 500-1,000", "3: 1,000-2,000",
                                                            "4: > 2,000"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0: none", "1: 0-0.096", "2: 0.096-0.18", "3: 0.18-0.37",
                                                            "4: > 0.37"]
    assert "mL per 4 h" in ax.get_ylabel() and "µg/kg/min" in ax.get_xlabel()


def test_training_curves_have_labelled_y_ticks(captured, tmp_path):
    import json

    run = tmp_path / "runs" / "bcq-tau0.3-s0"
    run.mkdir(parents=True)
    hist = {"step": [100, 200, 300], "loss/q": [9.5, 11.0, 10.2], "loss/bc": [2.4, 2.1, 1.8]}
    (run / "run.json").write_text(json.dumps({"history": hist}))
    build.training_figure(tmp_path / "runs", {"bcq": {"run_id": "bcq-tau0.3-s0", "step": 200}}, 100)
    fig = captured[0]
    fig.canvas.draw()
    ax = fig.axes[0]
    assert ax.get_ylabel() == "loss (log scale)"
    lo, hi = ax.get_ylim()
    shown = [t.get_text() for t in ax.get_yticklabels() if lo <= t.get_position()[1] <= hi and t.get_text()]
    assert len(shown) >= 4, shown  # 2, 3, 5, 7, 10: a tick every step of the 1-2-3-5-7 ladder


def test_ais_figures_read_well():
    from adrl.ais.figures import loss_figure, vs_naive_figure
    from adrl.schemas import OBS_COLS

    hist = pd.DataFrame({"epoch": [1, 2, 3], "train_nll": [5.0, 4.0, 3.5], "val_nll": [5.2, 4.4, 4.1]})
    fig = loss_figure(hist, {"naive_val_nll": 4.5, "best_epoch": 3})
    label = fig.axes[0].get_ylabel()
    assert "$" in label and "{t+1}" in label  # mathtext: rendered as a subscript, no raw braces on the page
    fig.savefig(__import__("io").BytesIO(), format="png")  # mathtext parses
    per = pd.DataFrame({"feature": list(OBS_COLS), "ais_val_mse": 0.5, "naive_val_mse": 0.6})
    fig = vs_naive_figure(per, {"val_nll": 3.0, "naive_val_nll": 3.5})
    names = fig.axes[1].get_yticklabels()
    assert [t.get_text() for t in names][0] == OBS_COLS[0].removeprefix("o:")
    # printed at the report's width (figure width 10 in over ~1,100 px) the names are at least 9 pt (~13 px)
    assert min(t.get_fontsize() for t in names) >= 9 and fig.get_figwidth() <= 10.5


def test_table1_by_split():
    stays = pd.DataFrame({"traj": [0, 1, 2, 3], "subject_id": [10, 11, 12, 12], "split": ["train", "train", "test", "test"],
                          "kept": [True, True, True, False], "max_sofa": [4, 8, 6, 9], "n_steps": [3, 2, 2, 2],
                          "died": [False, True, False, True],
                          "intime": pd.to_datetime(["2100-01-01"] * 4),
                          "outtime": pd.to_datetime(["2100-01-03", "2100-01-05", "2100-01-02", "2100-01-02"])})
    raw = pd.DataFrame({"traj": [0, 0, 0, 1, 1, 2, 2, 3, 3], "step": [0, 1, 2, 0, 1, 0, 1, 0, 1],
                        "m:age": [60, 60, 60, 80, 80, 70, 70, 50, 50], "m:gender": [1, 1, 1, 0, 0, 1, 1, 0, 0],
                        "m:Weight_kg": 80.0, "m:mechvent": [0, 1, 0, 0, 0, 0, 0, 1, 1],
                        "o:Arterial_lactate": [1.0, 4.0, 2.0, 2.0, 1.0, 1.5, 1.5, 9.0, 9.0],
                        "o:MeanBP": [70, 60, 65, 55, 75, 80, 80, 40, 40], "vaso_dose": [0, 0.1, 0, 0, 0, 0, 0, 1, 1],
                        "sofa": [2, 4, 3, 6, 8, 5, 6, 9, 9]})
    t = build.clinical_table(stays, raw, "icu48_or_hospital")
    assert t.header == ["", "train", "test", "all"]
    rows = {r[0]: r[1:] for r in t.rows}
    assert rows["ICU stays"] == ["2", "1", "3"]  # the excluded stay (kept False) is not counted
    assert rows["age, years, median (IQR)"][0] == "70 (65-75)"
    assert rows["female, %"] == ["50.0", "100.0", "66.7"]
    assert rows["max lactate, mmol/L, median (IQR)"][0] == "3.0 (2.5-3.5)"
    assert rows["min MAP, mmHg, median (IQR)"][0] == "58 (56-59)"
    assert rows["ever on vasopressors, %"] == ["50.0", "0.0", "33.3"]
    assert rows["ever mechanically ventilated, %"] == ["50.0", "0.0", "33.3"]
    assert rows["ICU length of stay, days, median (IQR)"][0] == "3.0 (2.5-3.5)"
    assert rows["SOFA at the first step, median (IQR)"][0] == "4 (3-5)"
    assert rows["mortality (icu48_or_hospital), %"] == ["50.0", "0.0", "33.3"]
