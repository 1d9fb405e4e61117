"""params.yaml block `report`."""
from __future__ import annotations

from pydantic import Field

from ..params_base import Section


class ReportParams(Section):
    title: str = "adrl: sepsis treatment policies"  # the report appends "from <source>"
    dpi: int = Field(100, ge=50, le=300, description="resolution of the report's figures")
