"""MIMIC-III v1.4 source directories: where the tables are, how their headers are spelled, how to stream them.

A source directory holds one file per table, ``<TABLE>.csv.gz`` or ``<TABLE>.csv`` (PhysioNet layout; a
lower-case file name is accepted too). Headers are mapped to upper case once, here: the later PhysioNet
packaging of the demo uses lower-case unquoted headers.

Three kinds (params.yaml ``source``): ``synthetic`` (data/raw/synthetic, written by the synthesize stage),
``mimic`` (a credentialed MIMIC-III v1.4 copy at ``source.path``), ``demo`` (the open demo, read in place,
plus a generated stand-in CHARTEVENTS; see :func:`assemble_demo`).
"""
from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path
from typing import BinaryIO

from ..errors import ConfigError, InputError
from .files import find_table  # noqa: F401  (part of this module's API)
from .. import paths

log = logging.getLogger("adrl.mimic")

# interim/source table name -> file stem (upper case)
TABLES = ("patients", "admissions", "icustays", "chartevents", "labevents", "microbiologyevents", "prescriptions",
          "inputevents_cv", "inputevents_mv", "outputevents", "procedureevents_mv")
DICTIONARIES = ("d_items", "d_labitems")
DEMO_OUT = Path("data/raw/demo")


def open_binary(path: str | os.PathLike, threads: int = 1) -> BinaryIO:
    """A binary stream of the file's CSV bytes: ISA-L inflate (a background thread) for .gz, plain read otherwise."""
    path = Path(path)
    if path.suffix == ".gz":
        if threads > 0:
            from isal import igzip_threaded

            return igzip_threaded.open(path, "rb", threads=1, block_size=1 << 20)
        from isal import igzip

        return igzip.open(path, "rb")
    return open(path, "rb", buffering=1 << 20)


def read_header(path: str | os.PathLike) -> list[str]:
    """The header fields of a source CSV as written (quotes removed, blanks stripped)."""
    try:
        with open_binary(path, threads=0) as f:
            line = f.readline(1 << 20)
    except (OSError, EOFError) as e:
        raise InputError(f"{path}: cannot read: {e}") from None
    if not line.strip():
        raise InputError(f"{path}: empty file (no header line)")
    text = line.decode("utf-8", errors="replace")
    fields = next(csv.reader(io.StringIO(text)))
    return [f.strip().strip('"').strip() for f in fields]


def header_map(path: str | os.PathLike, needed: list[str]) -> dict[str, str]:
    """UPPER-case column name -> the spelling in the file, for the ``needed`` upper-case columns.

    Missing columns stop with an InputError naming the file and the columns.
    """
    header = read_header(path)
    upper = {}
    for h in header:
        upper.setdefault(h.upper(), h)
    missing = [c for c in needed if c not in upper]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} (header has: {', '.join(header)})")
    return {c: upper[c] for c in needed}


def resolve_source(kind: str, path: str | None = None, *, demo_out: str | os.PathLike = DEMO_OUT,
                   demo_seed: int = 0) -> Path:
    """The directory to ingest from, for params.yaml ``source`` (kind, path).

    ``demo`` assembles ``demo_out`` (symlinks to the demo tables plus a generated CHARTEVENTS) and returns it.
    """
    if kind == "synthetic":
        root = Path(path) if path else paths.RAW_SYNTHETIC
        if not root.is_dir():
            raise InputError(f"{root}: synthetic source not found (run the synthesize stage first)")
        return root
    if kind == "mimic":
        if not path:
            raise ConfigError("source.path: required when source.kind is mimic (the MIMIC-III v1.4 directory)")
        root = Path(path).expanduser()
        if not root.is_dir():
            raise ConfigError(f"source.path: {root} is not a directory")
        return root
    if kind == "demo":
        demo = Path(path).expanduser() if path else paths.demo_dir()
        return assemble_demo(demo, demo_out, seed=demo_seed)
    raise ConfigError(f"source.kind: expected synthetic, mimic or demo, got {kind!r}")


def assemble_demo(demo_dir: str | os.PathLike, out_dir: str | os.PathLike, *, seed: int = 0,
                  n_stays: int | None = None) -> Path:
    """A source directory for the demo: a symlink to each demo table (never a copy) plus the generated
    stand-in CHARTEVENTS.csv.gz (adrl.mimic.demo_chartevents; project data, not MIMIC data). Written atomically.
    """
    from ..io import atomic_path
    from .demo_chartevents import write_demo_chartevents

    demo_dir = Path(demo_dir).resolve()
    if not demo_dir.is_dir():
        raise InputError(f"{demo_dir}: MIMIC-III demo not found (set ADRL_MIMIC_DEMO or source.path to the folder "
                         "holding its .csv.gz tables)")
    needed = [t for t in (*TABLES, *DICTIONARIES) if t != "chartevents"]   # CHARTEVENTS is generated
    missing = []
    for t in needed:
        try:
            find_table(demo_dir, t)
        except InputError:
            missing.append(t.upper())
    if len(missing) == len(needed):
        raise InputError(f"{demo_dir}: MIMIC-III demo not found: no MIMIC-III table there (set ADRL_MIMIC_DEMO or "
                         "source.path to the folder holding its .csv.gz tables)")
    if missing:
        raise InputError(f"{demo_dir}: the MIMIC-III demo lacks table(s) {', '.join(missing)} (looked for "
                         f"<TABLE>.csv.gz or .csv, upper- or lower-case names); set ADRL_MIMIC_DEMO or source.path "
                         "to the folder holding all its tables")
    out_dir = Path(out_dir)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        for p in sorted(demo_dir.iterdir()):
            if p.name.upper().startswith("CHARTEVENTS"):
                continue
            if p.name.endswith((".csv.gz", ".csv")):
                (tmp / p.name).symlink_to(p)
        write_demo_chartevents(demo_dir, tmp / "CHARTEVENTS.csv.gz", seed=seed, n_stays=n_stays)
    log.info("demo source assembled in %s (symlinks to %s + generated CHARTEVENTS)", out_dir, demo_dir)
    return out_dir
