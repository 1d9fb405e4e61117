"""Fast, deterministic writer of MIMIC-III v1.4 CSV tables (``<TABLE>.csv.gz``).

The dialect is the one of the credentialed database and of the demo: quoted upper-case header, quoted
strings, unquoted numbers and ``YYYY-MM-DD HH:MM:SS`` times, empty field = NULL, decimals without a
leading zero (``.95``). Each field is rendered by Arrow compute kernels, byte for byte as pyarrow.csv
(quoting_style "needed") would render it: numbers and times cast to text, categories looked up in their
quoted text, fractions looked up in their text without the leading zero; the fields of a row are joined by
one Arrow kernel (no Python loop over rows, and the GIL is released, so batches render in parallel
threads). Columns known to repeat together (SUBJECT_ID,HADM_ID,ICUSTAY_ID of a stay) may be given as one
pre-rendered ``raw`` column. Batches are compressed in order with ISA-L's igzip (gzip header without time
stamp or file name), so the same data give the same bytes, however the batches were rendered.
"""
from __future__ import annotations

import json
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from isal import igzip

DATA = Path(__file__).resolve().parent / "facts"
CHUNK_ROWS = 200_000


@lru_cache(maxsize=1)
def headers() -> dict[str, list[str]]:
    """Column order of every table the world writes (facts/headers.json)."""
    h = json.loads((DATA / "headers.json").read_text())
    h.pop("_provenance", None)
    return h


class Col:
    """One column: kind is int | float | str | time | cat; values are numpy arrays."""

    __slots__ = ("kind", "values", "mask", "decimals", "cats", "span", "text")

    def __init__(self, kind: str, values, mask=None, decimals: int = 4, cats: Sequence[str] | None = None,
                 span: int = 1):
        self.kind, self.values, self.mask, self.decimals, self.cats = kind, values, mask, decimals, cats
        self.span = span
        self.text = None  # cat: the rendered categories, cached by _field


def raw(codes: np.ndarray, text, span: int) -> Col:
    """``span`` consecutive columns rendered at once: row i is ``text[codes[i]]``, the fields' CSV text
    already joined by commas (e.g. SUBJECT_ID,HADM_ID,ICUSTAY_ID per stay). The span - 1 following columns
    are given as :data:`SPANNED`."""
    return Col("raw", codes, cats=text, span=span)


SPANNED = Col("spanned", None)


def const(value, n: int) -> Col:
    """A column holding the same value (None = NULL) on every row."""
    if value is None:
        return Col("null", n)
    if isinstance(value, str):
        return Col("cat", np.zeros(n, np.int32), cats=[value])
    if isinstance(value, (int, np.integer)):
        return Col("int", np.full(n, value, np.int64))
    return Col("float", np.full(n, value, np.float64))


def _quote(values) -> list[str]:
    """pyarrow.csv's quoting of strings (quoting_style "needed"): always quoted, inner quotes doubled."""
    return ['"' + str(x).replace('"', '""') + '"' for x in values]


def _field(col: Col, lo: int, hi: int, flags: list, eol: bool = False) -> pa.Array | None:
    """The CSV text of rows [lo, hi) of a column as a string array (null = empty field; None = all empty),
    exactly as pyarrow.csv.write_csv(quoting_style="needed") renders it, plus the MIMIC number format
    (no leading zero: .95, -.5). flags[0] is set when the column is free text (quoted strings that may
    hold ',0.': the rendered buffer then gets the byte-level replacement of _no_leading_zero). ``eol``: the
    last field of the row, rendered with its line end (kinds cat and raw only)."""
    n = hi - lo
    k = col.kind
    if k == "null":
        return None
    v = col.values[lo:hi]
    if k == "raw":
        text = col.cats if isinstance(col.cats, pa.Array) else pa.array(list(col.cats), pa.string())
        if eol:
            text = pc.binary_join_element_wise(text, "", "\n")
        return text.take(pa.array(np.asarray(v, np.int32)))
    m = None if col.mask is None else np.asarray(col.mask[lo:hi], bool)
    if k == "int":
        return pc.cast(pa.array(np.asarray(v, np.int64), mask=m), pa.string())
    if k == "float":
        x = np.round(np.asarray(v, np.float64), col.decimals)
        nan = np.isnan(x) if m is None else (m | np.isnan(x))
        x = np.where(nan, 0.0, x) + 0.0  # + 0.0 turns -0.0 into 0.0
        txt = pc.cast(pa.array(x, mask=nan), pa.string())
        frac = ~nan & (np.abs(x) < 1) & (x != 0)
        if frac.any():  # 0.95 -> .95, -0.5 -> -.5: each distinct fraction formatted once, then looked up
            u, inv = np.unique(x[frac], return_inverse=True)
            short = [t.replace("0.", ".", 1) for t in pc.cast(pa.array(u), pa.string()).to_pylist()]
            where = np.zeros(n, np.int32)
            where[frac] = inv.reshape(-1)
            txt = pc.if_else(pa.array(frac), pa.array(short, pa.string()).take(pa.array(where)), txt)
        return txt
    if k == "time":
        t = np.asarray(v).astype("datetime64[s]")
        nat = np.isnat(t) if m is None else (m | np.isnat(t))
        return pc.cast(pa.array(t, mask=nat), pa.string())
    if k == "cat":
        codes = np.asarray(v, np.int32)
        neg = codes < 0
        if m is not None:
            neg = neg | m
        if col.text is None:  # the quoted categories, made once per column (its batches share them)
            col.text = pa.array(_quote(col.cats), pa.string())
        if eol:  # the row's end: "\n" after each value, and a NULL is the empty field + "\n"
            text = pa.concat_arrays([pc.binary_join_element_wise(col.text, "", "\n"), pa.array(["\n"])])
            return text.take(pa.array(np.where(neg, len(col.cats), codes).astype(np.int32)))
        return col.text.take(pa.array(codes, mask=neg))
    if k == "str":
        arr = v if isinstance(v, pa.Array) else pa.array(v, pa.string())
        flags[0] = flags[1] = True  # free text, quoted: may hold the patterns (small dictionary tables only)
        arr = pc.binary_join_element_wise('"', pc.replace_substring(arr, '"', '""'), '"', "")
        if m is not None:
            arr = pc.if_else(pa.array(m), pa.nulls(n, pa.string()), arr)
        return arr
    raise ValueError(f"unknown column kind {k}")


_JOIN = pc.JoinOptions(null_handling="replace", null_replacement="")


def _render(fields: list, n: int, eol_done: bool = False) -> pa.Buffer:
    """Join the rendered fields of n rows into CSV lines ("," between fields, a line end after each row,
    unless the last field already ends with it)."""
    empty = pa.scalar("", pa.string())
    cols = [empty if f is None else f for f in fields]
    if all(isinstance(c, pa.Scalar) for c in cols):
        cols[0] = pa.array([""] * n, pa.string())
    if not eol_done:
        cols[-1] = pc.binary_join_element_wise(cols[-1], empty, "\n", options=_JOIN)
    lines = pc.binary_join_element_wise(*cols, ",", options=_JOIN)
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    offs = np.frombuffer(lines.buffers()[1], np.int32, n + 1, lines.offset * 4)
    return lines.buffers()[2][int(offs[0]):int(offs[-1])]


def _no_leading_zero(buf: pa.Buffer, zero: bool = True, neg: bool = True):
    """MIMIC writes decimals without a leading zero (.95, -.5). Number fields are rendered so by _field;
    this byte-level replacement (',0.' -> ',.', ',-0.' -> ',-.') is kept for tables with free-text columns,
    whose quoted text may hold the pattern (the dictionary tables: small), so their bytes stay as before.
    It runs in Arrow's compute kernels (no copy to Python bytes, without holding the GIL)."""
    if not (zero or neg):
        return buf
    arr = pa.Array.from_buffers(pa.large_binary(), 1, [None, pa.py_buffer(np.array([0, buf.size], np.int64)), buf])
    if zero:
        arr = pc.replace_substring(arr, ",0.", ",.")
    if neg:
        arr = pc.replace_substring(arr, ",-0.", ",-.")
    offs = np.frombuffer(arr.buffers()[1], np.int64, 2)
    return arr.buffers()[2][int(offs[0]):int(offs[1])]


class TableWriter:
    """Append chunks of rows of one table to ``path`` (gzip, no time stamp: same rows, same bytes)."""

    def __init__(self, path: Path, table: str):
        self.names = headers()[table]
        self.table = table
        self.rows = 0
        self._raw = open(path, "wb")
        self._gz = igzip.IGzipFile(filename="", mode="wb", fileobj=self._raw, compresslevel=1, mtime=0)
        self._gz.write((",".join(f'"{c}"' for c in self.names) + "\n").encode())
        self._gzq: ThreadPoolExecutor | None = None

    def _plan(self, cols: Mapping[str, Col]) -> tuple[list[str], bool]:
        """Check the columns; the names rendered (a raw column stands for its span) and whether the last
        one carries the line end."""
        missing = [c for c in self.names if c not in cols]
        if missing:
            raise ValueError(f"{self.table}: no values for column(s) {missing}")
        for c in self.names:
            cats = cols[c].cats if cols[c].kind == "cat" else None
            if cats is not None and any(",0." in str(x) or ",-0." in str(x) for x in cats):
                raise ValueError(f"{self.table}.{c}: category value contains ',0.' (breaks the number format)")
        names, i = [], 0
        while i < len(self.names):
            c = cols[self.names[i]]
            if c.kind == "spanned" or i + c.span > len(self.names) or \
                    any(cols[x].kind != "spanned" for x in self.names[i + 1:i + c.span]):
                raise ValueError(f"{self.table}.{self.names[i]}: spanned columns must follow a raw column")
            names.append(self.names[i])
            i += c.span
        return names, cols[names[-1]].kind in ("cat", "raw")

    @staticmethod
    def _batch(cols, names, eol, lo, hi) -> pa.Buffer:
        """The CSV bytes of rows [lo, hi)."""
        flags = [False, False]
        fields = [_field(cols[c], lo, hi, flags, eol and c == names[-1]) for c in names]
        return _no_leading_zero(_render(fields, hi - lo, eol), *flags)

    def write(self, cols: Mapping[str, Col], n: int) -> int:
        """Append n rows (rendered and compressed in this thread)."""
        names, eol = self._plan(cols)
        for lo in range(0, n, CHUNK_ROWS):
            self._gz.write(self._batch(cols, names, eol, lo, min(n, lo + CHUNK_ROWS)))
        self.rows += n
        return n

    def write_async(self, cols: Mapping[str, Col], n: int, pool: Executor) -> list[Future]:
        """Append n rows: batches of CHUNK_ROWS rows are rendered on ``pool`` (in parallel; pyarrow releases
        the GIL) and compressed in order by this writer's own thread, so the file gets the same bytes as with
        :meth:`write`. Returns the futures of the compression steps (wait for them before writing again
        with :meth:`write` or closing)."""
        names, eol = self._plan(cols)
        if self._gzq is None:
            self._gzq = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"synth-gz-{self.table}")
        out = []
        for lo in range(0, n, CHUNK_ROWS):
            r = pool.submit(self._batch, cols, names, eol, lo, min(n, lo + CHUNK_ROWS))
            out.append(self._gzq.submit(lambda r=r: self._gz.write(r.result())))
        self.rows += n
        return out

    def close(self):
        if self._gzq is not None:
            self._gzq.shutdown(wait=True, cancel_futures=True)
        self._gz.close()
        self._raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_table(path: Path, table: str, cols: Mapping[str, Col], n: int) -> int:
    """Write ``n`` rows of ``table`` (columns in the official order) to ``path``; returns n."""
    with TableWriter(path, table) as w:
        w.write(cols, n)
    return n
