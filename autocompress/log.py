"""The progress-line callable that library code takes instead of printing, and its silent default."""

from __future__ import annotations

from collections.abc import Callable

Log = Callable[[str], None]
"""Receives one progress line (no trailing newline); the command line sends them to stderr.

A Log may also carry a `progress` attribute (a `progress.Progress`, as the command line's `Console`
does): functions that take only a Log draw their bars with it (see `progress.progress_for`)."""


def silent(_message: str) -> None:
    """A `Log` that drops every line: the default wherever a caller passes none."""
