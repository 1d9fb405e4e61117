"""Process trees from /proc (Linux), for the tests that kill stages and servers."""
from __future__ import annotations

from pathlib import Path

HAVE_PROC = Path("/proc/self/stat").exists()


def stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state letter) of a process, None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[1]), fields[0]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def descendants(pid: int) -> set[int]:
    parent = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and (st := stat(int(p.name))) is not None:
            parent[int(p.name)] = st[0]
    out, frontier = set(), {pid}
    while frontier:
        frontier = {c for c, pp in parent.items() if pp in frontier} - out
        out |= frontier
    return out


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as gone)."""
    st = stat(pid)
    return st is not None and st[1] != "Z"
