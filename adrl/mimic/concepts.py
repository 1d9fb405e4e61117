"""The concept map and the other clinical data files of adrl/mimic/facts (cohort.md sections 4, 5, A, B).

Every clinical fact (ITEMID, label, unit, conversion, plausible range, hold hours, dose factor, GSN code,
route, O2 device class) lives in a CSV under ``adrl/mimic/facts/`` with one provenance note per row;
this module only loads, validates and indexes them.

Files (all read once and cached; the loaders return copies):

- ``concepts.csv``: concept, itemid, table, dbsource, label, unit, valueuom_ok, conversion, range_lo,
  range_hi, range_lo_faithful, hold_h, hold_h_faithful, recipe (both|faithful|corrected), kind
  (numeric|text), sign, provenance. One row per (concept, itemid, table); an ITEMID may serve two
  concepts (467 is O2_device and mechvent evidence).
- ``fluids.csv`` (Appendix A.3), ``vasopressors.csv`` (5.2), ``vaso_rate_units.csv`` (5.2 units),
  ``antibiotics_gsn.csv`` (Appendix B), ``abx_routes.csv`` (non-systemic routes), ``o2_devices.csv`` (3.10.2).

``recipe`` says which recipe reads a row: ``both``; ``faithful`` (a reference defect, the ✗ rows); or
``corrected`` (the + rows). :func:`itemids_for_ingest` returns the union, so ingest never depends on
the cohort recipe.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError

DATA = Path(__file__).resolve().parent / "facts"

EVENT_TABLES = ("chartevents", "labevents", "inputevents_cv", "inputevents_mv", "outputevents", "procedureevents_mv")
RECIPES = ("both", "faithful", "corrected")

_SPECS: dict[str, dict] = {
    "concepts.csv": dict(
        dtype={"concept": str, "itemid": "int64", "table": str, "dbsource": str, "label": str, "unit": str,
               "valueuom_ok": str, "conversion": str, "range_lo": "float64", "range_hi": "float64",
               "range_lo_faithful": "float64", "hold_h": "float64", "hold_h_faithful": "float64", "recipe": str,
               "kind": str, "sign": "int64", "provenance": str}),
    "fluids.csv": dict(
        dtype={"itemid": "int64", "table": str, "dbsource": str, "label": str, "tonicity_faithful": "float64",
               "tonicity_corrected": "float64", "mannitol": bool, "bicarbonate": bool, "recipe": str, "provenance": str}),
    "vasopressors.csv": dict(
        dtype={"drug": str, "itemid": "int64", "table": str, "dbsource": str, "label": str,
               "factor_ai_clinician": "float64", "factor_mimic_code": "float64", "dose_basis": str, "recipe": str,
               "provenance": str}),
    "vaso_rate_units.csv": dict(
        dtype={"rateuom": str, "system": str, "basis": str, "divide_by_weight": bool, "per_hour": bool,
               "provenance": str}),
    "antibiotics_gsn.csv": dict(dtype={"gsn": str, "provenance": str}),
    "abx_routes.csv": dict(dtype={"route": str, "route_class": str, "provenance": str}),
    "o2_devices.csv": dict(dtype={"device": str, "ai_clinician_code": "int64", "class_faithful": str,
                                  "class_corrected": str, "provenance": str}),
}
_STR_FILL = ("unit", "valueuom_ok", "conversion", "class_corrected")


@functools.lru_cache(maxsize=None)
def _read(name: str, data_dir: str | None = None) -> pd.DataFrame:
    path = Path(data_dir) if data_dir else DATA
    path = path / name
    spec = _SPECS[name]["dtype"]
    if not path.exists():
        raise InputError(f"{path}: concept data file not found")
    try:
        df = pd.read_csv(path, dtype={c: (str if t is bool else t) for c, t in spec.items()}, keep_default_na=False,
                         na_values={c: [""] for c, t in spec.items() if t == "float64"})
    except (ValueError, TypeError) as e:
        raise InputError(f"{path}: cannot parse: {e}") from None
    missing = [c for c in spec if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
    for c, t in spec.items():
        if t is bool:
            low = df[c].str.strip().str.lower()
            bad = ~low.isin(["true", "false"])
            if bad.any():
                raise InputError(f"{path}: column {c}: expected True/False, got {df[c][bad].iloc[0]!r}")
            df[c] = low == "true"
    if "provenance" in df and (df["provenance"].str.strip() == "").any():
        raise InputError(f"{path}: every row needs a provenance note (row {int((df['provenance'].str.strip() == '').idxmax()) + 2})")
    if "table" in df:
        bad = ~df["table"].isin(EVENT_TABLES)
        if bad.any():
            raise InputError(f"{path}: column table: unknown table {df['table'][bad].iloc[0]!r}")
    if "recipe" in df:
        bad = ~df["recipe"].isin(RECIPES)
        if bad.any():
            raise InputError(f"{path}: column recipe: expected one of {RECIPES}, got {df['recipe'][bad].iloc[0]!r}")
    return df[list(spec)]


def load_concepts(recipe: str | None = None) -> pd.DataFrame:
    """The concept map; ``recipe`` = ``corrected`` / ``faithful`` keeps the rows that recipe reads (else all)."""
    df = _read("concepts.csv").copy()
    return select_recipe(df, recipe) if recipe else df


def select_recipe(df: pd.DataFrame, recipe: str | bool) -> pd.DataFrame:
    """Rows of a data file read by a recipe: ``both`` plus ``corrected`` (True) or ``faithful`` (False) rows.

    Accepts a fix flag (True = corrected behaviour) so a cohort can select per fix key.
    """
    if isinstance(recipe, bool):
        recipe = "corrected" if recipe else "faithful"
    if recipe not in ("corrected", "faithful"):
        raise ValueError(f"recipe must be corrected or faithful, got {recipe!r}")
    return df[df["recipe"].isin(["both", recipe])].reset_index(drop=True)


def load_fluids() -> pd.DataFrame:
    """Appendix A.3: itemid, table, dbsource, label, tonicity_faithful, tonicity_corrected (NaN = excluded), mannitol,
    bicarbonate, recipe, provenance."""
    return _read("fluids.csv").copy()


def load_vasopressors() -> pd.DataFrame:
    """Section 5.2: drug, itemid, table, dbsource, label, factor_ai_clinician, factor_mimic_code, dose_basis, recipe."""
    return _read("vasopressors.csv").copy()


def load_vaso_rate_units() -> pd.DataFrame:
    """Vasopressor rate units: rateuom (compare case-insensitively), system, basis, divide_by_weight, per_hour."""
    return _read("vaso_rate_units.csv").copy()


def antibiotic_gsns() -> frozenset[str]:
    """Appendix B: the 126 antibiotic GSN codes as six-character strings."""
    return frozenset(_read("antibiotics_gsn.csv")["gsn"])


def load_abx_routes() -> pd.DataFrame:
    """Non-systemic PRESCRIPTIONS.ROUTE values (route, route_class) dropped by the corrected recipe."""
    return _read("abx_routes.csv").copy()


def nonsystemic_routes() -> frozenset[str]:
    """Upper-case, stripped route strings the corrected recipe drops."""
    return frozenset(_read("abx_routes.csv")["route"].str.strip().str.upper())


def load_o2_devices() -> pd.DataFrame:
    """O2 device string -> class (cannula | mask | non_rebreather; empty = no flow-based estimate) per recipe.

    Match on ``device.strip().lower()``; unmapped strings are to be counted by the caller.
    """
    df = _read("o2_devices.csv").copy()
    df["key"] = df["device"].str.strip().str.lower()
    return df


def itemids_for_ingest() -> dict[str, np.ndarray]:
    """table -> sorted unique int32 ITEMIDs every recipe may read (concepts ∪ fluids ∪ vasopressors)."""
    parts = [_read("concepts.csv")[["table", "itemid"]], _read("fluids.csv")[["table", "itemid"]],
             _read("vasopressors.csv")[["table", "itemid"]]]
    allrows = pd.concat(parts, ignore_index=True)
    return {t: np.unique(allrows.loc[allrows["table"] == t, "itemid"].to_numpy()).astype(np.int32)
            for t in EVENT_TABLES}


def item_dictionary() -> pd.DataFrame:
    """Every (itemid, table, label, dbsource) the data files name, deduplicated, with the file that names it."""
    rows = []
    for name in ("concepts.csv", "fluids.csv", "vasopressors.csv"):
        d = _read(name)[["itemid", "table", "label", "dbsource"]].copy()
        d["file"] = name
        rows.append(d)
    return pd.concat(rows, ignore_index=True).drop_duplicates(["itemid", "table", "file"]).reset_index(drop=True)


@dataclass
class DictionaryCheck:
    """Result of checking the data files against D_ITEMS / D_LABITEMS (cohort.md 3.1)."""

    n_items: int = 0
    errors: list[str] = field(default_factory=list)        # wrong LINKSTO: always fatal
    missing: list[str] = field(default_factory=list)       # ITEMID absent from the dictionary: fatal unless allowed
    label_drift: list[str] = field(default_factory=list)   # label differs: a counted warning

    def raise_if_errors(self, where: str, missing_fatal: bool = True) -> None:
        bad = self.errors + (self.missing if missing_fatal else [])
        if bad:
            shown = "; ".join(bad[:10]) + (f"; ... ({len(bad)} in all)" if len(bad) > 10 else "")
            raise InputError(f"{where}: concept map does not match the dictionaries: {shown}")


def check_against_dictionaries(d_items: pd.DataFrame, d_labitems: pd.DataFrame) -> DictionaryCheck:
    """Check every ITEMID of the data files: it exists, its LINKSTO equals the table read (LABEVENTS items: in
    D_LABITEMS), and its label matches (case and surrounding blanks ignored). Columns: upper- or lower-case."""
    di = d_items.rename(columns=str.lower)
    dl = d_labitems.rename(columns=str.lower)
    for name, d, need in (("D_ITEMS", di, ("itemid", "label", "linksto")), ("D_LABITEMS", dl, ("itemid", "label"))):
        miss = [c for c in need if c not in d.columns]
        if miss:
            raise InputError(f"{name}: missing column(s) {', '.join(c.upper() for c in miss)}")
    di_map = di.assign(itemid=pd.to_numeric(di["itemid"])).drop_duplicates("itemid").set_index("itemid")
    dl_map = dl.assign(itemid=pd.to_numeric(dl["itemid"])).drop_duplicates("itemid").set_index("itemid")
    out = DictionaryCheck()
    items = item_dictionary().drop_duplicates(["itemid", "table"])
    out.n_items = len(items)
    for it, table, label, file in items[["itemid", "table", "label", "file"]].itertuples(index=False):
        if table == "labevents":
            if it not in dl_map.index:
                out.missing.append(f"{file}: ITEMID {it} ({label}) not in D_LABITEMS")
                continue
            got_label = dl_map.at[it, "label"]
        else:
            if it not in di_map.index:
                out.missing.append(f"{file}: ITEMID {it} ({label}) not in D_ITEMS")
                continue
            link = str(di_map.at[it, "linksto"]).strip().lower()
            if link != table:
                out.errors.append(f"{file}: ITEMID {it} ({label}) is read from {table} but D_ITEMS LINKSTO is {link}")
                continue
            got_label = di_map.at[it, "label"]
        if str(got_label).strip().lower() != str(label).strip().lower():
            out.label_drift.append(f"ITEMID {it}: concept map says {label!r}, dictionary says {got_label!r}")
    return out
