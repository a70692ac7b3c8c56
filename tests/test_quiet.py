"""Third-party libraries stay quiet: no progress bars, no WARNING lines from saving and loading a
model, or from building an int8 ONNX Runtime session (see autocompress.engine.quiet)."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager

import pytest
from conftest import make_tiny, tiny_config

from autocompress.engine.runtimes import make_runtime
from autocompress.engine.quiet import quiet_onnx_quantization, quiet_third_party

BAR_MARKS = ("%|", "it/s", "s/it")


def leaks(text: str) -> list[str]:
    """Lines (tqdm redraws split on \\r too) that look like a progress bar or a WARNING."""
    lines = text.replace("\r", "\n").splitlines()
    return [ln for ln in lines if any(m in ln for m in BAR_MARKS) or "WARNING" in ln.upper()]


@pytest.fixture
def library_defaults():
    """The libraries as a fresh process has them (bars on, transformers at WARNING); restored afterwards,
    so this file proves something whatever other tests switched off before it."""
    import huggingface_hub.utils as hub
    from transformers.utils import logging as tf_logging

    preset = [v for v in ("HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY") if os.environ.get(v)]
    if preset:
        pytest.skip(f"{', '.join(preset)} set in the environment: the libraries' defaults are not in reach")
    hub_off, tf_bars, tf_level = hub.are_progress_bars_disabled(), tf_logging.is_progress_bar_enabled(), \
        tf_logging.get_verbosity()
    hub.enable_progress_bars()
    tf_logging.enable_progress_bar()
    tf_logging.set_verbosity_warning()
    yield
    (hub.disable_progress_bars if hub_off else hub.enable_progress_bars)()
    (tf_logging.enable_progress_bar if tf_bars else tf_logging.disable_progress_bar)()
    tf_logging.set_verbosity(tf_level)


@contextmanager
def bare_root_logger():
    """The root logger as the command line has it: no handler. (pytest puts its capture handlers
    there for the test call itself, so this is entered inside the test, not in a fixture.)"""
    root = logging.getLogger()
    saved = root.handlers[:]
    for h in saved:
        root.removeHandler(h)
    try:
        yield root
    finally:
        for h in root.handlers[:]:
            root.removeHandler(h)
        for h in saved:
            root.addHandler(h)


def _save_and_load(folder) -> None:
    """transformers' own save and load (make_teacher_dir quiets the libraries itself)."""
    from transformers import AutoModelForSequenceClassification, BertForSequenceClassification

    BertForSequenceClassification(tiny_config()).save_pretrained(folder)  # "Writing model shards"
    AutoModelForSequenceClassification.from_pretrained(str(folder))  # "Loading weights"


def test_saving_and_loading_a_model_shows_bars_by_default(library_defaults, tmp_path, capfd):
    # the control: what the next test guards against is real and capfd sees it
    _save_and_load(tmp_path / "m")
    err = capfd.readouterr().err
    assert "Writing model shards" in err and "Loading weights" in err and "%|" in err


def test_saving_and_loading_a_model_is_quiet(library_defaults, tmp_path, capfd):
    quiet_third_party()
    _save_and_load(tmp_path / "m")
    out, err = capfd.readouterr()
    assert leaks(out + err) == []


def test_quiet_third_party_is_idempotent_and_leaves_logging_config_alone(library_defaults, capfd):
    root = logging.getLogger()
    own = logging.getLogger("autocompress")
    before = (root.level, root.handlers[:], root.filters[:], own.level, own.handlers[:], own.disabled)
    for _ in range(3):
        quiet_third_party()
    assert (root.level, root.handlers, root.filters, own.level, own.handlers, own.disabled) == before
    from transformers.utils import logging as tf_logging

    assert not tf_logging.is_progress_bar_enabled() and tf_logging.get_verbosity() == logging.ERROR
    assert capfd.readouterr() == ("", "")


def test_an_explicit_user_setting_wins(library_defaults, monkeypatch):
    from transformers.utils import logging as tf_logging

    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "info")
    quiet_third_party()
    assert tf_logging.is_progress_bar_enabled() and tf_logging.get_verbosity() == logging.WARNING


def test_int8_onnx_session_is_quiet_and_leaves_the_root_logger_unconfigured(tmp_path, capfd):
    # onnxruntime.quantization logs "Please consider to run pre-processing ..." on the root logger,
    # which, with no handler there, would print WARNING:root:... and call logging.basicConfig()
    model = make_tiny(seed=1)
    with bare_root_logger() as root:
        session = make_runtime(model, 8, "onnxruntime", tmp_path, threads=1)
        handlers, filters = root.handlers[:], root.filters[:]
    assert session.name == "onnxruntime-int8"
    out, err = capfd.readouterr()
    assert leaks(out + err) == []
    assert handlers == [] and filters == []


def test_int8_onnx_session_logs_no_record(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    make_runtime(make_tiny(seed=1), 8, "onnxruntime", tmp_path, threads=1)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_quiet_onnx_quantization_drops_only_that_packages_advice(capfd):
    ort_file = os.path.join(os.sep, "x", "site-packages", "onnxruntime", "quantization", "quantize.py")
    ours = os.path.join(os.sep, "x", "autocompress", "search", "run.py")
    with bare_root_logger() as root:
        def emit(level: int, pathname: str, msg: str) -> None:
            root.handle(root.makeRecord("root", level, pathname, 1, msg, None, None))

        with quiet_onnx_quantization():
            emit(logging.WARNING, ort_file, "advice from ort")
            emit(logging.ERROR, ort_file, "error from ort")
            emit(logging.WARNING, ours, "warning of ours")
            logging.getLogger("autocompress.test").warning("child logger warning")
        handlers, filters = root.handlers[:], root.filters[:]
    err = capfd.readouterr().err
    assert "advice from ort" not in err
    assert "error from ort" in err and "warning of ours" in err and "child logger warning" in err
    assert handlers == [] and filters == []
