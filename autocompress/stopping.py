"""Stopping a search or a worker cleanly: Ctrl-C (SIGINT) or SIGTERM becomes `Stopped`, raised where the main
thread is. The trial in flight ends failed and is queued again, MLflow runs end KILLED, the CLI prints one line
saying how to resume and exits 130 (SIGINT) or 143 (SIGTERM).

`Stopped` is a BaseException, so that the handlers of a trial's own errors (`except Exception`, Optuna's
`catch=(Exception,)`) let it through. After the first signal, SIGTERM is ignored and SIGINT is back to Python's
default (a second Ctrl-C interrupts the clean-up itself).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .tracking import Tracker


class Stopped(BaseException):
    """A search or worker was asked to stop by a signal; `resume` says how to go on (set by who knows)."""

    def __init__(self, signum: int, resume: str = ""):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.resume = resume

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """For the block, SIGINT and SIGTERM raise `Stopped` in the main thread; the handlers are restored after."""
    previous = {s: signal.getsignal(s) for s in SIGNALS}

    def handler(signum: int, _frame) -> None:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Stopped(signum)

    for s in SIGNALS:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def ended_if_stopped(tracker: Tracker, run: str | None) -> Iterator[None]:
    """End MLflow run `run` as KILLED when the block is stopped by a signal (and let `Stopped` go on)."""
    try:
        yield
    except Stopped:
        tracker.end(run, "KILLED")
        raise
