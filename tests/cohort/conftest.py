import pytest

from adrl.cohort.mimic_adapter import build_spec
from adrl.cohort.params import CohortParams


@pytest.fixture(scope="session")
def corrected():
    p = CohortParams()
    return p, build_spec(p)


@pytest.fixture(scope="session")
def faithful():
    p = CohortParams(recipe="faithful")
    return p, build_spec(p)


@pytest.fixture(scope="session")
def demo_interim(demo_dir, tmp_path_factory):
    """The demo (real tables, symlinked) with the generated stand-in CHARTEVENTS (project data, not MIMIC data),
    ingested into a temporary interim directory."""
    from adrl.mimic.ingest import ingest
    from adrl.mimic.source import assemble_demo

    root = tmp_path_factory.mktemp("cohort_demo")
    src = assemble_demo(demo_dir, root / "src", seed=0)
    ingest(src, root / "events", block_size_mb=1, part_rows=20_000, progress=False)
    return root / "events"
