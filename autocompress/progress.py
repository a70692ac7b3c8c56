"""Progress on long work (teacher fine-tuning, the teacher's logits, each trial's training).

Library code asks for a bar and advances it; it never decides how progress looks:

    with progress(total, "teacher: fine-tuning") as bar:
        for ...:
            bar.advance(1, note="loss 0.4120")

`Progress` is that factory. Three of them:

* `no_progress`: shows nothing, the default.
* `LineProgress(log)`: plain lines through a `Log`, for logs, CI and worker processes: a line at every
  `every_pct` percent and whenever `every_s` seconds passed since the last one, and a closing line
  (done, or where it stopped). With an injected clock its output is deterministic.
* `TerminalProgress(console)`: a live tqdm bar on a terminal, replaced by the same closing line.

`Console` is the command line's `Log`: lines to stderr, with `console.progress` picking bars when
stderr is a terminal and plain lines otherwise. Functions that only take a `Log` get their progress
display from it with `progress_for(log)`: the console's own, plain lines for any other log, nothing for
`silent`.
"""

from __future__ import annotations

import math
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Protocol, Self, TextIO

from .log import Log, silent

Clock = Callable[[], float]


class Bar(Protocol):
    def advance(self, n: int = 1, note: str | None = None) -> None:
        """`n` more units are done; `note` (e.g. the recent loss) is shown beside the count."""


class Progress(Protocol):
    def __call__(self, total: int, what: str, unit: str = "step") -> AbstractContextManager[Bar]:
        """A bar for `total` units of work named `what` (e.g. "teacher: fine-tuning"), closed on exit."""


def duration(seconds: float) -> str:
    """A short human duration: 8s, 4m 05s, 1h 02m."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def _count(n: int, unit: str) -> str:
    return f"{n:,} {unit}" + ("" if n == 1 else "s")


class _NullBar:
    def advance(self, n: int = 1, note: str | None = None) -> None:
        pass


@contextmanager
def no_progress(total: int, what: str, unit: str = "step") -> Iterator[Bar]:
    """Shows nothing."""
    yield _NullBar()


class _Counter:
    """What every display shares: how much is done, since when, and the closing line."""

    def __init__(self, total: int, what: str, unit: str, clock: Clock):
        self.total, self.what, self.unit, self.clock = max(0, total), what, unit, clock
        self.done, self.note, self.started = 0, None, clock()

    def add(self, n: int, note: str | None) -> None:
        self.done = min(self.total, self.done + max(0, n)) if self.total else self.done + max(0, n)
        if note is not None:
            self.note = note

    @property
    def finished(self) -> bool:
        return self.total > 0 and self.done >= self.total

    def status(self) -> str:
        """e.g. "teacher: fine-tuning 150/600 steps (25%), 1m 12s elapsed, ~3m 36s left, loss 0.4123"."""
        elapsed = self.clock() - self.started
        line = f"{self.what} {self.done:,}/{_count(self.total, self.unit)}"
        if self.total:
            line += f" ({math.floor(100 * self.done / self.total)}%)"
        line += f", {duration(elapsed)} elapsed"
        if 0 < self.done < self.total:
            line += f", ~{duration(elapsed / self.done * (self.total - self.done))} left"
        return line + (f", {self.note}" if self.note else "")

    def closing(self) -> str | None:
        """The last line: done in how long, or where it stopped; None when nothing was done."""
        elapsed = duration(self.clock() - self.started)
        if self.finished:
            return f"{self.what} {_count(self.total, self.unit)} in {elapsed}" + (f", {self.note}" if self.note else "")
        if self.done == 0:
            return None
        return f"{self.what} stopped at {self.done:,}/{_count(self.total, self.unit)} after {elapsed}"


class _LineBar:
    def __init__(self, counter: _Counter, log: Log, every_pct: float, every_s: float):
        self.c, self.log, self.every_pct, self.every_s = counter, log, every_pct, every_s
        self.mark, self.last = 0, counter.started

    def advance(self, n: int = 1, note: str | None = None) -> None:
        c = self.c
        if c.finished:
            return
        c.add(n, note)
        if c.finished:
            return  # the closing line says it
        mark = math.floor(100 * c.done / (self.every_pct * c.total)) if c.total and self.every_pct > 0 else 0
        now = c.clock()
        if mark > self.mark or now - self.last >= self.every_s:
            self.mark, self.last = max(mark, self.mark), now
            self.log(c.status())


class LineProgress:
    """Plain progress lines through `log`: at every `every_pct` percent, whenever `every_s` seconds passed
    since the last line, and one closing line. `clock` (seconds, monotonic) can be injected in tests."""

    def __init__(self, log: Log, every_pct: float = 25, every_s: float = 30.0, clock: Clock = time.monotonic):
        self.log, self.every_pct, self.every_s, self.clock = log, every_pct, every_s, clock

    @contextmanager
    def __call__(self, total: int, what: str, unit: str = "step") -> Iterator[Bar]:
        counter = _Counter(total, what, unit, self.clock)
        try:
            yield _LineBar(counter, self.log, self.every_pct, self.every_s)
        finally:
            line = counter.closing()
            if line:
                self.log(line)


class _TqdmBar:
    def __init__(self, counter: _Counter, bar):
        self.c, self.bar = counter, bar

    def advance(self, n: int = 1, note: str | None = None) -> None:
        before = self.c.done
        self.c.add(n, note)
        if note is not None:
            self.bar.set_postfix_str(note, refresh=False)
        self.bar.update(self.c.done - before)


class TerminalProgress:
    """A live tqdm bar on `console`'s stream (elapsed, rate, ETA), cleared when done and replaced by the
    closing line plain progress would write; lines logged meanwhile go above the bar."""

    def __init__(self, console: Console, clock: Clock = time.monotonic):
        self.console, self.clock = console, clock

    @contextmanager
    def __call__(self, total: int, what: str, unit: str = "step") -> Iterator[Bar]:
        from tqdm import tqdm

        counter = _Counter(total, what, unit, self.clock)
        bar = tqdm(total=total or None, desc=what, unit=unit, file=self.console.stream, leave=False,
                   dynamic_ncols=True, smoothing=0.1)
        self.console.live += 1
        try:
            yield _TqdmBar(counter, bar)
        finally:
            bar.close()
            self.console.live -= 1
            line = counter.closing()
            if line:
                self.console(line)


class Console:
    """The command line's `Log`: one line per message on `stream` (default: sys.stderr at the time of the
    call), and `progress` as live bars when that stream is a terminal (`bars=None`), or always (`True`),
    or never (`False`: plain lines, e.g. worker processes whose output ends up in a log)."""

    def __init__(self, stream: TextIO | None = None, bars: bool | None = None, clock: Clock = time.monotonic):
        self._stream, self.bars, self.clock = stream, bars, clock
        self.live = 0  # bars on screen: lines are written above them

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def __call__(self, message: str) -> None:
        if self.live:
            from tqdm import tqdm

            tqdm.write(message, file=self.stream)
            self.stream.flush()
        else:
            print(message, file=self.stream, flush=True)

    def uses_bars(self) -> bool:
        if self.bars is not None:
            return self.bars
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    @property
    def progress(self) -> Progress:
        return TerminalProgress(self, self.clock) if self.uses_bars() else LineProgress(self, clock=self.clock)


def progress_for(log: Log) -> Progress:
    """The progress display that goes with `log`: its own when it has one (a `Console`), plain lines
    through it otherwise, nothing for `silent`."""
    own = getattr(log, "progress", None)
    if own is not None:
        return own
    return no_progress if log is silent else LineProgress(log)


class StepBar:
    """A training hook, `hook(step, total, loss, model)`, that advances a bar opened at the first step (the
    total is known then, and time is counted from there) and notes the mean loss of the last `window` steps. Use it as a context manager
    around the training, so that a run stopped early (pruned, failed) closes its bar too."""

    def __init__(self, progress: Progress, what: str, window: int = 20):
        self.progress, self.what = progress, what
        self.losses: deque[float] = deque(maxlen=window)
        self.step, self._bar, self._stack = 0, None, ExitStack()

    def __call__(self, step: int, total: int, loss: float, _model: object = None) -> None:
        if self._bar is None:
            self._bar = self._stack.enter_context(self.progress(total, self.what, "step"))
        self.losses.append(loss)
        note = f"loss {sum(self.losses) / len(self.losses):.4f}"
        self._bar.advance(step - self.step, note=note)
        self.step = step

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> bool:
        return self._stack.__exit__(*exc)
