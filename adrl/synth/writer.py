"""Fast, deterministic writer of MIMIC-III v1.4 CSV tables (``<TABLE>.csv.gz``).

The dialect is the one of the credentialed database and of the demo: quoted upper-case header, quoted
strings, unquoted numbers and ``YYYY-MM-DD HH:MM:SS`` times, empty field = NULL, decimals without a
leading zero (``.95``). Rows are rendered by pyarrow.csv (quoting only string columns, which are
dictionary arrays where values repeat; no Python loop over rows) and compressed with ISA-L's igzip (gzip header without time stamp or file name, so the same data
give the same bytes).
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from isal import igzip

DATA = Path(__file__).resolve().parent / "data"
CHUNK_ROWS = 400_000


@lru_cache(maxsize=1)
def headers() -> dict[str, list[str]]:
    """Column order of every table the world writes (data/headers.json)."""
    h = json.loads((DATA / "headers.json").read_text())
    h.pop("_provenance", None)
    return h


class Col:
    """One column: kind is int | float | str | time | cat; values are numpy arrays."""

    __slots__ = ("kind", "values", "mask", "decimals", "cats")

    def __init__(self, kind: str, values, mask=None, decimals: int = 4, cats: Sequence[str] | None = None):
        self.kind, self.values, self.mask, self.decimals, self.cats = kind, values, mask, decimals, cats


def const(value, n: int) -> Col:
    """A column holding the same value (None = NULL) on every row."""
    if value is None:
        return Col("null", n)
    if isinstance(value, str):
        return Col("cat", np.zeros(n, np.int32), cats=[value])
    if isinstance(value, (int, np.integer)):
        return Col("int", np.full(n, value, np.int64))
    return Col("float", np.full(n, value, np.float64))


def _array(col: Col, lo: int, hi: int) -> pa.Array:
    """The arrow array of rows [lo, hi) of a column; pyarrow.csv renders it in the MIMIC dialect."""
    n = hi - lo
    k = col.kind
    if k == "null":
        return pa.nulls(n, pa.string())
    v = col.values[lo:hi]
    m = None if col.mask is None else np.asarray(col.mask[lo:hi], bool)
    if k == "int":
        return pa.array(np.asarray(v, np.int64), mask=m)
    if k == "float":
        x = np.round(np.asarray(v, np.float64), col.decimals)
        nan = np.isnan(x) if m is None else (m | np.isnan(x))
        x = np.where(nan, 0.0, x) + 0.0  # + 0.0 turns -0.0 into 0.0
        return pa.array(x, mask=nan)
    if k == "time":
        t = np.asarray(v).astype("datetime64[s]")
        nat = np.isnat(t) if m is None else (m | np.isnat(t))
        return pa.array(t, mask=nat)
    if k == "cat":
        codes = np.asarray(v, np.int32)
        neg = codes < 0
        if m is not None:
            neg = neg | m
        return pa.DictionaryArray.from_arrays(pa.array(codes, mask=neg), pa.array(list(col.cats), pa.string()))
    if k == "str":
        arr = v if isinstance(v, pa.Array) else pa.array(v, pa.string())
        if m is not None:
            arr = pc.if_else(pa.array(m), pa.nulls(n, pa.string()), arr)
        return arr
    raise ValueError(f"unknown column kind {k}")


_CSV = pacsv.WriteOptions(include_header=False, quoting_style="needed", batch_size=CHUNK_ROWS)


def _no_leading_zero(buf: bytes) -> bytes:
    """MIMIC writes decimals without a leading zero (.95, -.5). Numbers are unquoted, so a field starting
    with 0. follows a comma; quoted strings start with a quote and are untouched (our dictionaries hold no
    ',0.' inside a string: checked in write_table)."""
    buf = buf.replace(b",0.", b",.")
    return buf.replace(b",-0.", b",-.") if b",-0." in buf else buf


class TableWriter:
    """Append chunks of rows of one table to ``path`` (gzip, no time stamp: same rows, same bytes)."""

    def __init__(self, path: Path, table: str):
        self.names = headers()[table]
        self.table = table
        self.rows = 0
        self._raw = open(path, "wb")
        self._gz = igzip.IGzipFile(filename="", mode="wb", fileobj=self._raw, compresslevel=1, mtime=0)
        self._gz.write((",".join(f'"{c}"' for c in self.names) + "\n").encode())

    def write(self, cols: Mapping[str, Col], n: int) -> int:
        missing = [c for c in self.names if c not in cols]
        if missing:
            raise ValueError(f"{self.table}: no values for column(s) {missing}")
        for c in self.names:
            cats = cols[c].cats if cols[c].kind == "cat" else None
            if cats is not None and any(",0." in str(x) or ",-0." in str(x) for x in cats):
                raise ValueError(f"{self.table}.{c}: category value contains ',0.' (breaks the number format)")
        for lo in range(0, n, CHUNK_ROWS):
            hi = min(n, lo + CHUNK_ROWS)
            t = pa.table({c: _array(cols[c], lo, hi) for c in self.names})
            sink = pa.BufferOutputStream()
            pacsv.write_csv(t, sink, _CSV)
            self._gz.write(_no_leading_zero(sink.getvalue().to_pybytes()))
        self.rows += n
        return n

    def close(self):
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
