"""A real two-node Ray cluster on 127.0.0.1 (tests/ray and benchmarks/bench_ray.py).

Ray 2.60's `ray start` and `ray.init` replace 127.0.0.1 by the machine's outward address (and its servers then listen
on every interface), unless RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, which in turn refuses a second node. So the nodes are
started by `ray start` with that variable at 0 for every process (drivers, workers, agents: all on 127.0.0.1), and in
the `ray start` process itself, the second-node check allowed and 127.0.0.1 kept as given (NODE_CLI below). Every
server of the cluster then listens on 127.0.0.1 only (checked by test_cluster_listens_on_loopback_only).

Each node is started by `ray start` in a session of its own, which every process of that node stays in (Ray gives its
workers process groups of their own), so stopping the cluster signals exactly the processes it started, by pid, never
another Ray on the machine (`ray stop --force` would stop every Ray of the user). Usage statistics and the dashboard
are off; each node's object store is capped at 100 MB.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

STORE_BYTES = 100 * 2**20
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
os.environ.update(LOOPBACK_ENV)   # before this test process imports ray (it connects as the driver)
NODE_CLI = ("import ray._private.ray_constants as c, ray._private.services as s; c.ENABLE_RAY_CLUSTER = True; "
            "s.resolve_ip_for_localhost = lambda host: host; from ray.scripts.scripts import main; main()")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group_members(sid: int) -> list[int]:
    """Live processes of session ``sid`` (from /proc): a node's `ray start` runs in a new session, and every process
    of that node (GCS, raylet, agents, workers, whose process groups differ) stays in it."""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            raw = (p / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2:].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            out.append(int(p.name))
    return out


def listening(pids: list[int]) -> list[str]:
    """The local addresses (ip:port) of the TCP sockets that processes ``pids`` listen on (from /proc/net)."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    out = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:   # 0A: LISTEN
                raw, port = f[1].split(":")
                b = bytes.fromhex(raw)
                # /proc/net stores each 32-bit word in host (little-endian) order
                words = [b[i:i + 4][::-1] for i in range(0, len(b), 4)]
                ip = ".".join(map(str, words[-1])) if table == "tcp" or words[:3] == [b"\0" * 4, b"\0" * 4, b"\0\0\xff\xff"] \
                    else ":".join(w.hex() for w in words)
                out.append(f"{ip}:{int(port, 16)}")
    return out


def proc_name(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]).decode(errors="replace")
    except OSError:
        return ""


def stop_group(sid: int, grace: float = 3.0) -> None:
    """SIGTERM, then SIGKILL, to every process of session ``sid`` (by pid); wait until none is left."""
    for sig, wait_s in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        for pid in group_members(sid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + wait_s
        while time.time() < deadline and group_members(sid):
            time.sleep(0.2)
        if not group_members(sid):
            return


@dataclass
class Cluster:
    address: str
    temp_dir: str
    groups: dict[str, int] = field(default_factory=dict)   # node label -> session id (its `ray start` pid)

    def members(self, node: str) -> list[int]:
        return group_members(self.groups[node])

    def raylet(self, node: str) -> int:
        pids = [p for p in self.members(node) if proc_name(p).endswith("/raylet")]
        assert pids, f"no raylet in the process group of node {node}"
        return pids[0]

    def busy_worker(self, node: str, task_names: tuple[str, ...]) -> int | None:
        """A worker process of ``node`` running one of ``task_names`` now (Ray sets its title to ray::<task>)."""
        for p in self.members(node):
            if any(proc_name(p).startswith(f"ray::{t}") for t in task_names):
                return p
        return None


def _start(args: list[str], env: dict) -> tuple[int, str]:
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        stop_group(proc.pid)
        return proc.pid, "ray start did not finish within 120 s"
    return proc.pid, "" if proc.returncode == 0 else out[-2000:]


class ClusterError(RuntimeError):
    """Ray could not start here (the message says which node and why)."""


@contextmanager
def local_cluster(cpus_per_node: int = 1, store_bytes: int = STORE_BYTES):
    """A head node and a second node (``cpus_per_node`` CPUs each) on 127.0.0.1; every process stopped at exit.
    Raises ClusterError where Ray cannot start."""
    exe = [sys.executable, "-c", NODE_CLI]   # `ray`, keeping 127.0.0.1 (see above)
    env = {**os.environ, **LOOPBACK_ENV, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    temp_dir = tempfile.mkdtemp(prefix="adrlray")   # short: Ray's socket paths must fit 107 bytes
    port = free_port()
    cluster = Cluster(f"127.0.0.1:{port}", temp_dir)
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", str(cpus_per_node), "--object-store-memory",
              str(store_bytes), "--disable-usage-stats"]
    try:
        sid, err = _start([*exe, "start", "--head", "--port", str(port), "--include-dashboard=false",
                           "--dashboard-port", str(free_port()), "--temp-dir", temp_dir, *common], env)
        cluster.groups["head"] = sid
        if err:
            raise ClusterError(f"Ray cannot start a head node on 127.0.0.1 here: {err.strip().splitlines()[-1]}")
        sid, err = _start([*exe, "start", "--address", cluster.address, *common], env)
        cluster.groups["second"] = sid
        if err:
            raise ClusterError(f"Ray cannot start a second node on 127.0.0.1 here: {err.strip().splitlines()[-1]}")
        yield cluster
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        for sid in reversed(list(cluster.groups.values())):
            stop_group(sid)
        left = [p for g in cluster.groups.values() for p in group_members(g)]
        shutil.rmtree(temp_dir, ignore_errors=True)
        if left:
            raise RuntimeError(f"Ray processes left after stopping the cluster: {left}")
