"""End to end: the real pipeline (dvc.yaml, pipeline/, adrl/) on a tiny synthetic world, through `adrl repro`.

One run of the pipeline (about two minutes on 2 cores) serves every test of this module.
"""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml

from .harness import ROOT, TINY, env_for, make_project, run

pytestmark = pytest.mark.slow
STAGES = ["synthesize", "ingest", "cohort", "encode", "train", "evaluate", "report"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    p = make_project(tmp_path_factory.mktemp("e2e") / "proj", TINY, git=True)
    r = run(["adrl", "repro"], p)
    return p, r


def test_repro_runs_every_stage_and_writes_the_contracts(project):
    p, r = project
    for stage in STAGES:
        assert f"Running stage '{stage}'" in r.stdout, stage
    for f in ["data/raw/synthetic/CHARTEVENTS.csv.gz", "data/interim/events/ingest_report.json",
              "data/processed/trajectories.parquet", "data/processed/states.parquet", "models/ais/model.pt",
              "models/train/runs.json", "reports/metrics/test_table.json", "reports/report.html", "reports/report.md"]:
        assert (p / f).exists(), f
    table = json.loads((p / "reports/metrics/test_table.json").read_text())
    rows = {row["policy"]: row for row in table["rows"]}
    assert set(rows) == {"clinician", "bcq", "factored_bcq", "adbcq"}
    for name, row in rows.items():
        assert row["wis"] is not None and row["ess"] > 0
        assert row["true_value"] is not None and 0 <= row["true_value"] <= 100, name
    ev = json.loads((p / "reports/metrics/evaluate.json").read_text())
    # the chain simulator -> MIMIC-format events -> cohort code recovers the actions the policies chose
    for name in ("bcq", "factored_bcq", "adbcq"):
        assert ev["truth"][name]["dose_recovery"] > 0.9, (name, ev["truth"][name])
    # the selection audit against the simulator's truth, for every estimator
    assert set(ev["audit"]) >= {"wis", "fqe", "wdr"} and ev["audit_info"]["n_candidates"] == 4
    for r in ev["audit"].values():
        assert -1 <= r["spearman"] <= 1 and r["regret"] >= 0 and 0 <= r["top5_precision"] <= 1
    for name, row in rows.items():
        if name != "clinician":
            assert row["fqe"] is not None and row["wdr"] is not None and isinstance(row["flagged"], bool)
    # the dynamics model's validation error, beside its ridge baseline, reaches the metrics and the report
    dyn = json.loads((p / "reports/metrics/train.json").read_text())["dynamics"]["seed0"]
    assert 0 < dyn["ensemble/term_auroc"] <= 1 and np.isfinite(dyn["linear_baseline/dz_r2"])
    md = (p / "reports/report.md").read_text()
    assert "Projected dynamics and reward model, validation" in md and "ridge dz R^2" in md
    # the convergence check of every run reaches train.json, the selected policies and the report (the tiny
    # profile trains 60 steps, so its runs are reported as not converged)
    train = json.loads((p / "reports/metrics/train.json").read_text())
    runs = json.loads((p / "models/train/runs.json").read_text())["runs"]
    assert set(train["value_check"]) == {r["run_id"] for r in runs}
    for v in train["value_check"].values():
        assert set(v) == {"q_logged", "mc_return", "ratio", "q_spread", "td_error"} and v["mc_return"] > 0
    assert sorted(train["not_converged"]) == sorted(k for k, v in train["value_check"].items()
                                                    if not 0.8 <= v["ratio"] <= 1.25)
    for name in ("bcq", "factored_bcq", "adbcq"):
        assert ev["selected"][name]["value_check"]["ratio"] is not None, name
    assert "Convergence check of each run's last checkpoint" in md
    if train["not_converged"]:
        assert "not converged: such a policy reflects the imitation filter" in md


def test_the_log_has_no_noise_the_user_cannot_act_on(project):
    _, r = project
    for noise in ("Add type hints to the `predict` method", "CloudPickle", "Downloading artifacts",
                  "Use `dvc push`"):
        assert noise not in r.stdout + r.stderr, noise


def _mlflow_runs(p: Path) -> list:
    import mlflow

    mlflow.set_tracking_uri(env_for(p)["MLFLOW_TRACKING_URI"])
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name("adrl")
    return client.search_runs([exp.experiment_id], max_results=1000)


def test_second_repro_does_nothing_and_opens_no_run(project):
    p, _ = project
    before = len(_mlflow_runs(p))
    r = run(["adrl", "repro"], p)
    assert "Running stage" not in r.stdout
    assert "Data and pipelines are up to date" in r.stdout
    assert len(_mlflow_runs(p)) == before  # no empty parent run for a pipeline that did nothing


def test_changing_a_cohort_parameter_does_not_reingest(project):
    p, _ = project
    params = yaml.safe_load((p / "params.yaml").read_text())
    old = params["cohort"]["window"]["after_onset_h"]
    try:
        params["cohort"]["window"]["after_onset_h"] = old - 4
        (p / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        st = run(["dvc", "status", "--json"], p).stdout
        changed = set(json.loads(st))
        assert "cohort" in changed
        assert "ingest" not in changed and "synthesize" not in changed
    finally:
        params["cohort"]["window"]["after_onset_h"] = old
        (p / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"},
                                 method="POST" if body is not None else "GET")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def test_mlflow_server_shows_one_parent_with_a_child_per_stage(project):
    p, _ = project
    port = _free_port()
    env = env_for(p)
    mlflow_exe = Path(sys.executable).parent / "mlflow"
    cmd = [str(mlflow_exe) if mlflow_exe.exists() else "mlflow", "server", "--host", "127.0.0.1", "--port",
           str(port), "--backend-store-uri", env["MLFLOW_TRACKING_URI"], "--default-artifact-root",
           env["ADRL_ARTIFACT_ROOT"], "--workers", "1"]
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    srv = subprocess.Popen(cmd, cwd=p, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/api/2.0/mlflow"
    try:
        for _ in range(120):
            try:
                exp = _get(f"{base}/experiments/get-by-name?experiment_name=adrl")["experiment"]
                break
            except Exception:
                time.sleep(0.5)
        else:
            pytest.fail("MLflow server did not answer on 127.0.0.1")
        runs = _get(f"{base}/runs/search", {"experiment_ids": [exp["experiment_id"]], "max_results": 200})["runs"]
        tags = [{t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in runs]
        parents = [r for r, t in zip(runs, tags) if t.get("adrl.stage") == "pipeline"]
        assert len(parents) == 1
        pid = parents[0]["info"]["run_id"]
        children = {t["adrl.stage"]: r for r, t in zip(runs, tags) if t.get("mlflow.parentRunId") == pid}
        assert set(children) == set(STAGES)
        metrics = {m["key"] for m in children["evaluate"]["data"].get("metrics", [])}
        assert "truth.clinician.value" in metrics and any(k.startswith("test.bcq") for k in metrics)
        # one key scheme: the split names of the data (train / val / test)
        assert "val.bcq.wis" in metrics and not any(k.startswith("validation.") for k in metrics)
        head = _get(f"{base}/runs/get?run_id={pid}")["run"]["data"]
        head_tags = {t["key"]: t["value"] for t in head["tags"]}
        assert len(head_tags["mlflow.source.git.commit"]) == 40 and head_tags["adrl.source"] == "synthetic"
        assert {p["key"] for p in head["params"]} >= {"cohort.window.after_onset_h", "train.steps"}
        assert exp["tags"] and {t["key"]: t["value"] for t in exp["tags"]}.get("mlflow.experimentKind") == \
            "custom_model_development"  # the UI opens on the runs, not the GenAI overview
        models = _get(f"{base}/registered-models/search")["registered_models"]
        assert {"adrl-bcq", "adrl-factored_bcq", "adrl-adbcq"} <= {m["name"] for m in models}
        # honest promotion: each selected policy's version carries its numbers and flags; `champion` only
        # when unflagged; adbcq registered once
        table = {r["policy"]: r for r in json.loads((p / "reports/metrics/test_table.json").read_text())["rows"]}
        for name in ("bcq", "factored_bcq", "adbcq"):
            q = urllib.parse.quote(f"name='adrl-{name}'")
            versions = _get(f"{base}/model-versions/search?filter={q}")["model_versions"]
            assert len(versions) == 1, (name, versions)
            tags = {t["key"]: t["value"] for t in versions[0].get("tags", [])}
            assert {"ess", "wis", "fqe", "converged", "flagged", "true_value"} <= set(tags), tags
            assert tags["flagged"] == str(table[name]["flagged"])
            assert float(tags["true_value"]) == pytest.approx(table[name]["true_value"])
            rm = _get(f"{base}/registered-models/get?name=adrl-{name}")["registered_model"]
            aliases = {a["alias"] for a in rm.get("aliases", [])}
            assert ("champion" in aliases) == (not table[name]["flagged"]), (name, aliases, tags["flags"])
        # the parent run carries the test table's metrics
        pmetrics = {m["key"]: m["value"] for m in parents[0]["data"].get("metrics", [])}
        assert pmetrics["test.bcq.wis"] == pytest.approx(table["bcq"]["wis"])
        assert "test.adbcq.fqe" in pmetrics and "test.adbcq.flagged" in pmetrics
    finally:
        srv.terminate()
        srv.wait(timeout=30)


def test_registered_policy_model_predicts_actions(project):
    p, _ = project
    env = env_for(p)
    code = ("import mlflow, pandas as pd; mlflow.set_tracking_uri(%r); "
            "m = mlflow.pyfunc.load_model('models:/adrl-adbcq/1'); "
            "s = pd.read_parquet('data/processed/states.parquet').head(7); "
            "out = m.predict(s); print(out.to_json())") % env["MLFLOW_TRACKING_URI"]
    r = subprocess.run([sys.executable, "-c", code], cwd=p, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    acts = list(out["action"].values())
    assert len(acts) == 7 and all(0 <= a < 25 for a in acts)
    assert all(a == 5 * f + v for a, f, v in zip(acts, out["fluid_bin"].values(), out["vaso_bin"].values()))


FIGURES = ["test_table", "cohort_flow", "action_heatmaps", "ais_loss", "ais_vs_naive", "training_curves", "pareto",
           "audit", "behaviour_calibration"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def test_report_opens_offline_in_headless_chromium(project, tmp_path):
    from .cdp import load_page

    chromium = _chromium()
    if chromium is None:
        pytest.skip("headless Chromium not found: install it (Debian: apt-get install chromium; `make test` does "
                    "this where it runs as root) to check the report in a browser")
    p, _ = project
    html = p / "reports" / "report.html"
    requests, facts, png = load_page(chromium, html.as_uri(), str(tmp_path / "profile"))
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "report.png").write_bytes(png)  # kept as a test artifact
    leaving = [u for u in requests if not u.startswith(("file:", "data:"))]
    assert leaving == [], f"the report made requests that would leave the machine: {leaving}"
    text = facts["text"]
    for name in ("Test results", "Clinician (observed)", "Discrete BCQ", "Factored BCQ", "AD-BCQ", "WIS 95% CI",
                 "true value", "Cohort flow", "Table 1", "ever on vasopressors, %", "min MAP, mmHg, median (IQR)",
                 "no bin with urine > 12000 mL"):
        assert name in text, name
    assert "from a synthetic ICU world" in text and "from MIMIC-III" not in text  # the title names the source
    # parameters as written in params.yaml; the tiny profile's AIS stops at its 3-epoch cap: warned
    assert "ais.lr\t0.0005" in text and "evaluate.truth.seed\t12345" in text and "12,345" not in text
    assert "stopped at its epoch cap (ais.max_epochs = 3)" in text
    shown = {f["id"]: f for f in facts["figures"]}
    for fig in FIGURES:
        assert shown.get(f"fig-{fig}", {}).get("loaded"), f"figure {fig} is not shown"
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000


def test_dvc_plots_show_renders_offline(project, tmp_path):
    """`dvc plots show` with the offline template (scripts/dvc-plots-offline.py, run by `make install`): every
    chart renders in headless Chromium with the network off."""
    from .cdp import load_page

    chromium = _chromium()
    if chromium is None:
        pytest.skip("headless Chromium not found (Debian: apt-get install chromium)")
    p, _ = project
    made = subprocess.run([sys.executable, str(ROOT / "scripts" / "dvc-plots-offline.py"), "--project", str(p)],
                          capture_output=True, text=True, env=env_for(p), timeout=600)
    assert made.returncode == 0, made.stderr
    if not (p / ".dvc" / "plots-offline.html").exists():
        pytest.skip(f"no vega packages (npm not found, none cached in build/vega): {made.stderr.strip()}")
    run(["dvc", "plots", "show"], p)
    page = p / "dvc_plots" / "index.html"
    requests, facts, png = load_page(chromium, page.as_uri(), str(tmp_path / "profile"), offline=True, settle=3)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "dvc_plots.png").write_bytes(png)
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    charts = {c["id"]: c["rendered"] for c in facts["charts"]}
    assert {"ais_loss", "reports_plots_pareto_bcq_csv", "reports_plots_pareto_adbcq_csv"} <= set(charts)
    assert all(charts.values()), charts


def test_cli_shows_results_and_applies_a_selected_policy(project):
    import pandas as pd

    p, _ = project
    shown = run(["adrl", "show"], p).stdout
    for name in ("clinician", "bcq", "factored_bcq", "adbcq"):
        assert f"\n{name} " in shown
    out = p / "applied.parquet"
    run(["adrl", "apply", "--states", "data/processed/states.parquet", "--out", str(out), "--policy", "adbcq"], p)
    df = pd.read_parquet(out)
    states = pd.read_parquet(p / "data/processed/states.parquet")
    assert len(df) == len(states)
    live = ~states["last"].to_numpy(bool)
    assert (df["decision_row"].to_numpy() == live).all() and (df.loc[~live, "action"] == -1).all()
    assert (df["action"] == 5 * df["fluid_bin"] + df["vaso_bin"])[live].all()
    q = df[[f"q_{j}" for j in range(25)]].to_numpy()
    allowed = df[[f"allowed_{j}" for j in range(25)]].to_numpy()
    assert np.isfinite(q[live]).all() and allowed[live].any(axis=1).all()
    assert allowed[live, df["action"].to_numpy()[live]].all()     # the greedy action is an allowed one
    bad = run(["adrl", "apply", "--states", "missing.parquet", "--out", str(out)], p, check=False)
    assert bad.returncode == 2 and "missing.parquet" in bad.stderr


def _exp_rows(p: Path) -> dict:
    """`dvc exp show --json`: {experiment name: (params.yaml data, cohort metrics)} of the baseline's experiments."""
    shown = json.loads(run(["dvc", "exp", "show", "--json"], p).stdout)
    out = {}
    for row in shown:
        for e in row.get("experiments") or []:
            rev = e["revs"][0]
            data = rev["data"]
            out[rev["name"]] = (data["params"]["params.yaml"]["data"],
                                data["metrics"]["reports/metrics/cohort.json"]["data"])
    return out


def test_walkthrough_each_experiment_starts_from_the_baseline(project):
    """The README's walkthrough: commit the baseline run, two experiments with `dvc exp run --temp`, each from the
    baseline (the second does not inherit the first's change); `dvc exp show` lists both; MLflow holds each as one
    run tree tagged with the experiment's name and the baseline commit."""
    p, _ = project
    run(["git", "add", "dvc.lock", "reports"], p)
    run(["git", "commit", "-qm", "baseline run"], p)
    head = run(["git", "rev-parse", "HEAD"], p).stdout.strip()
    base = json.loads((p / "reports/metrics/cohort.json").read_text())
    r1 = run(["dvc", "exp", "run", "--temp", "-n", "window44", "-S", "cohort.window.after_onset_h=44"], p)
    assert "Stage 'ingest' didn't change, skipping" in r1.stdout and "Running stage 'cohort'" in r1.stdout
    r2 = run(["dvc", "exp", "run", "--temp", "-n", "dpi80", "-S", "report.dpi=80"], p)
    assert "Running stage 'report'" in r2.stdout and "Running stage 'cohort'" not in r2.stdout
    # the workspace stays at the baseline
    assert run(["git", "status", "--porcelain", "--", "params.yaml", "dvc.lock"], p).stdout.strip() == ""

    exps = _exp_rows(p)
    assert set(exps) == {"window44", "dpi80"}
    params44, cohort44 = exps["window44"]
    params80, cohort80 = exps["dpi80"]
    assert params44["cohort"]["window"]["after_onset_h"] == 44 and params44["report"]["dpi"] == 100
    assert params80["cohort"]["window"]["after_onset_h"] == 48 and params80["report"]["dpi"] == 80
    assert cohort44["rows"] < base["rows"] and cohort80 == base

    runs = _mlflow_runs(p)
    for name, stages in (("window44", {"cohort", "encode", "train", "evaluate", "report"}), ("dpi80", {"report"})):
        tree = [r for r in runs if r.data.tags.get("adrl.dvc_exp") == name]
        parents = [r for r in tree if r.data.tags["adrl.stage"] == "pipeline"]
        assert len(parents) == 1 and parents[0].info.run_name == f"exp {name}"
        kids = {r.data.tags["adrl.stage"] for r in tree if r.data.tags.get("mlflow.parentRunId") ==
                parents[0].info.run_id}
        assert kids == stages and len(tree) == len(stages) + 1
        assert {r.data.tags["mlflow.source.git.commit"] for r in tree} == {head}


def test_metrics_files_hold_no_timings(project):
    # wall-clock fields change every run; in the DVC metrics files they made `dvc metrics diff` of two identical
    # runs report noise. They live in reports/timings/<stage>.json (not a DVC metric) and in MLflow.
    p, _ = project

    def keys(d, prefix=""):
        items = d.items() if isinstance(d, dict) else enumerate(d) if isinstance(d, list) else ()
        for k, v in items:
            yield f"{prefix}{k}"
            yield from keys(v, f"{prefix}{k}.")

    # nor do the outputs' own records (so a re-run reproduces them byte for byte)
    outs = ["data/interim/events/ingest_report.json", "models/ais/training.json", "models/train/runs.json",
            *[str(f.relative_to(p)) for f in (p / "models/train/runs").glob("*/run.json")]]
    for f in [*sorted((p / "reports/metrics").glob("*.json")), *(p / o for o in outs)]:
        timing = [k for k in keys(json.loads(f.read_text())) if "seconds" in k.split(".")[-1] or k.endswith("_per_s")]
        assert not timing, f"{f.name}: {timing}"
    dvc_yaml = (p / "dvc.yaml").read_text()
    assert "reports/timings" not in dvc_yaml
    for stage in STAGES:
        assert json.loads((p / f"reports/timings/{stage}.json").read_text())["stage_seconds"] > 0, stage
