"""The two-node Ray cluster of tests/ray/cluster.py as a session fixture (skips with the reason where Ray cannot
start); its finaliser stops every process the cluster started, and fails if one is left."""
from __future__ import annotations

import pytest

from tests.ray.cluster import ClusterError, local_cluster


@pytest.fixture(scope="session")
def ray_cluster():
    try:
        import ray  # noqa: F401
    except ImportError:
        pytest.skip("Ray is not installed: `pip install 'adrl[ray]'` (make install does it)")
    cm = local_cluster()
    try:
        cluster = cm.__enter__()
    except ClusterError as e:
        pytest.skip(str(e))
    try:
        yield cluster
    finally:
        cm.__exit__(None, None, None)
