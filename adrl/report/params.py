"""params.yaml block `report`."""
from __future__ import annotations

from ..params_base import Section


class ReportParams(Section):
    title: str = "adrl: sepsis treatment policies from MIMIC-III"
