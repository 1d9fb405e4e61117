"""Streaming ingest: MIMIC-III v1.4 CSV tables -> typed Parquet part files of the concept map's rows.

Each table is read block by block with pyarrow's streaming CSV reader, fed by an ISA-L inflater running in a
background thread (``isal.igzip_threaded``), with explicit column types (adrl/mimic/schema.py INTERIM) and only
the needed columns. Event tables keep the ITEMIDs of :func:`adrl.mimic.concepts.itemids_for_ingest` (the union
of the faithful and corrected recipes, so no cohort parameter ever re-reads the CSVs); PRESCRIPTIONS keeps the
antibiotic GSNs. Kept rows are buffered up to ``part_rows`` and written as
``<out>/<table>/part-NNNNN.parquet``; memory is bounded by the block size and ``part_rows``, never by the
table size.

Every row read is accounted for in ``<out>/ingest_report.json``: rows_read = rows_kept + sum(dropped), with the
drop reasons ``malformed_row`` (wrong number of fields), ``type_error`` (a value that does not parse as its
column's type; per column in ``type_errors_by_column``), ``missing_key:<column>`` and ``not_concept_item`` /
``not_antibiotic_gsn``. Rows the cohort judges (CHARTEVENTS ERROR = 1, MetaVision "Rewritten", rows without
ICUSTAY_ID) are kept and counted under ``flags_kept`` / ``nulls_kept``.

A clean file is read on the fast path (types converted by the CSV reader). If a value fails to convert, the
table is re-read in tolerant mode (all columns as text, converted and validated per row), so bad rows are
counted and named; if more than ``max_bad_fraction`` of a column's values are bad, the column has the wrong
type and ingest stops with an InputError naming the file and column. The whole output directory is written
under a temporary name and renamed at the end (adrl.io.atomic_path).
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..errors import InputError
from ..io import atomic_path, without_timings, write_json
from . import concepts
from .schema import INTERIM, interim_schema
from .source import TABLES, find_table, header_map, open_binary

log = logging.getLogger("adrl.mimic")

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class TableSpec:
    """How one source table is filtered: ``filter`` column (itemid | gsn | None) and required non-null keys.

    A key written ``a|b`` is satisfied when either column is present (MICROBIOLOGYEVENTS CHARTDATE | CHARTTIME).
    """

    filter: str | None = None
    keys: tuple[str, ...] = ()
    flags: tuple[tuple[str, str, object], ...] = ()   # (name, column, value) counted among kept rows


SPECS: dict[str, TableSpec] = {
    "patients": TableSpec(keys=("subject_id",)),
    "admissions": TableSpec(keys=("subject_id", "hadm_id")),
    "icustays": TableSpec(keys=("subject_id", "icustay_id")),
    "chartevents": TableSpec("itemid", ("charttime",), (("error_1", "error", 1),)),
    "labevents": TableSpec("itemid", ("charttime",)),
    "microbiologyevents": TableSpec(keys=("subject_id", "chartdate|charttime")),
    "prescriptions": TableSpec("gsn", ("startdate",)),
    "inputevents_cv": TableSpec("itemid", ("charttime",)),
    "inputevents_mv": TableSpec("itemid", ("starttime",), (("rewritten", "statusdescription", "Rewritten"),)),
    "outputevents": TableSpec("itemid", ("charttime",), (("iserror_1", "iserror", 1),)),
    "procedureevents_mv": TableSpec("itemid", ("starttime",)),
}


class _NeedsTolerantMode(Exception):
    pass


@dataclass
class TableStats:
    table: str
    file: str
    mode: str = "typed"
    rows_read: int = 0
    rows_kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    type_errors_by_column: dict[str, int] = field(default_factory=dict)
    malformed_fields: dict[str, int] = field(default_factory=dict)   # "<n> fields (expected <m>)" -> rows
    nulls_kept: dict[str, int] = field(default_factory=dict)
    flags_kept: dict[str, int] = field(default_factory=dict)
    parts: int = 0
    bytes: int = 0
    seconds: float = 0.0

    def drop(self, reason: str, n: int) -> None:
        if n:
            self.dropped[reason] = self.dropped.get(reason, 0) + int(n)

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["rows_per_s"] = round(self.rows_read / self.seconds) if self.seconds > 0 else None
        d["seconds"] = round(self.seconds, 3)
        return d


# ---------------------------------------------------------------------------------------------------------------
# reading


def stream_batches(path: str | os.PathLike, columns: dict[str, pa.DataType], *, block_size: int = 4 << 20,
                   on_malformed=None, use_threads: bool = True) -> Iterator[pa.RecordBatch]:
    """Yield record batches of ``path`` (one per CSV block), columns renamed to the keys of ``columns`` (lower case).

    ``columns``: interim name -> arrow type; the source header may be upper- or lower-case. Only these columns are
    converted. ``on_malformed(text)`` is called for a row with the wrong number of fields (it is skipped). Memory is
    bounded by ``block_size`` (a few blocks in flight), whatever the file size.
    """
    hm = header_map(path, [c.upper() for c in columns])
    src = [hm[c.upper()] for c in columns]
    types = {s: t for s, t in zip(src, columns.values())}

    def handler(row):
        if on_malformed is not None:
            on_malformed(row)
        return "skip"

    stream = open_binary(path)
    try:
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(block_size=block_size, use_threads=use_threads),
            parse_options=pacsv.ParseOptions(invalid_row_handler=handler),
            convert_options=pacsv.ConvertOptions(column_types=types, include_columns=src, null_values=[""],
                                                 strings_can_be_null=True, quoted_strings_can_be_null=True))
        names = list(columns)
        for batch in reader:
            yield batch.rename_columns(names)
    finally:
        stream.close()


_INT_RE = r"^\s*[+-]?\d+\s*$"
_FLOAT_RE = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
_INT_BOUNDS = {pa.int8(): (-128, 127), pa.int16(): (-32768, 32767), pa.int32(): (-2**31, 2**31 - 1)}


def convert_text_column(s: pa.Array, typ: pa.DataType) -> tuple[pa.Array, pa.Array]:
    """Convert a string column to ``typ`` row by row: (converted, bad) where bad marks non-null values that do not
    parse (they become null). Timestamps: ``YYYY-MM-DD HH:MM:SS`` or ``YYYY-MM-DD``."""
    if pa.types.is_string(typ):
        return s, pa.array(np.zeros(len(s), bool))
    present = pc.is_valid(s)
    if pa.types.is_timestamp(typ):
        t = pc.strptime(s, format=TIME_FORMAT, unit="s", error_is_null=True)
        d = pc.strptime(s, format="%Y-%m-%d", unit="s", error_is_null=True)
        out = pc.coalesce(t, d).cast(typ)
    elif pa.types.is_integer(typ):
        ok = pc.fill_null(pc.match_substring_regex(s, _INT_RE), False)
        v = pc.cast(pc.if_else(ok, pc.utf8_trim_whitespace(s), pa.scalar(None, pa.string())), pa.int64())
        if typ in _INT_BOUNDS:
            lo, hi = _INT_BOUNDS[typ]
            inr = pc.fill_null(pc.and_(pc.greater_equal(v, lo), pc.less_equal(v, hi)), False)
            v = pc.if_else(inr, v, pa.scalar(None, pa.int64()))
        out = v.cast(typ)
    elif pa.types.is_floating(typ):
        ok = pc.fill_null(pc.match_substring_regex(s, _FLOAT_RE), False)
        out = pc.cast(pc.if_else(ok, pc.utf8_trim_whitespace(s), pa.scalar(None, pa.string())), typ)
    else:  # pragma: no cover - the interim schemas use only the types above
        raise TypeError(f"unsupported interim type {typ}")
    bad = pc.and_(present, pc.invert(pc.is_valid(out)))
    return out, bad


# ---------------------------------------------------------------------------------------------------------------
# one table


class _PartWriter:
    """Buffers kept batches and writes part-NNNNN.parquet files of about ``part_rows`` rows.

    Parts are encoded and written by one background thread (pyarrow releases the GIL), overlapping the CSV parse;
    at most one part is being written while the next fills, so memory stays bounded by about two parts.
    """

    def __init__(self, out_dir: Path, schema: pa.Schema, part_rows: int):
        from concurrent.futures import ThreadPoolExecutor

        self.dir, self.schema, self.part_rows = out_dir, schema, part_rows
        self.dir.mkdir(parents=True, exist_ok=True)
        self.buf: list[pa.RecordBatch] = []
        self.n = 0
        self.parts = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="adrl-parquet")
        self._pending = None

    def add(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            self.buf.append(batch)
            self.n += batch.num_rows
            if self.n >= self.part_rows:
                self.flush()

    def _wait(self) -> None:
        if self._pending is not None:
            fut, self._pending = self._pending, None
            fut.result()

    def flush(self, force: bool = False) -> None:
        if not self.buf and not (force and self.parts == 0):
            return
        t = pa.Table.from_batches(self.buf, schema=self.schema)
        path = self.dir / f"part-{self.parts:05d}.parquet"
        self._wait()
        strings = [f.name for f in self.schema if pa.types.is_string(f.type)]
        # dictionary-encode the text columns only, no statistics (parts are not sorted): ~5 % less ingest CPU
        self._pending = self._pool.submit(pq.write_table, t, path, compression="zstd", use_dictionary=strings,
                                          write_statistics=False)
        self.parts += 1
        self.buf, self.n = [], 0

    def close(self) -> None:
        """Wait for the last part (re-raising a write error) and stop the writer thread."""
        try:
            self._wait()
        finally:
            self._pool.shutdown(wait=True)


def _filter_batch(batch: pa.RecordBatch, table: str, spec: TableSpec, keep_values: pa.Array | None,
                  st: TableStats) -> pa.RecordBatch:
    if spec.filter is not None:
        col = batch.column(spec.filter)
        if spec.filter == "gsn":
            col = pc.utf8_trim_whitespace(col)
            batch = batch.set_column(batch.schema.get_field_index("gsn"), "gsn", col)
        st.drop(f"missing_key:{spec.filter}", col.null_count)
        keep = pc.is_in(col, value_set=keep_values)
        before = batch.num_rows - col.null_count
        batch = batch.filter(keep)
        st.drop("not_concept_item" if spec.filter == "itemid" else "not_antibiotic_gsn", before - batch.num_rows)
    for key in spec.keys:
        if "|" in key:
            cols = key.split("|")
            ok = pc.is_valid(batch.column(cols[0]))
            for c in cols[1:]:
                ok = pc.or_(ok, pc.is_valid(batch.column(c)))
            n_bad = batch.num_rows - pc.sum(ok).as_py() if batch.num_rows else 0
            if n_bad:
                batch = batch.filter(ok)
        else:
            n_bad = batch.column(key).null_count
            if n_bad:
                batch = batch.filter(pc.is_valid(batch.column(key)))
        st.drop(f"missing_key:{key}", n_bad)
    return batch


def ingest_table(path: Path, table: str, out_dir: Path, *, block_size: int, part_rows: int,
                 keep_values: pa.Array | None, max_bad_fraction: float, progress: bool = False,
                 force_tolerant: bool = False) -> TableStats:
    """Stream one source table into ``out_dir/<table>/``; returns its accounting."""
    if not force_tolerant:
        try:
            return _ingest_table(path, table, out_dir, block_size, part_rows, keep_values, max_bad_fraction,
                                 progress, tolerant=False)
        except _NeedsTolerantMode as e:
            log.warning("%s: %s; re-reading in tolerant mode (bad values are counted and dropped)", path.name, e)
            shutil.rmtree(out_dir / table, ignore_errors=True)
    return _ingest_table(path, table, out_dir, block_size, part_rows, keep_values, max_bad_fraction, progress,
                         tolerant=True)


def _ingest_table(path, table, out_dir, block_size, part_rows, keep_values, max_bad_fraction, progress, tolerant):
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    spec = SPECS[table]
    schema = interim_schema(table)
    st = TableStats(table=table, file=path.name, mode="tolerant" if tolerant else "typed", bytes=path.stat().st_size)
    malformed = _Malformed()
    read_types = {c: (pa.string() if tolerant else t) for c, t in INTERIM[table].items()}
    writer = _PartWriter(out_dir / table, schema, part_rows)
    bar = tqdm(desc=f"ingest {path.name}", unit=" rows", unit_scale=True, disable=None if progress else True,
               mininterval=1.0)
    try:
        batches = stream_batches(path, read_types, block_size=block_size, on_malformed=malformed)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except pa.ArrowInvalid as e:
                if not tolerant and "conversion error" in str(e).lower():
                    raise _NeedsTolerantMode(_column_in_message(str(e), path)) from None
                raise InputError(f"{path}: cannot parse: {_arrow_reason(str(e))}") from None
            except (EOFError, OSError, pa.ArrowException) as e:
                # a truncated .gz (EOFError from the inflater), a corrupt stream, an I/O error
                kind = "truncated" if isinstance(e, EOFError) or "end-of-stream" in str(e) else "corrupt or unreadable"
                raise InputError(f"{path}: table {table.upper()}: the file is {kind} ({type(e).__name__} after "
                                 f"{st.rows_read:,} rows were read); replace it with a complete copy") from None
            n = batch.num_rows
            st.rows_read += n
            bar.update(n)
            if tolerant:
                batch = _convert_tolerant(batch, schema, st)
            batch = _filter_batch(batch, table, spec, keep_values, st)
            for name, col, val in spec.flags:
                c = batch.column(col)
                hit = pc.sum(pc.equal(c, pa.scalar(val, c.type))).as_py() if batch.num_rows else 0
                if hit:
                    st.flags_kept[name] = st.flags_kept.get(name, 0) + int(hit)
            for c in batch.schema.names:
                nn = batch.column(c).null_count
                if nn:
                    st.nulls_kept[c] = st.nulls_kept.get(c, 0) + nn
            st.rows_kept += batch.num_rows
            writer.add(batch)
        writer.flush(force=True)
    finally:
        bar.close()
        writer.close()
        if "batches" in locals():
            batches.close()
    st.rows_read += malformed.n
    st.drop("malformed_row", malformed.n)
    if malformed.n:
        # counts and field counts only: a row's values (ids, times, results) never reach a report or a log
        st.malformed_fields = dict(malformed.by_fields)
        log.warning("%s: %d malformed row(s) (wrong number of fields: %s) skipped and counted",
                    path.name, malformed.n, ", ".join(f"{k}: {v}" for k, v in malformed.by_fields.items()))
    _check_fractions(path, st, max_bad_fraction)
    st.parts = writer.parts
    st.seconds = time.perf_counter() - t0
    return st


class _Malformed:
    """Counts rows with the wrong number of fields (called by the CSV reader) by their field count. The row's
    text is never kept: it holds a patient's ids, times and values."""

    def __init__(self):
        self.n, self.by_fields = 0, {}

    def __call__(self, row) -> None:
        self.n += 1
        key = f"{row.actual_columns} fields (expected {row.expected_columns})"
        self.by_fields[key] = self.by_fields.get(key, 0) + 1


def _arrow_reason(msg: str) -> str:
    """pyarrow's CSV error without the row text or value it quotes (they are patient data)."""
    import re

    m = re.search(r"Expected (\d+) columns?, got (\d+)", msg)
    if m:
        return f"a row has {m.group(2)} fields, expected {m.group(1)}"
    m = re.search(r"conversion error to (\S+)", msg, re.IGNORECASE)
    if m:
        return f"a value does not convert to {m.group(1).rstrip(':')}"
    m = re.search(r"column #(\d+)", msg)
    return "CSV parse error" + (f" in column #{m.group(1)}" if m else "")


def _column_in_message(msg: str, path: Path) -> str:
    """Name the column of a pyarrow conversion error ("In CSV column #4: ...": #4 counts the file's columns)."""
    import re

    from .source import read_header

    m = re.search(r"column #(\d+)", msg)
    reason = _arrow_reason(msg)            # never the offending value itself
    if m:
        header = read_header(path)
        i = int(m.group(1))
        if i < len(header):
            return f"column {header[i].upper()}: {reason}"
    return reason


def _convert_tolerant(batch: pa.RecordBatch, schema: pa.Schema, st: TableStats) -> pa.RecordBatch:
    arrays, any_bad = [], None
    for f in schema:
        out, bad = convert_text_column(batch.column(f.name), f.type)
        nb = pc.sum(bad).as_py() or 0
        if nb:
            key = f.name.upper()
            st.type_errors_by_column[key] = st.type_errors_by_column.get(key, 0) + nb   # counts, never values
            any_bad = bad if any_bad is None else pc.or_(any_bad, bad)
        arrays.append(out)
    typed = pa.RecordBatch.from_arrays(arrays, schema=schema)
    if any_bad is not None:
        n_bad = pc.sum(any_bad).as_py()
        st.drop("type_error", n_bad)
        typed = typed.filter(pc.invert(any_bad))
    return typed


def _check_fractions(path: Path, st: TableStats, max_bad_fraction: float) -> None:
    n = max(st.rows_read, 1)
    for col, nb in st.type_errors_by_column.items():
        if nb / n > max_bad_fraction:
            typ = INTERIM[st.table][col.lower()]
            raise InputError(f"{path}: column {col}: {nb} of {st.rows_read} values do not parse as {typ}; "
                             f"wrong column type? (ingest.max_bad_fraction = {max_bad_fraction})")
    nm = st.dropped.get("malformed_row", 0)
    if nm / n > max_bad_fraction:
        fields = ", ".join(f"{k}: {v}" for k, v in st.malformed_fields.items())
        raise InputError(f"{path}: {nm} of {st.rows_read} rows are unparseable (wrong number of fields: {fields}) "
                         f"(ingest.max_bad_fraction = {max_bad_fraction})")
    if st.type_errors_by_column:
        log.warning("%s: %d row(s) with unparseable values dropped and counted: %s", path.name,
                    st.dropped.get("type_error", 0), st.type_errors_by_column)


# ---------------------------------------------------------------------------------------------------------------
# the whole source

# What the cohort recipe loses when a table keeps no row (a warning at ingest names the table and this).
# INPUTEVENTS_CV / _MV are judged together (a copy may hold one database only); PROCEDUREEVENTS_MV is optional.
EMPTY_TABLE_EFFECT = {
    "patients": "every ICU stay: no age, sex or death date ('age >= ...' keeps no stay)",
    "admissions": "every ICU stay: no admission, hospital outcome or age ('age >= ...' keeps no stay)",
    "icustays": "every ICU stay: the first cohort step 'ICU stays in ICUSTAYS' keeps none",
    "prescriptions": "every ICU stay: no antibiotic, so the cohort step 'with an antibiotic prescription' "
                     "keeps none",
    "microbiologyevents": "the cultures of MICROBIOLOGYEVENTS: 'with an antibiotic and a culture' keeps only "
                          "stays with a culture charted in CHARTEVENTS or PROCEDUREEVENTS_MV",
    "chartevents": "vital signs, GCS and ventilation: SOFA stays low ('septic ...' keeps few or no stays) and the "
                   "charted observations of every state are missing",
    "labevents": "every lab observation and the lab components of SOFA",
    "outputevents": "urine output: the renal SOFA component and the urine observations",
    "inputevents": "every fluid and vasopressor (INPUTEVENTS_CV and INPUTEVENTS_MV): every action is 'none'",
}


def empty_table_warnings(files: dict[str, dict]) -> list[str]:
    """One message per table the recipe needs that kept no row, naming the table and what it will empty."""
    out = []

    def kept(t):
        return files.get(t, {}).get("rows_kept", 1)

    def msg(t, label):
        read = sum(files[x]["rows_read"] for x in t)
        one = len(t) == 1
        how = ("is empty" if one else "are empty") if read == 0 else \
            f"kept none of {'its' if one else 'their'} {read:,} rows"
        return f"{label} {how}: the cohort loses {EMPTY_TABLE_EFFECT[t[0] if len(t) == 1 else 'inputevents']}"

    for t in EMPTY_TABLE_EFFECT:
        if t == "inputevents":
            both = [x for x in ("inputevents_cv", "inputevents_mv") if x in files]
            if both and all(kept(x) == 0 for x in both):
                out.append(msg(both, " and ".join(x.upper() for x in both)))
        elif t in files and kept(t) == 0:
            out.append(msg([t], t.upper()))
    return out


def read_small_table(path: Path) -> "pa.Table":
    """Read a small CSV (dictionaries) whole, every column as text, headers upper-cased."""
    with open_binary(path, threads=0) as f:
        t = pacsv.read_csv(f, convert_options=pacsv.ConvertOptions(
            column_types={}, null_values=[""], strings_can_be_null=True),
            read_options=pacsv.ReadOptions(use_threads=False))
    t = t.rename_columns([c.strip().strip('"').upper() for c in t.column_names])
    return t.cast(pa.schema([(c, pa.string()) for c in t.column_names]))


def dictionary_check(source_dir: Path, missing_items: str = "error") -> concepts.DictionaryCheck:
    """Check the concept files against the source's D_ITEMS / D_LABITEMS (cohort.md 3.1): a wrong table is an
    InputError; an item absent from the dictionary is one too unless ``missing_items="warn"`` (a synthetic world
    may write only the items it charts), then it is counted; a label drift is a counted warning."""
    di_path, dl_path = find_table(source_dir, "d_items"), find_table(source_dir, "d_labitems")
    di, dl = read_small_table(di_path).to_pandas(), read_small_table(dl_path).to_pandas()
    for name, d, p in (("D_ITEMS", di, di_path), ("D_LABITEMS", dl, dl_path)):
        need = ["ITEMID", "LABEL"] + (["LINKSTO"] if name == "D_ITEMS" else [])
        miss = [c for c in need if c not in d.columns]
        if miss:
            raise InputError(f"{p}: missing column(s) {', '.join(miss)}")
    chk = concepts.check_against_dictionaries(di, dl)
    if missing_items not in ("error", "warn"):
        raise ValueError(f"missing_items must be error or warn, got {missing_items!r}")
    chk.raise_if_errors(f"{di_path.parent}/D_ITEMS, D_LABITEMS", missing_fatal=missing_items == "error")
    for w in chk.label_drift:
        log.warning("label drift: %s", w)
    if chk.missing:
        log.warning("%d concept item(s) absent from the source dictionaries (counted): %s", len(chk.missing),
                    "; ".join(chk.missing[:5]))
    return chk


def ingest(source_dir: str | os.PathLike, out_dir: str | os.PathLike, *, block_size_mb: int = 4,
           part_rows: int = 1_000_000, max_bad_fraction: float = 0.01, progress: bool = True,
           tables: tuple[str, ...] = TABLES, missing_items: str = "error") -> dict:
    """Ingest every table of ``source_dir`` into ``out_dir`` (atomically); returns the ingest report (also written
    to ``out_dir/ingest_report.json``). ``missing_items``: see :func:`dictionary_check`."""
    t0 = time.perf_counter()
    source_dir, out_dir = Path(source_dir), Path(out_dir)
    if not source_dir.is_dir():
        raise InputError(f"{source_dir}: source directory not found")
    # everything that can be checked up front is checked before the first long read
    files = {t: find_table(source_dir, t) for t in tables}
    for t, p in files.items():
        header_map(p, [c.upper() for c in INTERIM[t]])
    chk = dictionary_check(source_dir, missing_items)
    item_ids = concepts.itemids_for_ingest()
    gsns = pa.array(sorted(concepts.antibiotic_gsns()), pa.string())
    block = int(block_size_mb) << 20
    report: dict = {"source": str(source_dir), "block_size_mb": block_size_mb, "part_rows": part_rows,
                    "concept_items": {t: int(len(v)) for t, v in item_ids.items()}, "antibiotic_gsns": len(gsns),
                    "dictionary": {"items_checked": chk.n_items, "label_drift": chk.label_drift,
                                   "missing_items": chk.missing}, "files": {}}
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        for t in tables:
            spec = SPECS[t]
            keep = (pa.array(item_ids[t], pa.int32()) if spec.filter == "itemid" else
                    gsns if spec.filter == "gsn" else None)
            st = ingest_table(files[t], t, tmp, block_size=block, part_rows=part_rows, keep_values=keep,
                              max_bad_fraction=max_bad_fraction, progress=progress)
            log.info("%s: %d rows read, %d kept, dropped %s in %.1f s (%.0f rows/s)", st.file, st.rows_read,
                     st.rows_kept, st.dropped or "nothing", st.seconds, st.rows_read / max(st.seconds, 1e-9))
            report["files"][t] = st.as_dict()
        report["warnings"] = empty_table_warnings(report["files"])
        for w in report["warnings"]:
            log.warning("%s", w)
        f = report["files"].values()
        report["totals"] = {"rows_read": sum(x["rows_read"] for x in f), "rows_kept": sum(x["rows_kept"] for x in f),
                            "rows_dropped": sum(sum(x["dropped"].values()) for x in f),
                            "bytes": sum(x["bytes"] for x in f)}
        report["seconds"] = round(time.perf_counter() - t0, 3)
        write_json(tmp / "ingest_report.json", without_timings(report))   # reproducible; timings: returned
    return report


def metrics_of(report: dict) -> dict:
    """Aggregate metrics of an ingest report (for reports/metrics/ingest.json and MLflow)."""
    m = {"seconds": report["seconds"], "label_drift": len(report["dictionary"]["label_drift"]),
         "missing_items": len(report["dictionary"].get("missing_items", [])),
         "empty_tables": len(report.get("warnings", []))}
    m.update({f"total_{k}": v for k, v in report["totals"].items()})
    for t, s in report["files"].items():
        m[f"{t}_rows_read"] = s["rows_read"]
        m[f"{t}_rows_kept"] = s["rows_kept"]
        m[f"{t}_rows_per_s"] = s["rows_per_s"] or 0
        m[f"{t}_dropped_parse"] = s["dropped"].get("malformed_row", 0) + s["dropped"].get("type_error", 0)
    return m


def read_interim(events_dir: str | os.PathLike, table: str, columns: list[str] | None = None,
                 filter=None) -> pa.Table:
    """Read an interim table in its exact INTERIM schema (Parquet stores timestamp[s] as ms; this casts back).

    ``columns`` / ``filter`` are passed to ``pyarrow.dataset`` (e.g. ``ds.field("itemid").isin([...])``).
    """
    import pyarrow.dataset as ds

    path = Path(events_dir) / table
    if not path.is_dir():
        raise InputError(f"{path}: interim table not found (run the ingest stage)")
    return ds.dataset(path, format="parquet", schema=interim_schema(table)).to_table(columns=columns, filter=filter)
