"""Fixtures for the ingest tests: the demo assembled with the generated stand-in CHARTEVENTS (project data, not
MIMIC data; the demo tables are symlinked, never copied), and small hand-written sources."""
import gzip
import re
from pathlib import Path

import pytest

from adrl.mimic.schema import INTERIM
from adrl.mimic.source import TABLES


@pytest.fixture(scope="session")
def demo_source(demo_dir, tmp_path_factory):
    from adrl.mimic.source import assemble_demo

    return assemble_demo(demo_dir, tmp_path_factory.mktemp("demo") / "src", seed=0)


@pytest.fixture(scope="session")
def demo_events(demo_source, tmp_path_factory):
    from adrl.mimic.ingest import ingest

    out = tmp_path_factory.mktemp("ingest") / "events"
    report = ingest(demo_source, out, block_size_mb=1, part_rows=20_000, progress=False)
    return out, report


# one plausible row per table (interim column -> text); events use concept items
BASE_ROWS = {
    "patients": [dict(subject_id="10", gender="F", dob="2100-01-01 00:00:00", expire_flag="0")],
    "admissions": [dict(subject_id="10", hadm_id="100", admittime="2160-01-01 10:00:00",
                        dischtime="2160-01-09 10:00:00", hospital_expire_flag="0")],
    "icustays": [dict(subject_id="10", hadm_id="100", icustay_id="200001", dbsource="metavision",
                      first_careunit="MICU", intime="2160-01-01 12:00:00", outtime="2160-01-04 12:00:00", los="3")],
    "chartevents": [dict(subject_id="10", hadm_id="100", icustay_id="200001", itemid=str(i), charttime=f"2160-01-01 1{k}:00:00",
                         value=v, valuenum=v if v[-1].isdigit() else "", valueuom="bpm", error="0")
                    for k, (i, v) in enumerate([(220045, "88"), (220045, ".95"), (220048, "SR (Sinus Rhythm)"),
                                                (220277, "97"), (220045, "90")])],
    "labevents": [dict(subject_id="10", hadm_id="100", itemid="50971", charttime="2160-01-01 13:00:00", value="4.1",
                       valuenum="4.1", valueuom="mEq/L")],
    "microbiologyevents": [dict(subject_id="10", hadm_id="100", chartdate="2160-01-01 00:00:00", spec_itemid="70012",
                                spec_type_desc="BLOOD CULTURE")],
    "prescriptions": [dict(subject_id="10", hadm_id="100", icustay_id="200001", startdate="2160-01-01 00:00:00",
                           enddate="2160-01-03 00:00:00", drug="Vancomycin", gsn="043952", route="IV"),
                      dict(subject_id="10", hadm_id="100", icustay_id="200001", startdate="2160-01-01 00:00:00",
                           enddate="2160-01-03 00:00:00", drug="Cefepime", gsn="009298", route="IV")],
    "inputevents_cv": [],
    "inputevents_mv": [dict(subject_id="10", hadm_id="100", icustay_id="200001", starttime="2160-01-01 13:00:00",
                            endtime="2160-01-01 14:00:00", itemid="225158", amount="500", amountuom="ml", rate="500",
                            rateuom="mL/hour", patientweight="70", statusdescription="FinishedRunning")],
    "outputevents": [dict(subject_id="10", hadm_id="100", icustay_id="200001", charttime="2160-01-01 14:00:00",
                          itemid="226559", value="120", valueuom="ml")],
    "procedureevents_mv": [dict(subject_id="10", hadm_id="100", icustay_id="200001", starttime="2160-01-01 13:00:00",
                                endtime="2160-01-01 13:01:00", itemid="225401")],
}


def _field(v: str, lower: bool) -> str:
    """MIMIC dialect: numbers and times bare, other strings quoted (the lower-case packaging quotes nothing)."""
    if v == "" or lower or re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", v):
        return v
    return '"' + v.replace('"', '""') + '"'


def write_table(root: Path, table: str, rows, *, lower=False, drop=(), gz=True, extra_lines=()):
    cols = ["row_id"] + [c for c in INTERIM[table] if c not in drop]
    name = table.upper() + (".csv.gz" if gz else ".csv")
    opener = (lambda p: gzip.open(p, "wt", newline="")) if gz else (lambda p: open(p, "w", newline=""))
    with opener(root / name) as f:
        if lower:
            f.write(",".join(cols) + "\n")
        else:
            f.write(",".join(f'"{c.upper()}"' for c in cols) + "\n")
        for i, r in enumerate(rows):
            f.write(",".join([str(i + 1)] + [_field(r.get(c, ""), lower) for c in cols[1:]]) + "\n")
        for line in extra_lines:
            f.write(line + "\n")


@pytest.fixture
def make_source(demo_dir, tmp_path):
    """make_source(overrides={table: rows}, lower=False, drop={table: cols}, skip=(tables,), extra={table: lines})."""
    def make(overrides=None, lower=False, drop=None, skip=(), extra=None, gz=True):
        root = tmp_path / "src"
        root.mkdir(exist_ok=True)
        for d in ("D_ITEMS.csv.gz", "D_LABITEMS.csv.gz"):
            if not (root / d).exists():
                (root / d).symlink_to(demo_dir / d)
        for t in TABLES:
            if t in skip:
                continue
            rows = (overrides or {}).get(t, BASE_ROWS[t])
            write_table(root, t, rows, lower=lower, drop=(drop or {}).get(t, ()), gz=gz,
                        extra_lines=(extra or {}).get(t, ()))
        return root
    return make
