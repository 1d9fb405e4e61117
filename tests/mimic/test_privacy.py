"""No patient data in MLflow or logs: a malformed row's values (ids, time, result) and an unparseable value reach no
MLflow artifact, parameter, tag or metric, no stage log line and no report; only counts, column names and reasons."""
import os
import subprocess
import sys

import yaml

from tests.conftest import ROOT

# distinctive values that occur nowhere else
SUBJECT, HADM, TIME, RESULT, BAD_VALUE, SUBJECT2 = "987654321", "876543219", "2161-07-13 04:31:17", "123.456789", \
    "7Q3X9", "987654329"


def test_a_malformed_rows_values_reach_no_mlflow_record_and_no_log(make_source, tmp_path):
    good = [dict(subject_id="10", hadm_id="100", itemid="50971", charttime=f"2160-01-01 {h:02d}:00:00",
                 value=str(4 + h / 10), valuenum=str(4 + h / 10), valueuom="mEq/L") for h in range(20)]
    typo = dict(good[0], subject_id=SUBJECT2, valuenum=BAD_VALUE)                 # a value that does not parse
    extra = [f'77,{SUBJECT},{HADM},50971,{TIME},"{RESULT}",{RESULT},"mEq/L",,EXTRA']   # one field too many
    src = make_source({"labevents": good + [typo]}, extra={"labevents": extra})
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "params.yaml").write_text(yaml.safe_dump({
        "source": {"kind": "mimic", "path": str(src)},
        "ingest": {"progress": False, "max_bad_fraction": 0.5}}))
    env = dict(os.environ, PYTHONPATH=str(ROOT), ADRL_ROOT=str(proj), ADRL_TRACKING="on",
               MLFLOW_TRACKING_URI=f"sqlite:///{proj / 'mlflow.db'}", ADRL_ARTIFACT_ROOT=(proj / "mlartifacts").as_uri())
    env.pop("ADRL_PARENT_RUN_ID", None)
    r = subprocess.run([sys.executable, "-m", "pipeline.ingest"], cwd=proj, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rep = yaml.safe_load((proj / "data/interim/events/ingest_report.json").read_text())
    lab = rep["files"]["labevents"]
    assert lab["dropped"]["malformed_row"] == 1 and lab["type_errors_by_column"] == {"VALUENUM": 1}
    assert "malformed row" in r.stderr                                   # the log says what happened ...
    artifacts = [p for p in (proj / "mlartifacts").rglob("*") if p.is_file()]
    assert any(p.name == "ingest_report.json" for p in artifacts)
    # ... and nothing anywhere in the project (MLflow's database: params, tags, metrics; its artifacts; the
    # reports and metrics files) nor in the log holds the rows' values
    scanned = {"stdout": r.stdout, "stderr": r.stderr}
    for p in proj.rglob("*"):
        if p.is_file() and p.suffix != ".parquet":
            scanned[str(p.relative_to(proj))] = p.read_bytes().decode("utf-8", errors="replace")
    assert "mlflow.db" in scanned and len(scanned) > 4
    for value in (SUBJECT, HADM, TIME, RESULT, BAD_VALUE, SUBJECT2):
        leaks = [name for name, text in scanned.items() if value in text]
        assert not leaks, f"{value!r} found in {leaks}"
    # the same file over the default tolerance stops with counts and the field count, no values
    (proj / "params.yaml").write_text(yaml.safe_dump({"source": {"kind": "mimic", "path": str(src)},
                                                      "ingest": {"progress": False}}))
    r = subprocess.run([sys.executable, "-m", "pipeline.ingest"], cwd=proj, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 2 and "LABEVENTS" in r.stderr and "Traceback" not in r.stderr
    for value in (SUBJECT, HADM, TIME, RESULT, BAD_VALUE, SUBJECT2):
        assert value not in r.stderr + r.stdout, value
