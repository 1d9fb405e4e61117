"""The fast CSV writer renders exactly what pyarrow.csv (quoting "needed") plus MIMIC's number format gives."""
import gzip

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest

from adrl.synth import writer as W


def _reference(arrays: dict) -> bytes:
    """The previous renderer: pyarrow.csv, then the byte-level leading-zero fix."""
    sink = pa.BufferOutputStream()
    pacsv.write_csv(pa.table(arrays), sink, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    return sink.getvalue().to_pybytes().replace(b",0.", b",.").replace(b",-0.", b",-.")


@pytest.fixture
def table(monkeypatch):
    """A table of every column kind, with NULLs, fractions, quotes and commas; small CHUNK_ROWS (several batches)."""
    rng = np.random.default_rng(0)
    n = 2500
    monkeypatch.setattr(W, "CHUNK_ROWS", 700)
    ints = rng.integers(-5, 10**6, n)
    imask = rng.random(n) < 0.1
    fl = np.concatenate([rng.normal(0, 2, n - 8), [-0.0, 1e-7, -1e-5, 0.00005, 12345678.9, np.nan, -0.5, 0.95]])
    fmask = rng.random(n) < 0.05
    t = 4102444800 + rng.integers(0, 10**9, n)
    tmask = rng.random(n) < 0.1
    cats = ['plain', 'with "quote"', "comma, inside", "-0.5", " 0  Alert"]
    codes = rng.integers(-1, len(cats), n).astype(np.int32)
    text = np.array(["a", 'say "x"', "x,0.5", "y,-0.25", "ok"], object)[rng.integers(0, 5, n)]
    smask = rng.random(n) < 0.1
    sid, hid = rng.integers(100, 999, 40), rng.integers(1000, 9999, 40)
    st = np.sort(rng.integers(0, 40, n))
    cols = {"ROW_ID": W.Col("int", np.arange(1, n + 1)), "A": W.Col("int", ints, mask=imask),
            "B": W.Col("float", fl, mask=fmask, decimals=4), "C": W.Col("time", t.astype("datetime64[s]"), mask=tmask),
            "D": W.Col("cat", codes, cats=cats), "E": W.Col("str", text, mask=smask), "F": W.const(None, n),
            "G": W.raw(st.astype(np.int32), [f"{a},{b}" for a, b in zip(sid, hid)], 2), "H": W.SPANNED,
            "I": W.Col("cat", codes[::-1].copy(), cats=cats)}
    ref = {"ROW_ID": pa.array(np.arange(1, n + 1)), "A": pa.array(ints, mask=imask)}
    x = np.round(fl, 4)
    nan = fmask | np.isnan(x)
    ref["B"] = pa.array(np.where(nan, 0.0, x) + 0.0, mask=nan)
    ref["C"] = pa.array(t.astype("datetime64[s]"), mask=tmask)
    ref["D"] = pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0), pa.array(cats))
    ref["E"] = pc.if_else(pa.array(smask), pa.nulls(n, pa.string()), pa.array(text, pa.string()))
    ref["F"] = pa.nulls(n, pa.string())
    ref["G"], ref["H"] = pa.array(sid[st]), pa.array(hid[st])
    ref["I"] = pa.DictionaryArray.from_arrays(pa.array(codes[::-1], mask=codes[::-1] < 0), pa.array(cats))
    return cols, ref, n


def _written(tmp_path, monkeypatch, names, cols, n, use_async):
    monkeypatch.setitem(W.headers(), "T", names)
    p = tmp_path / "T.csv.gz"
    with W.TableWriter(p, "T") as w:
        if use_async:
            from concurrent.futures import ThreadPoolExecutor
            with ThreadPoolExecutor(2) as pool:
                for f in w.write_async(cols, n, pool):
                    f.result()
        else:
            w.write(cols, n)
    body = gzip.decompress(p.read_bytes())
    head, _, rest = body.partition(b"\n")
    assert head.decode() == ",".join(f'"{c}"' for c in names)
    return rest


@pytest.mark.parametrize("use_async", [False, True])
def test_renderer_matches_pyarrow_csv(table, tmp_path, monkeypatch, use_async):
    cols, ref, n = table
    names = list(cols)
    got = _written(tmp_path, monkeypatch, names, cols, n, use_async)
    assert got == _reference(ref)
    assert b",0." not in got.replace(b",\"x,0.5\"", b"")  # numbers lose the leading zero
    # last column not a category (the line end is added by a join), no free text (no byte-level replacement)
    names2 = ["D", "B", "ROW_ID"]
    got2 = _written(tmp_path, monkeypatch, names2, cols, n, use_async)
    assert got2 == _reference({c: ref[c] for c in names2})


def test_spanned_column_without_raw_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setitem(W.headers(), "T", ["A", "B"])
    with W.TableWriter(tmp_path / "T.csv.gz", "T") as w:
        with pytest.raises(ValueError, match="T.B: spanned"):
            w.write({"A": W.const(1, 3), "B": W.SPANNED}, 3)


@pytest.mark.parametrize("m", [0, 1, 7, 5000])
def test_stay_time_order_equals_stable_lexsort(m):
    """tables._stay_time_order (one packed int64 key, plain sort) must give exactly the stable (stay, time)
    order, ties in original order, including times before INTIME and stays far apart in calendar time."""
    from adrl.synth.tables import _stay_time_order

    rng = np.random.default_rng(m)
    intime = rng.integers(0, 1 << 33, 40)
    st = rng.integers(0, 40, m)
    t = intime[st] + rng.integers(-3, 30, m) * 3600  # many ties (whole hours), some before INTIME
    assert np.array_equal(_stay_time_order(st, t, intime), np.lexsort((t, st)))
    far = intime * 0  # times relative to a wrong INTIME spread over 2^62 s: the fallback path, same order
    t2 = rng.integers(0, 1 << 62, m)
    assert np.array_equal(_stay_time_order(st, t2, far), np.lexsort((t2, st)))


def test_coded_text_columns_print_the_same_text():
    """Text columns coded part by part before the sort (tables._concat) stand for the same strings and NULLs."""
    from adrl.synth.tables import Coded, _cat, _concat

    parts = [{"valueuom": np.array(["mL", None, "mg"], object), "value": np.array([1.0, 2.0, 3.0])},
             {"valueuom": np.array([None, "mg", "%", "mL"], object), "value": np.array([4.0, 5.0, 6.0, 7.0])}]
    d = _concat(parts, ["valueuom", "value"])
    assert isinstance(d["valueuom"], Coded) and d["value"].tolist() == [1, 2, 3, 4, 5, 6, 7]
    col = _cat(d["valueuom"])
    back = [col.cats[c] if c >= 0 else None for c in col.values]
    assert back == ["mL", None, "mg", None, "mg", "%", "mL"]
