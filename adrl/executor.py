"""Where independent work units run: a local process pool, or tasks on a Ray cluster (params.yaml `executor`).

Every place that fans out work (the training sweep's groups and dynamics fits, the evaluate stage's simulator
roll-outs, the cells of `make experiments`, the online sweep's runs) submits units to an :class:`Executor` and takes
their results as they complete; the stage then writes them itself, so the outputs are the same whichever executor ran
the units. A unit that fails is run again up to
``executor.max_retries`` times, then the error names it; a unit that raises an :class:`~adrl.errors.AdrlError` (bad
input or parameters) is not retried. ``where()`` says how many units ran on which host / Ray node.

Ray is optional (``pip install 'adrl[ray]'``) and imported only when ``executor.kind`` is ``ray``.
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import Field, field_validator

from .errors import AdrlError, ConfigError
from .params_base import Section

log = logging.getLogger("adrl.executor")
RAY_PIN = "ray==2.60.0"   # the [ray] extra of pyproject.toml


class ExecutorParams(Section):
    """params.yaml block `executor` (online/params.yaml: `online.executor`)."""

    kind: Literal["local", "ray"] = "local"
    address: str | None = Field(None, description="ray only: null (a private Ray on this machine), auto (the "
                                                  "cluster `ray start` joined here) or host:port of a head node")
    max_retries: int = Field(2, ge=0, le=20, description="runs of a failed unit after its first (then it is named)")
    connect_timeout_s: float = Field(20.0, gt=0, le=600, description="ray: seconds to wait for the head node")
    cpus_per_unit: float = Field(1.0, gt=0, le=64, description="ray: CPUs a unit reserves on its node")

    @field_validator("address")
    @classmethod
    def _address(cls, v):
        if v is None or v == "auto":
            return v
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected null, auto or host:port (e.g. 10.0.0.5:6379), got {v!r}")
        return v


class UnitFailed(AdrlError):
    """A work unit failed on every attempt; the message names it."""


def make_executor(params: ExecutorParams | None, workers: int = 1, key: str = "executor", modules: tuple = (),
                  **pool) -> "Executor":
    """The executor of ``params`` (None: local). ``workers`` and ``pool`` (initializer, initargs, mp_context) set the
    local process pool; ``key`` is the params key named in errors (``executor``, ``online.executor``); ``modules``:
    package directories besides adrl that the units' code lives in (Ray ships them with the job)."""
    params = params or ExecutorParams()
    if params.kind == "ray":
        return RayExecutor(params, key, modules)
    return LocalExecutor(params, workers, **pool)


class Executor:
    """Submit units (``submit``), take results as they complete (``wait_any``); retries are bounded."""

    kind = "?"
    slots = 1   # units it runs at a time (local: its processes; ray: the cluster's CPUs / cpus_per_unit)

    def __init__(self, params: ExecutorParams):
        self.params = params
        self.placed: Counter[str] = Counter()   # units finished per host / node
        self.retried = 0
        self._units: dict[Any, tuple] = {}     # handle -> (tag, name, fn, args, attempt)

    # -- to implement -------------------------------------------------------------------------------------------
    def put(self, obj):
        """A handle to pass ``obj`` to many units (Ray: stored once in the object store)."""
        raise NotImplementedError

    def _start(self, fn: Callable, args: tuple):
        raise NotImplementedError

    def _wait(self) -> list:
        """Handles of finished units (at least one)."""
        raise NotImplementedError

    def _outcome(self, handle) -> tuple[Any, str]:
        """(result, where it ran); raises the unit's error."""
        raise NotImplementedError

    def close(self, cancel: bool = False) -> None:
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------------------------------
    def submit(self, tag: Any, name: str, fn: Callable, *args) -> None:
        """Run ``fn(*args)`` as a unit called ``name``; ``wait_any`` returns it with ``tag``."""
        self._units[self._start(fn, args)] = (tag, name, fn, args, 1)

    @property
    def pending(self) -> int:
        return len(self._units)

    def wait_any(self) -> list[tuple[Any, Any]]:
        """Block until at least one unit finishes; return [(tag, result)] of the finished ones (a failed unit is
        submitted again, up to max_retries times, and then raises UnitFailed naming it)."""
        while True:
            out = []
            for h in self._wait():
                tag, name, fn, args, attempt = self._units.pop(h)
                try:
                    result, where = self._outcome(h)
                except AdrlError:
                    raise   # bad input or parameters: the same on every attempt
                except BaseException as e:
                    if isinstance(e, (KeyboardInterrupt, SystemExit)):
                        raise
                    why = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
                    if attempt > self.params.max_retries or not self._can_retry(e):
                        raise UnitFailed(f"{self.kind} executor: unit {name} failed after {attempt} attempt(s) "
                                         f"(executor.max_retries = {self.params.max_retries}): {why}") from e
                    log.warning("%s executor: unit %s failed (attempt %d of %d), running it again: %s", self.kind,
                                name, attempt, self.params.max_retries + 1, why)
                    self.retried += 1
                    self._units[self._start(fn, args)] = (tag, name, fn, args, attempt + 1)
                    continue
                self.placed[where] += 1
                out.append((tag, result))
            if out or not self._units:
                return out

    def _can_retry(self, e: BaseException) -> bool:
        return True

    def where(self) -> str:
        """'N units on H hosts/nodes: <where> n, ...' (and the retries)."""
        n = sum(self.placed.values())
        parts = ", ".join(f"{w} {c}" for w, c in sorted(self.placed.items()))
        unit = "node" if self.kind == "ray" else "host"
        s = f"{n} unit(s) on {len(self.placed)} {unit}(s)" + (f": {parts}" if parts else "")
        return s + (f"; {self.retried} retried" if self.retried else "")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(cancel=exc_type is not None)


def die_with_parent(parent: int | None = None) -> None:
    """In a worker process, Linux: the kernel kills it when the process that started it dies, even by SIGKILL
    (PR_SET_PDEATHSIG); a worker whose parent ``parent`` died before this call exits at once."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)   # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def _start_worker(parent: int, init, initargs: tuple) -> None:
    """A local pool's initializer: the worker dies with the process that owns the pool, then the caller's own."""
    die_with_parent(parent)
    if init is not None:
        init(*initargs)


class LocalExecutor(Executor):
    """A process pool on this machine (``workers`` processes; pool kwargs: initializer, initargs, mp_context). Its
    workers die with the process that made it, however that ends (killed, crashed): none is left orphaned."""

    kind = "local"

    def __init__(self, params: ExecutorParams, workers: int, **pool):
        super().__init__(params)
        init, initargs = pool.pop("initializer", None), tuple(pool.pop("initargs", ()))
        self._pool = ProcessPoolExecutor(max_workers=workers, initializer=_start_worker,
                                         initargs=(os.getpid(), init, initargs), **pool)
        self.slots = max(1, int(workers))
        self._host = f"{socket.gethostname()} (local)"

    def put(self, obj):
        return obj

    def _start(self, fn, args):
        return self._pool.submit(fn, *args)

    def _wait(self):
        done, _ = wait(list(self._units), return_when=FIRST_COMPLETED)
        return list(done)

    def _outcome(self, handle):
        return handle.result(), self._host

    def _can_retry(self, e):
        return not isinstance(e, BrokenProcessPool)   # a killed worker breaks the whole pool: nothing to retry on

    def close(self, cancel: bool = False) -> None:
        if cancel:
            # a failed unit or an interrupt: stop the workers now (finished results are written already)
            procs = list((getattr(self._pool, "_processes", None) or {}).values())
            self._pool.shutdown(wait=False, cancel_futures=True)
            for proc in procs:
                proc.terminate()
        else:
            self._pool.shutdown(wait=True)


def _run_unit(fn, *args):
    """A Ray task: ``fn(*args)`` and the node it ran on."""
    import ray

    return fn(*args), ray.get_runtime_context().get_node_id()


def _import_ray(key: str):
    try:
        import ray
    except ImportError:
        raise ConfigError(f"{key}.kind is ray, but Ray is not installed in this environment; install it with "
                          f"`pip install 'adrl[ray]'` (which pins {RAY_PIN}), or set {key}.kind: local") from None
    return ray


def _code_dir(modules: tuple = ()) -> Path:
    """A temporary folder holding a copy of adrl's source and of ``modules`` (package directories): a Ray job's
    working_dir."""
    import adrl

    code = Path(tempfile.mkdtemp(prefix="adrl-ray-code-"))
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "results")
    for d in (Path(adrl.__file__).parent, *map(Path, modules)):
        shutil.copytree(d, code / d.name, ignore=skip)
    return code


def _answers(host: str, port: int, timeout: float) -> str | None:
    """None if something accepts TCP connections at host:port within ``timeout`` seconds, else why not."""
    deadline, why = time.monotonic() + timeout, "no answer"
    while True:
        try:
            with socket.create_connection((host, port), timeout=min(2.0, timeout)):
                return None
        except OSError as e:
            why = e.strerror or type(e).__name__
        if time.monotonic() >= deadline:
            return why
        time.sleep(0.5)


class RayExecutor(Executor):
    """Units as Ray tasks. ``executor.address``: null starts a private Ray on this machine; auto joins the cluster
    that `ray start` runs here; host:port connects to a head node (checked to answer within connect_timeout_s)."""

    kind = "ray"

    def __init__(self, params: ExecutorParams, key: str = "executor", modules: tuple = ()):
        super().__init__(params)
        ray = self.ray = _import_ray(key)
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        addr = params.address
        if addr not in (None, "auto"):
            host, _, port = addr.rpartition(":")
            why = _answers(host, int(port), params.connect_timeout_s)
            if why is not None:
                raise ConfigError(f"{key}.address: no Ray head node answers at {addr} ({why}, waited "
                                  f"{params.connect_timeout_s:g} s, {key}.connect_timeout_s); start one with "
                                  f"`ray start --head --port {port}` or fix the address")
        self._own = not ray.is_initialized()
        if self._own:
            code = _code_dir(modules)
            # the workers run this driver's adrl (and ``modules``), shipped once per job as the job's working_dir,
            # whatever is installed or checked out on their machines: with py_modules, Ray would put the driver's
            # current directory first on the workers' sys.path, so a worker machine with a checkout at the same path
            # would import its own (possibly other) adrl
            runtime_env = {"working_dir": str(code), "env_vars": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                                                                   "RAY_USAGE_STATS_ENABLED": "0"}}
            try:
                ray.init(address=addr, runtime_env=runtime_env, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.WARNING, configure_logging=False)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise ConfigError(f"{key}.address: cannot connect to Ray at {addr or 'a new local instance'}: "
                                  f"{str(e).strip().splitlines()[0]}") from None
            finally:
                shutil.rmtree(code, ignore_errors=True)   # uploaded by ray.init
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        self._node_ip = {n["NodeID"]: n.get("NodeManagerAddress", "?") for n in nodes}
        cpus = ray.cluster_resources().get("CPU", 0)
        self.slots = max(1, int(cpus // params.cpus_per_unit))
        log.info("ray executor: %s, %d node(s) alive, %g CPU(s)", addr or "a local instance", len(nodes), cpus)
        self._remote = ray.remote(_run_unit)
        self._put: list = []

    def put(self, obj):
        ref = self.ray.put(obj)
        self._put.append(ref)
        return ref

    def _start(self, fn, args):
        name = getattr(fn, "__name__", "unit")
        return self._remote.options(num_cpus=self.params.cpus_per_unit, max_retries=0, name=name).remote(fn, *args)

    def _wait(self):
        done, _ = self.ray.wait(list(self._units), num_returns=1)
        return done

    def _outcome(self, handle):
        try:
            result, node = self.ray.get(handle)
        except self.ray.exceptions.RayTaskError as e:
            cause = getattr(e, "cause", None)
            if isinstance(cause, AdrlError):
                raise cause from None
            raise
        if node not in self._node_ip:
            self._node_ip.update({n["NodeID"]: n.get("NodeManagerAddress", "?") for n in self.ray.nodes()})
        return result, f"{node[:8]} ({self._node_ip.get(node, '?')})"

    def close(self, cancel: bool = False) -> None:
        if cancel:
            for ref in list(self._units):
                try:
                    self.ray.cancel(ref, force=True)
                except Exception:   # noqa: BLE001 - already finished or its node is gone
                    pass
        self._units.clear()
        self._put.clear()
        if self._own:
            self.ray.shutdown()
