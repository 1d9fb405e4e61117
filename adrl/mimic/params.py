"""params.yaml block `ingest`."""
from __future__ import annotations

from pydantic import Field

from ..params_base import Section


class IngestParams(Section):
    block_size_mb: int = Field(4, ge=1, le=1024, description="pyarrow CSV block size: bounds ingest memory (about "
                               "20 blocks are in flight; 4 MB reads as fast as 16 MB on 2 cores)")
    progress: bool = True
    part_rows: int = Field(1_000_000, ge=1000, description="rows per Parquet part file (kept rows are buffered up to "
                           "this many: with block_size_mb it bounds memory)")
    max_bad_fraction: float = Field(0.01, ge=0.0, le=1.0, description="a column with more unparseable values than this "
                                    "fraction of the file's rows has the wrong type: ingest stops naming it; fewer "
                                    "are dropped and counted")
