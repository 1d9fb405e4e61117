"""The synthetic hospital's item catalogue (facts/items.csv), antibiotics (facts/antibiotics.csv) and microbiology."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(__file__).resolve().parent / "facts"


@dataclass(frozen=True)
class ItemChoice:
    itemids: np.ndarray
    uoms: tuple
    scales: tuple
    weights: np.ndarray

    @cached_property
    def uom_array(self) -> np.ndarray:
        return np.array(self.uoms, object)

    @cached_property
    def scale_array(self) -> np.ndarray:
        return np.array(self.scales, object)

    def pick(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Index (into itemids/uoms/scales) of the item charting each of n rows, drawn by weight."""
        if len(self.itemids) == 1:
            return np.zeros(n, np.int64)
        return rng.choice(len(self.itemids), size=n, p=self.weights)


@lru_cache(maxsize=1)
def items() -> pd.DataFrame:
    return pd.read_csv(DATA / "items.csv", dtype={"sim_scale": str, "sim_uom": str}, keep_default_na=False)


def choice(var: str, system: str) -> ItemChoice:
    c = _choice(var, system)
    if c is None:
        raise KeyError(f"items.csv: no item charts {var!r} for system {system!r}")
    return c


@lru_cache(maxsize=1)
def _rows_by_var() -> dict:
    """{(sim_var, sim_system): row positions in items.csv order}: one grouping instead of a scan per variable."""
    df = items()
    return {k: np.asarray(v) for k, v in df.groupby(["sim_var", "sim_system"], sort=False).indices.items()}


@lru_cache(maxsize=None)
def _choice(var: str, system: str) -> ItemChoice | None:
    """The cached choice (None = no such item: charting asks for many of those, so misses are cached too)."""
    rows = _rows_by_var().get((var, system))
    if rows is None:
        return None
    sel = items().iloc[rows]
    w = sel.sim_weight.astype(float).to_numpy()
    return ItemChoice(sel.itemid.to_numpy(np.int64), tuple(sel.sim_uom), tuple(sel.sim_scale), w / w.sum())


@lru_cache(maxsize=None)
def irrelevant(system: str) -> pd.DataFrame:
    df = items()
    return df[(df.sim_var == "irrelevant") & (df.sim_system == system)].reset_index(drop=True)


@lru_cache(maxsize=1)
def antibiotics() -> pd.DataFrame:
    return pd.read_csv(DATA / "antibiotics.csv", dtype={"gsn": str}, keep_default_na=False)


@lru_cache(maxsize=1)
def other_drugs() -> pd.DataFrame:
    return pd.read_csv(DATA / "other_drugs.csv", dtype={"gsn": str}, keep_default_na=False)


@lru_cache(maxsize=1)
def organisms() -> pd.DataFrame:
    return pd.read_csv(DATA / "organisms.csv", keep_default_na=False)
