"""Atomic writes: an interrupted stage never leaves a half-written file that a later stage trusts.

Everything is written to a temporary name in the same directory, then renamed into place.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it to ``path``, on error remove it.

    Works for files and directories (the caller creates whichever it needs at the yielded path).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(path)
    # The folder is made inside the try (not by tempfile.mkdtemp before it), and its removal survives one
    # interruption: a SIGTERM, which the stages turn into SystemExit, can land anywhere, including the moment the
    # folder is made or the cleanup after a finished write (CI once left one, killing the stage just after a write).
    tmp: Path | None = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        try:
            tmp.mkdir(mode=0o700)
        except FileExistsError:   # another writer drew the same name: its folder is not ours to remove
            tmp = None
            raise
        target = tmp / path.name
        yield target
        if not target.exists():
            raise FileNotFoundError(f"atomic write of {path}: nothing was written")
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        os.replace(target, path)
    finally:
        if tmp is not None:
            try:
                shutil.rmtree(tmp, ignore_errors=True)
            except BaseException:   # interrupted during the cleanup: finish it, then let the interruption go on
                shutil.rmtree(tmp, ignore_errors=True)
                raise


def remove_stale_tmp(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary folders an interrupted write of ``path`` left (``.<name>.XXXXXXXX.tmp`` beside it).

    A killed stage cannot clean up after itself; the next write of the same output does. Returns what it removed.
    """
    import re

    path = Path(path)
    pat = re.compile(rf"^\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp$")
    gone = []
    if path.parent.is_dir():
        for p in path.parent.iterdir():
            if pat.match(p.name) and p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
                gone.append(p)
    return gone


TIMING_KEYS = frozenset({"seconds", "seconds_per_epoch", "train_seconds", "fit_seconds", "steps_per_s", "sweep_seconds",
                         "rows_per_s"})


def without_timings(obj: Any, keys: frozenset[str] = TIMING_KEYS) -> Any:
    """``obj`` without wall-clock fields (in nested dicts and lists too). Outputs written without them are
    reproducible byte for byte; the timings go to reports/timings/ and MLflow instead."""
    if isinstance(obj, dict):
        return {k: without_timings(v, keys) for k, v in obj.items() if k not in keys}
    if isinstance(obj, list):
        return [without_timings(v, keys) for v in obj]
    return obj


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def write_parquet(path: str | os.PathLike, table) -> None:
    """Write a pyarrow Table or pandas DataFrame atomically (zstd, deterministic)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def _json_default(o: Any):
    try:
        import numpy as np

        if isinstance(o, np.integer):
            return int(o)
        if isinstance(o, np.floating):
            return float(o)
        if isinstance(o, np.bool_):
            return bool(o)
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
