"""Keep third-party libraries quiet, so a user sees only autocompress's own lines.

Two tools, each using the libraries' own switches (no environment variables, nothing that changes
what a library computes):

* `quiet_third_party()`: process-wide switches. Progress bars off in huggingface_hub (transformers
  reads that state when it is imported: "Loading weights", "Writing model shards"), in transformers
  and in datasets; transformers and datasets log errors only; ONNX Runtime's default C++ logger
  shows errors only. Libraries that are not imported yet are not imported: call it again after
  importing one (it is idempotent and cheap). A setting the user made in the environment
  (HF_HUB_DISABLE_PROGRESS_BARS=0, TRANSFORMERS_VERBOSITY, ...) is left alone.
* `quiet_onnx_quantization()`: around an `onnxruntime.quantization` call only. That package logs
  its advice ("Please consider to run pre-processing before quantization ...") on the *root*
  logger, which prints "WARNING:root:..." and, when the root logger has no handler yet, calls
  `logging.basicConfig()` as a side effect. Inside the block that advice (below ERROR, from that
  package only) is dropped and the root logger is not reconfigured; everything else is untouched.

autocompress's own loggers and every ERROR record pass through both.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

ORT_SEVERITY_ERROR = 3  # onnxruntime severities: 0 verbose, 1 info, 2 warning, 3 error, 4 fatal

_ORT_QUANTIZATION_DIR = f"{os.sep}onnxruntime{os.sep}quantization{os.sep}"


def _env_set(name: str) -> bool:
    return os.environ.get(name, "") != ""


def quiet_third_party() -> None:
    """Turn off third-party progress bars and advisory log lines, process-wide (see the module doc)."""
    bars = not _env_set("HF_HUB_DISABLE_PROGRESS_BARS")
    if bars:
        from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars

        if not are_progress_bars_disabled():
            disable_progress_bars()
    modules = sys.modules
    if "transformers.utils.logging" in modules:
        from transformers.utils import logging as tf_logging

        if bars:
            tf_logging.disable_progress_bar()
        if not _env_set("TRANSFORMERS_VERBOSITY"):
            tf_logging.set_verbosity_error()
    if "datasets" in modules:
        import datasets

        if not _env_set("HF_DATASETS_DISABLE_PROGRESS_BARS"):
            datasets.disable_progress_bars()
        if not _env_set("DATASETS_VERBOSITY"):
            datasets.logging.set_verbosity_error()
    if "onnxruntime" in modules:
        import onnxruntime

        onnxruntime.set_default_logger_severity(ORT_SEVERITY_ERROR)


class _OrtQuantizationAdvice(logging.Filter):
    """Drops records below ERROR logged from onnxruntime.quantization's own source files."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or _ORT_QUANTIZATION_DIR not in (record.pathname or "")


_ADVICE = _OrtQuantizationAdvice()


@contextmanager
def quiet_onnx_quantization() -> Iterator[None]:
    """Run an `onnxruntime.quantization` call without its root-logger advice (see the module doc)."""
    root = logging.getLogger()
    added_filter = _ADVICE not in root.filters
    if added_filter:
        root.addFilter(_ADVICE)
    # With a handler on the root logger, logging.warning() does not call basicConfig(). Python's own
    # fallback for records no handler takes is what prints them meanwhile, as it would anyway.
    stand_in = None
    if not root.handlers:
        stand_in = logging.lastResort or logging.NullHandler()
        root.addHandler(stand_in)
    try:
        yield
    finally:
        if stand_in is not None:
            root.removeHandler(stand_in)
        if added_filter:
            root.removeFilter(_ADVICE)
