"""Streaming ingest: the demo (+ the generated stand-in CHARTEVENTS, project data not MIMIC data) and hand-written
sources for the error paths."""
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from adrl.errors import ConfigError, InputError
from adrl.mimic import concepts, ingest as ing
from adrl.mimic.schema import INTERIM, interim_schema
from adrl.mimic.source import TABLES, resolve_source


def read(out, table):
    return ing.read_interim(out, table)


# ---------------------------------------------------------------- the demo

def test_demo_every_row_is_accounted_for(demo_events, demo_source):
    out, rep = demo_events
    assert json.loads((out / "ingest_report.json").read_text())["totals"] == rep["totals"]
    for t, s in rep["files"].items():
        assert s["rows_read"] == s["rows_kept"] + sum(s["dropped"].values()), t
        assert read(out, t).num_rows == s["rows_kept"], t
        assert s["mode"] == "typed" and "malformed_row" not in s["dropped"] and "type_error" not in s["dropped"], t
    f = rep["files"]
    # the demo row counts of cohort.md 10.1 and the filters explained
    assert [f[t]["rows_read"] for t in ("patients", "admissions", "icustays", "labevents", "microbiologyevents",
                                        "prescriptions", "inputevents_cv", "inputevents_mv", "outputevents",
                                        "procedureevents_mv")] == [100, 129, 136, 76074, 2003, 10398, 34799, 13224,
                                                                   11320, 753]
    assert f["prescriptions"]["rows_kept"] == 229                     # 10.1: 229 rows match the GSN list
    assert f["prescriptions"]["dropped"]["missing_key:gsn"] == 1276   # 10.2: 1,276 rows lack a GSN
    assert f["procedureevents_mv"]["rows_kept"] == 88                 # 10.2: 88 culture-procedure rows
    assert rep["dictionary"]["label_drift"] == [] and rep["dictionary"]["missing_items"] == []


def test_demo_kept_rows_equal_an_independent_pandas_filter(demo_events, demo_dir):
    out, rep = demo_events
    ids = concepts.itemids_for_ingest()
    for t in ("inputevents_cv", "inputevents_mv", "outputevents", "labevents"):
        src = pd.read_csv(demo_dir / f"{t.upper()}.csv.gz", usecols=["ITEMID"])
        assert rep["files"][t]["rows_kept"] == int(src.ITEMID.isin(ids[t]).sum()), t
    mv = pd.read_csv(demo_dir / "INPUTEVENTS_MV.csv.gz", usecols=["ITEMID", "STATUSDESCRIPTION", "STARTTIME", "ENDTIME"],
                     parse_dates=["STARTTIME", "ENDTIME"])
    mv = mv[mv.ITEMID.isin(ids["inputevents_mv"])]
    rewritten = int((mv.STATUSDESCRIPTION == "Rewritten").sum())
    got = read(out, "inputevents_mv").to_pandas()
    assert rewritten > 0 and (got.statusdescription == "Rewritten").sum() == rewritten   # kept for the cohort
    assert rep["files"]["inputevents_mv"]["flags_kept"]["rewritten"] == rewritten
    back = mv.ENDTIME < mv.STARTTIME            # 10.2: rows ending before they start (Rewritten), kept as they are
    assert back.sum() > 0 and (got.endtime < got.starttime).sum() == back.sum()


def test_demo_types_and_filtered_items(demo_events, demo_source):
    out, rep = demo_events
    ids = concepts.itemids_for_ingest()
    for t in TABLES:
        assert read(out, t).schema == interim_schema(t), t
    ce = read(out, "chartevents").to_pandas()
    assert set(ce.itemid) <= set(ids["chartevents"])
    raw = pd.read_csv(demo_source / "CHARTEVENTS.csv.gz", dtype={"VALUE": str, "STOPPED": str, "RESULTSTATUS": str})
    assert not raw.ITEMID.isin(ids["chartevents"]).all()          # the generator charts irrelevant items too
    assert rep["files"]["chartevents"]["dropped"]["not_concept_item"] == int((~raw.ITEMID.isin(ids["chartevents"])).sum())
    # rows the cohort judges are kept: ERROR = 1, no ICUSTAY_ID, item 160, Fahrenheit in a Celsius item
    assert (ce.error == 1).sum() == (raw.ERROR == 1).sum() > 0
    assert ce.icustay_id.isna().sum() == raw.ICUSTAY_ID.isna().sum() > 0
    assert (ce.itemid == 160).sum() > 0 and (ce.loc[ce.itemid == 223762, "valuenum"] > 70).any()
    # '.32'-style decimals, text values and GSN strings survive
    assert ((ce.valuenum > 0) & (ce.valuenum < 1)).any()
    assert "No Response-ETT" in set(ce.value) and "1.0 ET/Trach" in set(ce.value)
    rx = read(out, "prescriptions").to_pandas()
    assert rx.gsn.str.len().eq(6).all() and set(rx.gsn) <= concepts.antibiotic_gsns()
    assert (rx.route == "OD").sum() == 6                           # 10.1: six Vigamox eye-drop rows, kept here
    mb = read(out, "microbiologyevents").to_pandas()
    assert mb.charttime.isna().sum() == 91                         # 10.2: rows with only CHARTDATE


def test_interrupted_ingest_leaves_nothing(demo_source, tmp_path, monkeypatch):
    out = tmp_path / "events"
    real = ing.ingest_table
    calls = []

    def boom(path, table, *a, **k):
        calls.append(table)
        if table == "chartevents":
            raise KeyboardInterrupt("interrupted")
        return real(path, table, *a, **k)

    monkeypatch.setattr(ing, "ingest_table", boom)
    with pytest.raises(KeyboardInterrupt):
        ing.ingest(demo_source, out, progress=False)
    assert calls[-1] == "chartevents" and len(calls) > 1
    assert not out.exists() and list(tmp_path.iterdir()) == []
    # an earlier good output survives a failed re-run untouched
    out.mkdir()
    (out / "ingest_report.json").write_text("{}")
    with pytest.raises(KeyboardInterrupt):
        ing.ingest(demo_source, out, progress=False)
    assert (out / "ingest_report.json").read_text() == "{}" and len(list(tmp_path.iterdir())) == 1


# ---------------------------------------------------------------- hand-written sources

def test_lower_case_headers_and_plain_csv_read_the_same(make_source, tmp_path):
    up = ing.ingest(make_source(), tmp_path / "a", progress=False)
    ing.ingest(make_source(lower=True, gz=False), tmp_path / "b", progress=False)
    for t in TABLES:
        a, b = read(tmp_path / "a", t), read(tmp_path / "b", t)
        assert a.equals(b), t
    ce = read(tmp_path / "a", "chartevents").to_pandas()
    assert sorted(ce.valuenum) == [0.95, 88.0, 90.0, 97.0]            # 220048 (heart rhythm) is not a concept item
    assert up["files"]["chartevents"]["dropped"] == {"not_concept_item": 1}
    rx = read(tmp_path / "a", "prescriptions").to_pandas()
    assert list(rx.gsn) == ["009298"] and up["files"]["prescriptions"]["dropped"] == {"not_antibiotic_gsn": 1}


def test_missing_table_is_named(make_source, tmp_path):
    with pytest.raises(InputError, match=r"OUTPUTEVENTS\.csv\.gz: table OUTPUTEVENTS not found"):
        ing.ingest(make_source(skip=("outputevents",)), tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()


def test_missing_column_is_named_before_any_long_read(make_source, tmp_path, monkeypatch):
    monkeypatch.setattr(ing, "ingest_table", lambda *a, **k: pytest.fail("read before the header check"))
    with pytest.raises(InputError, match=r"CHARTEVENTS\.csv\.gz: missing column\(s\) VALUENUM"):
        ing.ingest(make_source(drop={"chartevents": ("valuenum",)}), tmp_path / "o", progress=False)


def test_missing_dictionary_is_named(make_source, tmp_path):
    src = make_source()
    (src / "D_ITEMS.csv.gz").unlink()
    with pytest.raises(InputError, match="D_ITEMS"):
        ing.ingest(src, tmp_path / "o", progress=False)


def test_a_wrong_column_type_stops_with_file_and_column(make_source, tmp_path):
    rows = [dict(r, itemid="HR") for r in [dict(BASE_CE)] * 4]
    with pytest.raises(InputError, match=r"CHARTEVENTS\.csv\.gz: column ITEMID: 4 of 4 values do not parse as int32"):
        ing.ingest(make_source({"chartevents": rows}), tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()


def test_unparseable_rows_are_counted_and_named(make_source, tmp_path):
    good = [dict(BASE_CE, charttime=f"2160-01-02 {h:02d}:00:00", valuenum=str(80 + h)) for h in range(20)]
    bad = [dict(BASE_CE, valuenum="8O"), dict(BASE_CE, charttime="2160-13-45 99:00:00")]
    extra = ['999,10,100,200001,220045,2160-01-03 01:00:00,"88"']          # too few fields
    src = make_source({"chartevents": good + bad}, extra={"chartevents": extra})
    rep = ing.ingest(src, tmp_path / "o", progress=False, max_bad_fraction=0.2)
    s = rep["files"]["chartevents"]
    assert s["mode"] == "tolerant"
    assert s["rows_read"] == 23 and s["rows_kept"] == 20
    assert s["dropped"] == {"type_error": 2, "malformed_row": 1}
    assert s["type_errors_by_column"] == {"VALUENUM": 1, "CHARTTIME": 1}
    assert s["malformed_fields"] == {"7 fields (expected 10)": 1}
    assert "8O" not in json.dumps(rep) and "2160-13-45" not in json.dumps(rep)   # counts, never values
    ce = read(tmp_path / "o", "chartevents")
    assert ce.schema == interim_schema("chartevents") and sorted(ce.column("valuenum").to_pylist())[0] == 80
    # the same file with the default tolerance: too many bad rows -> the column is named
    with pytest.raises(InputError, match="column (VALUENUM|CHARTTIME)"):
        ing.ingest(src, tmp_path / "p", progress=False)


def test_rows_missing_a_key_are_dropped_and_counted(make_source, tmp_path):
    rows = [BASE_CE, dict(BASE_CE, itemid=""), dict(BASE_CE, charttime="")]
    rep = ing.ingest(make_source({"chartevents": rows}), tmp_path / "o", progress=False)
    assert rep["files"]["chartevents"]["dropped"] == {"missing_key:itemid": 1, "missing_key:charttime": 1}


def test_convert_text_column():
    s = pa.array(["1", " 2 ", "x", None, "300", "-4"])
    out, bad = ing.convert_text_column(s, pa.int8())
    assert out.to_pylist() == [1, 2, None, None, None, -4] and bad.to_pylist() == [0, 0, 1, 0, 1, 0]
    out, bad = ing.convert_text_column(pa.array([".95", "1e3", "-.5", "nan", "1,5"]), pa.float64())
    assert out.to_pylist()[:3] == [0.95, 1000.0, -0.5] and bad.to_pylist() == [0, 0, 0, 1, 1]
    out, bad = ing.convert_text_column(pa.array(["2160-01-01 10:00:00", "2160-01-01", "01/01/2160"]), pa.timestamp("s"))
    assert out.to_pylist()[2] is None and bad.to_pylist() == [0, 0, 1] and out.type == pa.timestamp("s")


# ---------------------------------------------------------------- bounded memory

def test_streaming_reads_block_by_block_and_never_the_whole_file(tmp_path, monkeypatch):
    import gzip

    n = 250_000
    path = tmp_path / "CHARTEVENTS.csv.gz"
    rng = np.random.default_rng(0)
    body = "\n".join(f'{i},10,100,200001,{it},2160-01-01 10:00:00,"{v}",{v},"bpm",0'
                     for i, (it, v) in enumerate(zip(rng.choice([211, 31], n), rng.integers(50, 150, n))))
    with gzip.open(path, "wt") as f:
        f.write('"ROW_ID","SUBJECT_ID","HADM_ID","ICUSTAY_ID","ITEMID","CHARTTIME","VALUE","VALUENUM","VALUEUOM",'
                '"ERROR"\n' + body + "\n")
    size = len(body)
    consumed = []
    real_open = ing.open_binary

    class Counting:
        def __init__(self, f):
            self.f, self.n = f, 0
            consumed.append(self)

        def read(self, k=-1):
            b = self.f.read(k)
            self.n += len(b)
            return b

        def __getattr__(self, a):
            return getattr(self.f, a)

    monkeypatch.setattr(ing, "open_binary", lambda p, threads=1: Counting(real_open(p, threads=0)))
    cols = {c: INTERIM["chartevents"][c] for c in ("icustay_id", "itemid", "charttime", "valuenum")}
    it = ing.stream_batches(path, cols, block_size=64 << 10, use_threads=False)
    first = next(it)
    assert first.schema.names == list(cols) and first.schema.field("itemid").type == pa.int32()
    assert consumed[0].n < size / 4                     # lazily: one block in, not the file
    sizes = [first.num_rows] + [b.num_rows for b in it]
    assert sum(sizes) == n and len(sizes) > 10 and max(sizes) < n / 5


def test_resolve_source_errors(tmp_path):
    with pytest.raises(ConfigError, match="source.path"):
        resolve_source("mimic", None)
    with pytest.raises(ConfigError, match="not a directory"):
        resolve_source("mimic", str(tmp_path / "nope"))
    with pytest.raises(InputError, match="MIMIC-III demo not found"):
        resolve_source("demo", str(tmp_path), demo_out=tmp_path / "d")


from tests.mimic.conftest import BASE_ROWS  # noqa: E402

BASE_CE = BASE_ROWS["chartevents"][0]


def test_dictionary_mismatch_stops_ingest_and_label_drift_is_counted(make_source, demo_dir, tmp_path):
    src = make_source()
    di = pd.read_csv(demo_dir / "D_ITEMS.csv.gz")
    (src / "D_ITEMS.csv.gz").unlink()
    drift = di.copy()
    drift.loc[drift.ITEMID == 211, "LABEL"] = "Pulse"
    drift.to_csv(src / "D_ITEMS.csv.gz", index=False)
    rep = ing.ingest(src, tmp_path / "a", progress=False)
    assert rep["dictionary"]["label_drift"] == ["ITEMID 211: concept map says 'Heart Rate', dictionary says 'Pulse'"]
    wrong = di.copy()
    wrong.loc[wrong.ITEMID == 30047, "LINKSTO"] = "inputevents_mv"
    wrong.to_csv(src / "D_ITEMS.csv.gz", index=False)
    with pytest.raises(InputError, match="ITEMID 30047 .* read from inputevents_cv but D_ITEMS LINKSTO is inputevents_mv"):
        ing.ingest(src, tmp_path / "b", progress=False, missing_items="warn")    # a wrong table is always fatal
    assert not (tmp_path / "b").exists()
    # an item absent from the dictionary: fatal by default, counted with missing_items="warn" (synthetic worlds)
    di[di.ITEMID != 211].to_csv(src / "D_ITEMS.csv.gz", index=False)
    with pytest.raises(InputError, match="ITEMID 211 .* not in D_ITEMS"):
        ing.ingest(src, tmp_path / "c", progress=False)
    rep = ing.ingest(src, tmp_path / "c", progress=False, missing_items="warn")
    assert len(rep["dictionary"]["missing_items"]) == 1 and "211" in rep["dictionary"]["missing_items"][0]


def test_truncated_gzip_is_named_and_nothing_is_written(make_source, tmp_path):
    rows = [dict(BASE_CE, charttime=f"2160-01-0{1 + i % 8} {i % 24:02d}:00:00", valuenum=str(i)) for i in range(5000)]
    src = make_source({"chartevents": rows})
    data = (src / "CHARTEVENTS.csv.gz").read_bytes()
    (src / "CHARTEVENTS.csv.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"CHARTEVENTS\.csv\.gz: table CHARTEVENTS: the file is truncated"):
        ing.ingest(src, tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o.*"))


@pytest.mark.parametrize("empty, needle", [
    (("prescriptions",), "PRESCRIPTIONS is empty: the cohort loses every ICU stay: no antibiotic, so the cohort "
                         "step 'with an antibiotic prescription' keeps none"),
    (("icustays",), "ICUSTAYS is empty: the cohort loses every ICU stay"),
    (("inputevents_cv", "inputevents_mv"), "INPUTEVENTS_CV and INPUTEVENTS_MV are empty: the cohort loses every fluid"),
])
def test_an_empty_table_the_recipe_needs_is_named_at_ingest(make_source, tmp_path, caplog, empty, needle):
    with caplog.at_level("WARNING", logger="adrl.mimic"):
        rep = ing.ingest(make_source({t: [] for t in empty}), tmp_path / "o", progress=False)
    assert any(needle in w for w in rep["warnings"]), rep["warnings"]
    assert needle in caplog.text
    assert ing.metrics_of(rep)["empty_tables"] == 1


def test_no_warning_when_one_input_database_is_absent(make_source, tmp_path):
    rep = ing.ingest(make_source(), tmp_path / "o", progress=False)      # INPUTEVENTS_CV is empty in BASE_ROWS
    assert rep["warnings"] == []
    # the written report holds no wall-clock fields (the returned one does, for the stage's timings file)
    written = (tmp_path / "o" / "ingest_report.json").read_text()
    assert "seconds" not in written and "rows_per_s" not in written and rep["seconds"] >= 0


def _demo_copy(demo_dir, dst, rename=str.lower, skip=()):
    """Symlinks to the demo's tables under other names (as PhysioNet packages it now: lower case)."""
    dst.mkdir()
    for p in demo_dir.iterdir():
        if p.name.endswith((".csv.gz", ".csv")) and p.name.split(".")[0] not in skip:
            (dst / rename(p.name)).symlink_to(p)
    return dst


def test_demo_with_lower_case_file_names_is_found(demo_dir, tmp_path):
    from adrl.mimic.source import assemble_demo, find_table

    low = _demo_copy(demo_dir, tmp_path / "lower")
    out = assemble_demo(low, tmp_path / "src", seed=0, n_stays=5)
    assert (out / "CHARTEVENTS.csv.gz").exists()
    for t in TABLES:
        assert find_table(out, t).exists(), t


def test_demo_missing_a_table_names_it(demo_dir, tmp_path):
    low = _demo_copy(demo_dir, tmp_path / "lower", skip=("ICUSTAYS",))
    with pytest.raises(InputError, match=r"lacks table\(s\) ICUSTAYS \("):
        resolve_source("demo", str(low), demo_out=tmp_path / "d")
    assert not (tmp_path / "d").exists()
