"""autocompress: search the joint space of distillation, pruning and quantization for a
transformer text classifier under a size / latency / accuracy budget."""

from .config import Experiment
from .engine import __version__  # noqa: F401  (the package version)
from .engine.errors import (
    ArtifactError,
    AutocompressError,
    ConfigError,
    DataError,
    TeacherError,
)
from .engine.recipe import Recipe


def load_compressed(folder, runtime=None, threads=None, keep_torch=False):
    """Load an exported compressed model (see autocompress.export.load_compressed)."""
    from .export import load_compressed as _load

    return _load(folder, runtime, threads, keep_torch)


__all__ = ["ArtifactError", "AutocompressError", "ConfigError", "DataError", "Experiment", "Recipe",
           "TeacherError", "load_compressed"]
