"""What the online stages share: online/params.yaml instead of params.yaml, clean errors (exit 2)."""
from __future__ import annotations

import logging
import os
import sys
import time
from typing import Callable

from adrl import tracking
from adrl.errors import AdrlError
from adrl.online.params import Online, load_online
from pipeline._common import setup_logging

log = logging.getLogger("adrl.online")


def run_online_stage(name: str, fn: Callable[[Online], None], profile: str | None = None) -> None:
    """``profile``: overrides online.profile (outside DVC only)."""
    setup_logging()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MUJOCO_GL", "disable")
    tracking.quiet_env()
    t0 = time.time()
    try:
        fn(load_online(profile=profile))
    except AdrlError as e:
        print(f"adrl {name}: error: {e}", file=sys.stderr)
        sys.exit(2)
    log.info("%s done in %.1f s", name, time.time() - t0)
