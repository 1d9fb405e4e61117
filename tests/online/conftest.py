import pytest

from adrl.online.env import dm_control_available


@pytest.fixture(scope="session")
def dm_control():
    """Skip (with the install command) where dm-control is missing."""
    if not dm_control_available():
        pytest.skip("dm-control is not installed: pip install -e '.[online]' (make test installs it)")
