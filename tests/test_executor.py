"""params.yaml `executor`: bad settings are named; units are retried a bounded number of times and then named."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from adrl.config import validate_config
from adrl.errors import ConfigError, InputError
from adrl.executor import ExecutorParams, UnitFailed, make_executor
from adrl.online.params import validate_online


@pytest.mark.parametrize("raw, needle", [
    ({"executor": {"kind": "slurm"}}, "executor.kind: Input should be 'local' or 'ray'"),
    ({"executor": {"address": "head-node"}}, "executor.address: Value error, expected null, auto or host:port"),
    ({"executor": {"address": "10.0.0.5:99999"}}, "executor.address"),
    ({"executor": {"max_retries": -1}}, "executor.max_retries"),
    ({"executor": {"workers": 4}}, "executor.workers: unknown key; allowed keys here: kind, address"),
])
def test_bad_executor_settings_name_the_key(raw, needle):
    with pytest.raises(ConfigError) as e:
        validate_config(raw)
    assert needle in str(e.value)


def test_online_executor_is_validated_under_its_own_key():
    from tests.conftest import ROOT
    import yaml

    raw = yaml.safe_load((ROOT / "online" / "params.yaml").read_text())
    assert validate_online(raw).executor == ExecutorParams()
    raw["online"]["executor"] = {"kind": "dask"}
    with pytest.raises(ConfigError, match="online.executor.kind"):
        validate_online(raw)


def test_ray_chosen_but_not_installed_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)   # import ray -> ImportError
    with pytest.raises(ConfigError) as e:
        make_executor(ExecutorParams(kind="ray"), key="online.executor")
    msg = str(e.value)
    assert "online.executor.kind is ray, but Ray is not installed" in msg and "pip install 'adrl[ray]'" in msg


def test_an_address_that_does_not_answer_is_named_within_the_wait(tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'adrl[ray]'")
    from tests.ray.cluster import free_port

    addr = f"127.0.0.1:{free_port()}"   # nothing listens there
    t0 = time.monotonic()
    with pytest.raises(ConfigError) as e:
        make_executor(ExecutorParams(kind="ray", address=addr, connect_timeout_s=1))
    waited = time.monotonic() - t0
    assert f"executor.address: no Ray head node answers at {addr}" in str(e.value)
    assert waited < 30   # bounded by connect_timeout_s, not Ray's own minutes of retries


# ---- retries (the local pool; the Ray executor shares the logic: tests/ray) ------------------------------------
def flaky(marker: str, fails: int) -> str:
    """Fails the first ``fails`` calls (counted in a file), then returns 'ok'."""
    p = Path(marker)
    n = int(p.read_text()) if p.exists() else 0
    p.write_text(str(n + 1))
    if n < fails:
        raise RuntimeError(f"transient failure {n + 1}")
    return "ok"


def bad_input(marker: str) -> None:
    p = Path(marker)
    p.write_text(str(int(p.read_text()) + 1 if p.exists() else 1))
    raise InputError("states.parquet: column z_0 is missing")


def _run(fn, *args, retries=2):
    with make_executor(ExecutorParams(max_retries=retries), workers=1) as ex:
        ex.submit("t", "unit flaky-1", fn, *args)
        out = []
        while ex.pending:
            out += ex.wait_any()
        return out, ex


def test_a_failed_unit_is_run_again_and_then_succeeds(tmp_path):
    out, ex = _run(flaky, str(tmp_path / "n"), 2)
    assert out == [("t", "ok")] and ex.retried == 2
    assert (tmp_path / "n").read_text() == "3"
    assert ex.where().startswith("1 unit(s) on 1 host(s)") and ex.where().endswith("2 retried")


def test_a_unit_failing_every_attempt_is_named_after_max_retries(tmp_path):
    with pytest.raises(UnitFailed) as e:
        _run(flaky, str(tmp_path / "n"), 10, retries=1)
    assert "unit flaky-1 failed after 2 attempt(s) (executor.max_retries = 1): RuntimeError: transient failure 2" \
        in str(e.value)
    assert (tmp_path / "n").read_text() == "2"


def test_bad_input_is_not_retried(tmp_path):
    with pytest.raises(InputError, match="column z_0 is missing"):
        _run(bad_input, str(tmp_path / "n"))
    assert (tmp_path / "n").read_text() == "1"


def test_experiment_executor_settings_are_checked_before_any_world(monkeypatch):
    """benchmarks/exp_sample_efficiency.py: params.yaml's executor with --executor / --address on top; a bad value or
    Ray missing stops it with the key named (a SystemExit message, no traceback)."""
    from benchmarks.exp_sample_efficiency import executor_params

    assert executor_params(None, None) == ExecutorParams()   # params.yaml: local
    with pytest.raises(SystemExit, match="executor.address: Value error, expected null, auto or host:port"):
        executor_params("ray", "head-node")
    with pytest.raises(SystemExit, match="executor.kind: Input should be 'local' or 'ray'"):
        executor_params("dask", None)
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(SystemExit, match=r"executor.kind is ray, but Ray is not installed.*pip install 'adrl\[ray\]'"):
        executor_params("ray", "127.0.0.1:6379")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_local_workers_die_with_the_process_that_made_them(tmp_path):
    """A process holding a local executor is killed (SIGKILL: no handler, no cleanup runs) while its workers are
    busy: the workers go too, and none is left orphaned (the cells of `make experiments`, the online sweep)."""
    import os
    import signal
    import subprocess

    from tests.procs import alive

    script = tmp_path / "hold.py"
    script.write_text(
        "import multiprocessing as mp, sys, time\n"
        "from adrl.executor import ExecutorParams, make_executor\n"
        "if __name__ == '__main__':\n"
        "    with make_executor(ExecutorParams(), 2, mp_context=mp.get_context('spawn')) as ex:\n"
        "        for i in range(2):\n"
        "            ex.submit(('u', i), f'unit {i}', time.sleep, 120)\n"
        "        time.sleep(3)\n"
        "        print(' '.join(str(p.pid) for p in ex._pool._processes.values()), flush=True)\n"
        "        time.sleep(120)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        workers = [int(x) for x in proc.stdout.readline().split()]
        assert len(workers) == 2 and all(alive(w) for w in workers)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        t0 = time.time()
        while any(alive(w) for w in workers) and time.time() - t0 < 10:
            time.sleep(0.1)
        assert not any(alive(w) for w in workers), "a worker outlived the process that made it"
    finally:
        proc.kill()
        proc.wait()
