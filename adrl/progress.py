"""Progress of long loops: a tqdm bar on a terminal, an INFO log line every few seconds anywhere else.

Off a terminal (``dvc repro`` piped to a file, CI, ``adrl repro > log``) a tqdm bar is either silent or a
stream of carriage returns; a log line every ``$ADRL_PROGRESS_SECONDS`` seconds (default 10) says what is
done, how fast and what is left::

    10:32:18 INFO adrl.rl: train: 5/18 runs (28%), 172 steps/s, 58 s elapsed, about 2.5 min left

The interval is an environment setting, not a parameter (changing it must not re-run a stage).
``enabled=False`` silences a loop entirely (the library's callers pass ``progress=False``).
"""
from __future__ import annotations

import logging
import os
import sys
import time
from typing import Iterable, Iterator

ENV_SECONDS = "ADRL_PROGRESS_SECONDS"
DEFAULT_SECONDS = 10.0


def interval() -> float:
    try:
        return max(0.0, float(os.environ.get(ENV_SECONDS, DEFAULT_SECONDS)))
    except ValueError:
        return DEFAULT_SECONDS


def on_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _duration(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


class Progress:
    """Iterate (or call :meth:`update`) and report progress; see the module docstring.

    ``unit``: what an item is ("runs", "epochs"); ``work``/``work_unit``: work per item for the rate (a
    training run of 2,000 steps: ``work=2000, work_unit="steps"`` gives steps/s instead of runs/s).
    ``set_postfix(**kv)`` adds the latest values (loss, best epoch) to the next line.
    """

    def __init__(self, iterable: Iterable | None = None, total: int | None = None, desc: str = "",
                 unit: str = "it", logger: logging.Logger | str | None = None, enabled: bool | None = None,
                 work: float = 1.0, work_unit: str | None = None, every: float | None = None):
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.desc, self.unit = total, desc, unit
        self.work, self.work_unit = work, work_unit
        self.log = logging.getLogger(logger) if isinstance(logger, str) or logger is None else logger
        self.every = interval() if every is None else every
        self.n = 0
        self.postfix: dict = {}
        self.t0 = self.last = time.monotonic()
        self.lines = 0
        self._started = 0
        self._logged_n = -1
        self.mode = "off" if enabled is False else ("bar" if on_terminal() else "log")
        self._bar = None
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=f" {unit}", leave=False, mininterval=1.0)

    # -- the loop
    def __iter__(self) -> Iterator:
        if self.iterable is None:
            raise TypeError("Progress: nothing to iterate (pass an iterable, or call update())")
        try:
            for item in self.iterable:
                self._started = self.n + 1  # a `break` in the body still counts this item as done
                yield item
                self.update()
        finally:
            self.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def set_postfix(self, **kv) -> None:
        self.postfix = kv
        if self._bar is not None:
            self._bar.set_postfix(**kv, refresh=False)

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.mode == "log":
            self.tick()

    def tick(self) -> None:
        """Log a line if the interval has passed (also call it while waiting for work done elsewhere)."""
        if self.mode != "log":
            return
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self.lines += 1
            self._logged_n = self.n
            self.log.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        el = now - self.t0
        done = f"{self.n:,}/{self.total:,} {self.unit}" if self.total else f"{self.n:,} {self.unit}"
        if self.total:
            done += f" ({100 * self.n / self.total:.0f}%)"
        parts = [f"{self.desc}: {done}" if self.desc else done]
        if el > 0 and self.n:
            rate = self.n * self.work / el
            parts.append(f"{rate:,.3g} {self.work_unit or self.unit}/s" if rate < 100 else
                         f"{rate:,.0f} {self.work_unit or self.unit}/s")
        parts += [f"{k.replace('_', ' ')} {v}" for k, v in self.postfix.items()]
        parts.append(f"{_duration(el)} elapsed")
        if self.total and 0 < self.n < self.total:
            parts.append(f"about {_duration(el / self.n * (self.total - self.n))} left")
        return ", ".join(parts)

    def close(self) -> None:
        self.n = max(self.n, self._started)
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.mode == "log" and self.lines and self.n != self._logged_n:
            self.log.info("%s", self.line())  # a closing line only for loops that reported progress
        self.mode = "off" if self.mode == "log" else self.mode


def track(iterable: Iterable, desc: str = "", **kw) -> Progress:
    """``for x in track(xs, "encode: AIS", unit="epochs", logger=log): ...``"""
    return Progress(iterable, desc=desc, **kw)
