"""Progress a person can follow, in a terminal and in a log file alike.

A tqdm bar redraws itself with carriage returns many times a second: in a terminal that is one
line, but written to a file (CI, ``nohup``, ``> log``) every redraw is kept, and a long run left
megabytes of bars in its log. So a bar is drawn only when standard error is a terminal; anywhere
else the same calls print one plain line every ``every`` percent of the work (and a last one at
the end), with the figures the bar would show.

Example::

    with progress(total=len(texts), desc="encoding", unit="text") as bar:
        for batch in batches:
            ...
            bar.update(len(batch))
"""

from __future__ import annotations

import sys
import time


def on_terminal() -> bool:
    """True when standard error is an interactive terminal (where a redrawn bar is one line)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


class PlainProgress:
    """The part of tqdm's interface alembert uses (``update``, ``set_postfix``, a context manager),
    printing ``desc: n/total unit (p%), rate, postfix`` lines instead of redrawing a bar."""

    def __init__(self, total: int | None, desc: str, unit: str = "it", initial: int = 0, every: float = 10.0):
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.step = max(1, int(total * every / 100)) if total else None
        self.next = initial + (self.step or 0)
        self.postfix: dict = {}
        self.start, self.start_n = time.perf_counter(), initial

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.step and self.n >= self.next and (self.total is None or self.n < self.total):
            self._line()
            while self.next <= self.n:
                self.next += self.step

    def set_postfix(self, values: dict | None = None, **kw) -> None:
        self.postfix = {**(values or {}), **kw}

    def close(self) -> None:
        if self.n > self.start_n or not self.total:
            self._line()
        self.start_n = self.n  # a second close prints nothing new

    def _line(self) -> None:
        seconds = time.perf_counter() - self.start
        rate = (self.n - self.start_n) / seconds if seconds > 0 else 0.0
        done = f"{self.n}/{self.total}" if self.total else str(self.n)
        share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        extra = "".join(f", {k} {v}" for k, v in self.postfix.items())
        print(f"{self.desc}: {done} {self.unit}{share}, {rate:.3g} {self.unit}/s{extra}", file=sys.stderr, flush=True)


def progress(total: int | None, desc: str, unit: str = "it", initial: int = 0, disable: bool = False):
    """A tqdm bar on a terminal, a :class:`PlainProgress` elsewhere; ``disable``: neither (a silent stand-in)."""
    if disable:
        return _Silent()
    if on_terminal():
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True)
    return PlainProgress(total, desc, unit, initial)


class _Silent:
    """What a disabled bar is: the same calls, no output (the other processes of a distributed run)."""

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, values: dict | None = None, **kw) -> None:
        pass

    def close(self) -> None:
        pass
