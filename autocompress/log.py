"""The progress-line callable that library code takes instead of printing, and its silent default."""

from __future__ import annotations

from collections.abc import Callable

Log = Callable[[str], None]
"""Receives one progress line (no trailing newline); the command line sends them to stderr."""


def silent(_message: str) -> None:
    """A `Log` that drops every line: the default wherever a caller passes none."""
