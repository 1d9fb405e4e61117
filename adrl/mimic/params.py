"""params.yaml block `ingest`."""
from __future__ import annotations

from pydantic import Field

from ..params_base import Section


class IngestParams(Section):
    block_size_mb: int = Field(16, ge=1, le=1024, description="pyarrow CSV block size: bounds ingest memory")
    progress: bool = True
