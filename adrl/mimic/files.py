"""Where a MIMIC-III table's file is in a source directory (shared by the source and the demo stand-in writer, so
neither imports the other)."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError


def find_table(root: str | os.PathLike, table: str) -> Path:
    """The file of ``table`` in ``root``: TABLE.csv.gz, TABLE.csv (or lower-case names); InputError if absent."""
    root = Path(root)
    stem = table.upper()
    for name in (f"{stem}.csv.gz", f"{stem}.csv", f"{table.lower()}.csv.gz", f"{table.lower()}.csv"):
        p = root / name
        if p.exists():
            return p
    raise InputError(f"{root / (stem + '.csv.gz')}: table {stem} not found in the source directory {root} "
                     f"(expected {stem}.csv.gz or {stem}.csv)")
