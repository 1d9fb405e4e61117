"""Fast, deterministic writer of MIMIC-III v1.4 CSV tables (``<TABLE>.csv.gz``).

The dialect is the one of the credentialed database and of the demo: quoted upper-case header, quoted
strings, unquoted numbers and ``YYYY-MM-DD HH:MM:SS`` times, empty field = NULL, decimals without a
leading zero (``.95``). Rows are formatted column-wise with pyarrow compute kernels (no Python loop over
rows) and compressed with ISA-L's igzip (gzip header without time stamp or file name, so the same data
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


def _quote(arr: pa.Array) -> pa.Array:
    arr = pc.replace_substring(arr, '"', '""')
    return pc.binary_join_element_wise('"', arr, '"', "")


def _format(col: Col, lo: int, hi: int) -> pa.Array:
    n = hi - lo
    k = col.kind
    if k == "null":
        return pa.nulls(n, pa.string())
    v = col.values[lo:hi]
    m = None if col.mask is None else np.asarray(col.mask[lo:hi], bool)
    if k == "int":
        return pc.cast(pa.array(np.asarray(v, np.int64), mask=m), pa.string())
    if k == "float":
        x = np.round(np.asarray(v, np.float64), col.decimals)
        nan = np.isnan(x) if m is None else (m | np.isnan(x))
        x = np.where(nan, 0.0, x) + 0.0  # + 0.0 turns -0.0 into 0.0
        s = pc.cast(pa.array(x, mask=nan), pa.string())
        return pc.replace_substring_regex(s, r"^(-?)0\.", r"\1.")
    if k == "time":
        t = np.asarray(v).astype("datetime64[s]")
        nat = np.isnat(t) if m is None else (m | np.isnat(t))
        return pc.strftime(pa.array(t, mask=nat), format="%Y-%m-%d %H:%M:%S")
    if k == "cat":
        codes = np.asarray(v, np.int32)
        neg = codes < 0
        if m is not None:
            neg = neg | m
        qd = _quote(pa.array(list(col.cats), pa.string()))
        return pc.take(qd, pa.array(np.where(neg, 0, codes), mask=neg))
    if k == "str":
        arr = v if isinstance(v, pa.Array) else pa.array(v, pa.string())
        if m is not None:
            arr = pc.if_else(pa.array(m), pa.nulls(n, pa.string()), arr)
        return _quote(arr)
    raise ValueError(f"unknown column kind {k}")


def write_table(path: Path, table: str, cols: Mapping[str, Col], n: int) -> int:
    """Write ``n`` rows of ``table`` (columns in the official order) to ``path``; returns n."""
    names = headers()[table]
    missing = [c for c in names if c not in cols]
    if missing:
        raise ValueError(f"{table}: no values for column(s) {missing}")
    with open(path, "wb") as raw, igzip.IGzipFile(filename="", mode="wb", fileobj=raw, compresslevel=1,
                                                  mtime=0) as gz:
        gz.write((",".join(f'"{c}"' for c in names) + "\n").encode())
        for lo in range(0, n, CHUNK_ROWS):
            hi = min(n, lo + CHUNK_ROWS)
            parts = [_format(cols[c], lo, hi) for c in names]
            row = pc.binary_join_element_wise(*parts, ",", null_handling="replace", null_replacement="")
            row = pc.binary_join_element_wise(row, "\n", "")
            bufs = row.buffers()
            offs = np.frombuffer(bufs[1], dtype=np.int32, count=len(row) + 1, offset=row.offset * 4)
            gz.write(memoryview(bufs[2])[offs[0]:offs[-1]])
    return n
