"""`adrl ui` stopped by SIGTERM stops the MLflow server and all its children: nothing keeps listening."""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT
from tests.procs import HAVE_PROC, alive as _alive, descendants as _descendants

pytestmark = pytest.mark.skipif(not HAVE_PROC, reason="needs Linux /proc")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM], ids=["SIGTERM"])
def test_ui_stopped_by_a_signal_stops_the_mlflow_server(tmp_path, sig):
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), ADRL_ROOT=str(tmp_path),
               MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
               ADRL_ARTIFACT_ROOT=(tmp_path / "mlartifacts").as_uri())
    ui = subprocess.Popen([sys.executable, "-m", "adrl.cli", "ui", "--port", str(port)], cwd=tmp_path, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tree: set[int] = set()
    try:
        deadline = time.time() + 240
        while time.time() < deadline and not _listening(port):
            assert ui.poll() is None, "adrl ui exited before the server listened"
            time.sleep(0.5)
        assert _listening(port), "the MLflow server never listened"
        tree = _descendants(ui.pid)
        assert tree, "the server runs as a child of adrl ui"
        ui.send_signal(sig)
        t0 = time.time()
        while time.time() - t0 < 10 and (any(_alive(p) for p in tree) or _listening(port)):
            time.sleep(0.2)
        assert not _listening(port), f"port {port} still listening 10 s after {sig.name}"
        assert not [p for p in tree if _alive(p)], f"children of adrl ui survived {sig.name}"
        assert ui.wait(timeout=10) == 128 + sig
    finally:
        for p in tree | {ui.pid}:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
