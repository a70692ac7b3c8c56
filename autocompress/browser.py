"""Look at the web UIs (MLflow, optuna-dashboard) in headless Chromium: for tests and README screenshots.

Needs no Python package. Chromium is driven through the DevTools protocol over two pipes
(`--remote-debugging-pipe`: commands go in on the browser's file descriptor 3, replies come out on
4, one JSON message per NUL-terminated chunk). The few commands used here (navigate, evaluate,
capture a screenshot) are part of the protocol's stable domains.

    with serve(ui_command(uri, port), f"http://127.0.0.1:{port}/health"), Browser() as browser:
        browser.goto(mlflow_runs_url(f"http://127.0.0.1:{port}", experiment_id))
        text = browser.wait_for_text(["trial-0000"])
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
TRIAL_FILTER = "tags.`autocompress.kind` = 'trial'"  # the runs of one search's trials (see tracking.py)


class BrowserError(RuntimeError):
    """Chromium is missing, died or refused a command; or a server did not come up."""


def find_chromium() -> str | None:
    """The Chromium (or Chrome) executable: $AUTOCOMPRESS_CHROMIUM if set, else the first on PATH."""
    chosen = os.environ.get("AUTOCOMPRESS_CHROMIUM")
    if chosen:
        return shutil.which(chosen)
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- servers -----------------------------------------------------------------------------------

def wait_http(url: str, timeout: float = 90.0, proc: subprocess.Popen | None = None) -> None:
    """Poll `url` until it answers below HTTP 500; fail early when `proc` (the server) exits."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise BrowserError(f"the server exited (code {proc.returncode}) before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except urllib.error.HTTPError as err:
            if err.code < 500:
                return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise BrowserError(f"{url} did not answer within {timeout:.0f} s")
        time.sleep(0.25)


def stop(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """Stop a server started by `serve`: SIGTERM to its process group, then SIGKILL to what is left."""
    if not hasattr(os, "killpg"):
        proc.terminate()
        proc.wait()
        return

    def signal_group(sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)  # the group holds the server and the workers it started
        except ProcessLookupError:
            pass

    signal_group(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    signal_group(signal.SIGKILL)  # a leader that did not stop, or processes it left behind
    proc.wait()


@contextmanager
def serve(cmd: list[str], ready_url: str, timeout: float = 90.0, log: Path | None = None
          ) -> Iterator[subprocess.Popen]:
    """Run a server command in its own process group; yield once `ready_url` answers; stop it after.

    Its output goes to `log` (or nowhere), so that a chatty server never blocks on a full pipe.
    """
    out = open(log, "wb") if log is not None else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            try:
                wait_http(ready_url, timeout, proc)
            except BrowserError as err:
                tail = log.read_text(errors="replace")[-2000:] if log is not None else ""
                raise BrowserError(f"{err}; {' '.join(cmd)}" + (f"; its output ends:\n{tail}" if tail else "")) from None
            yield proc
        finally:
            stop(proc)
    finally:
        if log is not None:
            out.close()


def autocompress_command(*args: str) -> list[str]:
    """`autocompress ARGS...` run by this Python (no need for the console script on PATH)."""
    return [sys.executable, "-m", "autocompress.cli", *args]


def ui_command(tracking_uri: str, port: int, host: str = "127.0.0.1") -> list[str]:
    return autocompress_command("ui", "--tracking-uri", tracking_uri, "--host", host, "--port", str(port))


# ---- MLflow pages ------------------------------------------------------------------------------

def mlflow_runs_url(base: str, experiment_id: str, search_filter: str | None = None,
                    order_by: str | None = None) -> str:
    """The runs table of an experiment in the MLflow UI at `base`, in the UI's "Model training" mode.

    search_filter: e.g. TRIAL_FILTER; order_by: e.g. "metrics.`accuracy`". Sorted by anything but
    the creation time, the table lists matching child runs (the trials) on rows of their own rather
    than folded under their parent (the search's run). The UI keeps both in the URL.
    """
    query = {"workflowType": "machine_learning", "searchFilter": search_filter, "orderByKey": order_by}
    query = {k: v for k, v in query.items() if v}
    url = f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs"
    return f"{url}?{urllib.parse.urlencode(query, quote_via=urllib.parse.quote)}"


def mlflow_run_url(base: str, experiment_id: str, run_id: str) -> str:
    """One run's page: its metrics and parameters, with values."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def mlflow_view_presets(experiment_id: str, expanded_runs: Iterable[str] = (), columns: Iterable[str] = ()
                        ) -> dict[str, str]:
    """Browser-side settings of the MLflow 3 UI, for a screenshot: parent runs expanded (their trials
    listed below them), extra table columns (like "metrics.`accuracy`"), the "Model training" mode,
    the assistant panel closed. Give them to `Browser.set_local_storage` before loading the page.

    These are the keys MLflow 3.x keeps in the browser's localStorage; another MLflow version may
    ignore them, and the page then shows its default view. Nothing is written to the tracking store.
    """
    state = {"runsExpanded": {run: True for run in expanded_runs}, "selectedColumns": list(columns)}
    return {
        f"MLflowLocalStorage-1.1-ExperimentPage-{json.dumps([str(experiment_id)])}-ReactComponentState":
            json.dumps(state),
        "mlflow.workflowType_v1": json.dumps("machine_learning"),
        "mlflow.assistant.panelOpen_v1": "false",
        "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true",
    }


# ---- the browser -------------------------------------------------------------------------------

class Browser:
    """One headless Chromium tab, driven over the DevTools pipe. Use as a context manager."""

    def __init__(self, executable: str | None = None, width: int = 1400, height: int = 900,
                 command_timeout: float = 60.0):
        exe = executable or find_chromium()
        if exe is None:
            raise BrowserError("no Chromium found (install the `chromium` package, or set AUTOCOMPRESS_CHROMIUM)")
        self.command_timeout = command_timeout
        self._profile = tempfile.mkdtemp(prefix="autocompress-chromium-")
        import fcntl  # POSIX only, as the pipe wiring

        commands_r, self._commands = os.pipe()
        self._replies, replies_w = os.pipe()

        def wire() -> None:  # in the child: the browser reads fd 3 and writes fd 4
            # move both ends above 4 first, so that placing one cannot close the other
            high_r, high_w = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (commands_r, replies_w))
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        try:
            self._proc = subprocess.Popen(
                [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
                 "--remote-debugging-pipe", f"--user-data-dir={self._profile}", f"--window-size={width},{height}",
                 "about:blank"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                preexec_fn=wire, close_fds=False, start_new_session=True)
        except OSError as err:
            for fd in (commands_r, replies_w, self._commands, self._replies):
                os.close(fd)
            shutil.rmtree(self._profile, ignore_errors=True)
            raise BrowserError(f"cannot start {exe}: {err}") from None
        os.close(commands_r)
        os.close(replies_w)
        self._buffer = b""
        self._last_id = 0
        self._session: str | None = None
        try:
            target = self._call("Target.createTarget", url="about:blank")["targetId"]
            self._session = self._call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            self._call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                       mobile=False)
        except BaseException:
            self.close()
            raise

    # -- protocol
    def _send(self, message: dict) -> None:
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._commands, data):]

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("Chromium did not answer in time")
            ready, _, _ = select.select([self._replies], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(self._replies, 1 << 20)
                if not chunk:
                    raise BrowserError(f"Chromium exited (code {self._proc.poll()})")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def _call(self, method: str, **params) -> dict:
        self._last_id += 1
        message = {"id": self._last_id, "method": method, "params": params}
        if self._session is not None:
            message["sessionId"] = self._session
        self._send(message)
        deadline = time.monotonic() + self.command_timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._last_id:  # anything else is an event: not needed here
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message', reply['error'])}")
                return reply.get("result", {})

    # -- pages
    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (JSON-able values only)."""
        result = self._call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"script failed: {result['exceptionDetails'].get('text', '?')}")
        return result.get("result", {}).get("value")

    def goto(self, url: str) -> None:
        """Start loading `url`; follow with `wait_for_text` for what the page should show."""
        result = self._call("Page.navigate", url=url)
        if result.get("errorText"):
            raise BrowserError(f"{url}: {result['errorText']}")

    def text(self) -> str:
        """The rendered text of the page (what a reader sees, without markup or hidden parts)."""
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def html(self) -> str:
        """The current DOM, serialized."""
        return self.evaluate("document.documentElement ? document.documentElement.outerHTML : ''") or ""

    def wait_for_text(self, needles: Iterable[str], timeout: float = 90.0, interval: float = 0.25) -> str:
        """Poll the page's text until it holds every one of `needles` or `timeout` passes; return the
        last text read, so that the caller asserts on it (and shows it when something is missing)."""
        needles = list(needles)
        deadline = time.monotonic() + timeout
        while True:
            try:
                text = self.text()
            except BrowserError:  # between two documents, the page cannot be read for a moment
                text = ""
            if all(n in text for n in needles) or time.monotonic() > deadline:
                return text
            time.sleep(interval)

    def set_local_storage(self, origin: str, items: dict[str, str], timeout: float = 30.0) -> None:
        """Store `items` in the localStorage of `origin` (loads a page of it first: `origin` itself,
        or a cheap URL of the same server such as MLflow's /health)."""
        self.goto(origin)
        scheme_host = "{0.scheme}://{0.netloc}".format(urllib.parse.urlsplit(origin))
        deadline = time.monotonic() + timeout
        while self.evaluate("location.origin + ' ' + document.readyState") != f"{scheme_host} complete":
            if time.monotonic() > deadline:
                raise BrowserError(f"{origin} did not load within {timeout:.0f} s")
            time.sleep(0.1)
        self.evaluate(f"for (const [k, v] of Object.entries({json.dumps(items)})) localStorage.setItem(k, v); 0")

    def screenshot(self, path: Path | str) -> Path:
        """Save the visible page as a PNG (once its fonts are loaded and the next frame is drawn)."""
        self.evaluate("document.fonts.ready.then(() => new Promise(done => requestAnimationFrame("
                      "() => requestAnimationFrame(() => done(true)))))")
        data = self._call("Page.captureScreenshot", format="png")["data"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    # -- lifetime
    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._session = None
                self._call_quick("Browser.close")
                self._proc.wait(10)
            except (BrowserError, OSError, subprocess.TimeoutExpired):
                pass
        if self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._proc.wait()
        for fd in (self._commands, self._replies):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)

    def _call_quick(self, method: str) -> None:
        saved, self.command_timeout = self.command_timeout, 5.0
        try:
            self._call(method)
        finally:
            self.command_timeout = saved

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
