"""One exception hierarchy. The CLI turns any of these into one line and exit code 2."""

from __future__ import annotations


class AutocompressError(Exception):
    """Base class: a problem with the user's input or environment, with a fix to suggest."""


class ConfigError(AutocompressError):
    """An experiment file, recipe file or option is missing, malformed or out of range."""


class DataError(AutocompressError):
    """Task data cannot be found, read or understood (file, column, label)."""


class TeacherError(AutocompressError):
    """The teacher model cannot be resolved or loaded."""


class ArtifactError(AutocompressError):
    """A compressed-model folder is missing, incomplete or corrupted."""
