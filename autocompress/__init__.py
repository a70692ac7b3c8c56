"""autocompress: search the joint space of distillation, pruning and quantization for a
transformer text classifier under a size / latency / accuracy budget."""

from .config import Experiment
from .errors import ArtifactError, AutocompressError, ConfigError, DataError, TeacherError
from .recipe import Recipe

__all__ = ["ArtifactError", "AutocompressError", "ConfigError", "DataError", "Experiment", "Recipe",
           "TeacherError"]
__version__ = "0.1.0"
