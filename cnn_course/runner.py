"""Run the course's lessons headless.

`execute_notebook` runs one lesson notebook with parameters injected after its
``parameters`` cell (see `cnn_course.lessons`), saves the executed copy and an
HTML rendering, and reads the lines every lesson prints (``Data: ...``,
``Epochs run: N``, ``Test accuracy: NN.NN%``) into a result dict.
`run_script` does the same for the two plain-Python lessons, and `run_lesson`
runs one of `LESSONS` by name. The command line (``python -m cnn_course``)
turns the results into a report with `cnn_course.reports`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import threading
import time
import warnings as _warnings
from pathlib import Path

import nbformat

from .lessons import LESSONS, REPO_ROOT, inject_parameters, lesson_parameters

_DATA_RE = re.compile(r"^[ \t]*(Data|Weights):[ \t]*(.+?)[ \t]*$", re.MULTILINE)
_EPOCHS_RE = re.compile(r"^[ \t]*Epochs run:[ \t]*(\d+)[ \t]*$", re.MULTILINE)
_ACCURACY_RE = re.compile(r"^[ \t]*Test accuracy:[ \t]*([0-9]+(?:\.[0-9]+)?)[ \t]*%", re.MULTILINE)


# --------------------------------------------------------------------------
# Reading what a lesson printed


def parse_output(text):
    """Read the report lines a lesson prints.

    Returns a dict with ``data`` (the text after ``Data:``, and any
    ``Weights:`` line kept with its label; several distinct lines are joined
    with "; ", stand-ins first so a shortened table still shows them; None
    when absent), ``epochs`` (int from the last
    ``Epochs run: N`` line, or None) and ``test_accuracy`` (float percent from
    the last ``Test accuracy: NN.NN%`` line, or None). Never raises.
    """
    found = (m.group(2) if m.group(1) == "Data" else f"Weights: {m.group(2)}" for m in _DATA_RE.finditer(text))
    data = sorted(dict.fromkeys(found), key=lambda entry: "STAND-IN" not in entry)
    epochs = _EPOCHS_RE.findall(text)
    accuracy = _ACCURACY_RE.findall(text)
    return {
        "data": "; ".join(data) if data else None,
        "epochs": int(epochs[-1]) if epochs else None,
        "test_accuracy": float(accuracy[-1]) if accuracy else None,
    }


def first_line(source):
    """Return the first non-blank line of a cell's source, stripped ("" if none)."""
    for line in source.splitlines():
        if line.strip():
            return line.strip()
    return ""


# their lesson's folder, so a relative value must be made absolute first.
_PATH_VARIABLES = ("CNN_COURSE_DATA", "KERAS_HOME")


def _kernel_env(quick=False):
    """Return the environment for a kernel or script: ours, less TensorFlow's C++ chatter.

    A relative CNN_COURSE_DATA or KERAS_HOME (``~`` expanded) is resolved
    against this process's working folder, the folder the command was started
    in, because kernels and scripts run in their lesson's folder.
    MPLBACKEND is removed so that a kernel always draws figures inline (a
    caller's MPLBACKEND=Agg would otherwise leave notebooks without images).
    With `quick`, CNN_COURSE_QUICK=1 lets the data loaders use labelled stand-ins.
    """
    env = dict(os.environ)
    for name in _PATH_VARIABLES:
        if env.get(name, "").strip():
            env[name] = os.path.abspath(os.path.expanduser(env[name]))
    if quick:
        env["CNN_COURSE_QUICK"] = "1"
    env.pop("MPLBACKEND", None)  # let ipykernel pick the inline backend: figures become outputs
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return env


def read_notebook(path):
    """Return the notebook at `path` as a validated nbformat v4 NotebookNode.

    Raises OSError when the file cannot be read, and ValueError (one line,
    naming the file) when it is not a notebook nbformat can read and
    validate: empty, not JSON, a JSON list, ``"cells": 5``, a cell without
    its required fields, not UTF-8.
    """
    try:
        with _warnings.catch_warnings():  # e.g. MissingIDFieldWarning: not the student's concern
            _warnings.simplefilter("ignore")
            nb = nbformat.read(path, as_version=4)
            nbformat.validate(nb)
    except OSError:
        raise
    except Exception as exc:  # nbformat raises AttributeError, TypeError, ValidationError, ...
        raise ValueError(f"{path} is not a valid notebook ({_error_summary(exc)})") from None
    return nb


def _result(status, started, **fields):
    """Return a result dict with every key present (missing ones None)."""
    result = {
        "status": status,
        "error": None,
        "failed_cell": None,
        "data": None,
        "epochs": None,
        "test_accuracy": None,
        "text": "",
        "executed_path": None,
        "html_path": None,
        "wall_time_s": None,
        "warnings": [],
    }
    result.update(fields)
    result["wall_time_s"] = round(time.perf_counter() - started, 2)
    return result


def execute_notebook(path, parameters=None, out_dir="build", progress=None, timeout=None, quick=False):
    """Execute a notebook headless with `parameters` injected; save it and its HTML.

    The notebook runs in a fresh ``python3`` kernel of the current interpreter
    with the notebook's own folder as working directory. Its executed copy is
    written to ``out_dir/<name>.ipynb`` and rendered to ``out_dir/<name>.html``,
    also when a cell fails (the copy then holds the cells run so far and the error);
    what the kernel process itself prints goes to ``out_dir/<name>.kernel.log``.

    `progress`, when given, is called with one dict per event:
    ``{"event": "start", "total": n}``, ``{"event": "cell", "done": k,
    "total": n, "first_line": str}`` before each code cell,
    ``{"event": "output", "name": "stdout"|"stderr", "text": str}`` as the
    kernel prints, and ``{"event": "end", "status": ...}``.
    `timeout` is the limit per cell in seconds (None: no limit). `quick` sets
    CNN_COURSE_QUICK=1 in the kernel (labelled stand-ins allowed); the small
    sizes themselves come in `parameters` (see `lesson_parameters`).

    Returns a dict: status ("passed" or "failed"), error ("Name: message" or
    None), failed_cell (None, or {"index": position in the source notebook or
    None for the injected cell, "executed_index": position in the executed copy,
    "first_line": str}), data, epochs, test_accuracy (see `parse_output`), text
    (everything the cells printed to stdout/stderr), executed_path, html_path
    (str; html_path None if rendering failed), wall_time_s (float) and warnings
    (list of str, e.g. names the parameters cell does not assign).

    Raises FileNotFoundError when `path` does not exist, ValueError when it is
    not a valid notebook (see `read_notebook`), for invalid parameters, for a
    quick run of a notebook without a ``parameters`` cell or that assigns a
    quick checkpoint name again later (see `inject_parameters`), or when the
    executed copy would overwrite the source notebook,
    OSError when `out_dir` cannot be written, and `LessonInterrupted` (a
    KeyboardInterrupt holding the partial result) on Ctrl-C, after stopping
    the kernel and saving the cells run so far.
    A failing cell, a timeout or a dead kernel is a "failed" result, not an exception.
    """
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    started = time.perf_counter()
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no notebook at {path}")
    out_dir = Path(out_dir).resolve()
    executed_path = out_dir / path.name
    html_path = executed_path.with_suffix(".html")
    log_path = executed_path.with_suffix(".kernel.log")
    if executed_path == path:
        raise ValueError(f"out_dir {out_dir} is the notebook's own folder; choose another")

    nb = read_notebook(path)
    injected_at, warnings = inject_parameters(nb, dict(parameters or {}), require_cell=quick)
    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()]
    total = len(code_cells)
    state = {"current": None, "done": 0}
    texts = []

    def notify(**event):
        if progress is not None:
            progress(event)

    def on_cell_start(cell, cell_index):
        if cell.cell_type != "code" or not cell.source.strip():
            return
        state["current"] = cell_index
        notify(event="cell", done=state["done"], total=total, first_line=first_line(cell.source))

    def on_cell_executed(cell, cell_index, execute_reply):
        state["done"] += 1

    def running_cell():
        # The cell that was running (failed_cell), or None before the first one.
        index = state["current"]
        if index is None:
            return None
        return {
            "index": None if index == injected_at else index - (index > injected_at),
            "executed_index": index,
            "first_line": first_line(nb.cells[index].source),
        }

    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        # --log-level: no kernel start-up warnings on our console. capture_fd_output=False:
        # what C++ libraries write to the process's stderr (TensorFlow's absl, oneDNN and
        # cpu_feature_guard lines) goes to the kernel log, not into the cells' outputs;
        # `make setup` gives Jupyter's kernels the same setting.
        extra_arguments=["--log-level=ERROR", "--IPKernelApp.capture_fd_output=False"],
        resources={"metadata": {"path": str(path.parent)}},
        on_cell_start=on_cell_start,
        on_cell_executed=on_cell_executed,
    )
    original_output = client.output

    def output(outs, msg, display_id, cell_index):
        # Wraps NotebookClient.output so printed text is seen as it arrives
        # (e.g. one Keras line per epoch), not only when the cell ends.
        out = original_output(outs, msg, display_id, cell_index)
        if msg["msg_type"] == "stream":
            texts.append(msg["content"]["text"])
            notify(event="output", name=msg["content"]["name"], text=msg["content"]["text"])
        return out

    client.output = output
    notify(event="start", total=total)

    error = failed_cell = None
    out_dir.mkdir(parents=True, exist_ok=True)
    # The kernel process's own stdout/stderr (start-up and C++ library messages,
    # already echoed into the cells' outputs) go to a log, not to our console.
    with open(log_path, "w", encoding="utf-8") as log:
        try:
            _run_cells(client, _kernel_env(quick), log)
        except KeyboardInterrupt:
            # Ctrl-C: the kernel is already gone (see _run_cells); keep the
            # cells run so far and stop the whole run (no HTML: stop at once).
            saved = _save_or_none(lambda: nbformat.write(nb, executed_path), executed_path)
            notify(event="end", status="interrupted")
            text = "".join(texts)
            raise LessonInterrupted(_result(
                "interrupted", started, error="KeyboardInterrupt: interrupted (Ctrl-C or a stop signal)", text=text,
                failed_cell=running_cell(), executed_path=saved, warnings=warnings,
                **parse_output(text))) from None
        except Exception as exc:  # a failing cell, a timeout, a dead kernel, no kernel
            error = _error_summary(exc)
            if type(exc).__name__ != "CellTimeoutError" and not getattr(exc, "ename", None):
                error += f" (kernel log: {log_path})"  # e.g. the kernel died or did not start
    if error:
        failed_cell = running_cell()

    nbformat.write(nb, executed_path)
    try:
        body, _ = HTMLExporter().from_notebook_node(nb)
        html_path.write_text(body, encoding="utf-8")
    except Exception as exc:  # a rendering problem must not hide the run's result
        warnings.append(f"no HTML rendering: {_error_summary(exc)}")
        html_path = None

    text = "".join(texts)
    status = "failed" if error else "passed"
    notify(event="end", status=status)
    return _result(
        status,
        started,
        error=error,
        failed_cell=failed_cell,
        text=text,
        executed_path=str(executed_path),
        html_path=html_path and str(html_path),
        warnings=warnings,
        **parse_output(text),
    )


def _save_or_none(write, path):
    """Call `write()`; return str(path), or None when it raised OSError (a
    full disk): a stopped lesson must still stop the run, not become a failed
    lesson that the run goes past. Raises nothing else than `write` does."""
    try:
        write()
    except OSError:
        return None
    return str(path)


class LessonInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a lesson. ``result`` is its partial result dict (status
    "interrupted"; what it printed so far, the executed copy of the cells run)."""

    def __init__(self, result):
        super().__init__("interrupted")
        self.result = result


# The signals that stop a run as Ctrl-C does (the command line turns SIGTERM
# and SIGHUP into KeyboardInterrupt too); SIGHUP does not exist on Windows.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def _sigint_ignored():
    """Ignore further Ctrl-C (and SIGTERM, SIGHUP) while cleaning up (main
    thread only), so that a second signal cannot leave a kernel or a
    half-written file behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _cancel_pending_tasks():
    """Cancel what an interrupted nbclient call left on this thread's event loop
    (else each pending task logs "Task exception was never retrieved")."""
    from jupyter_core.utils import ensure_event_loop

    loop = ensure_event_loop()
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


def _run_cells(client, env, log):
    """Start a kernel for `client`, run every cell of its notebook, stop the kernel.

    What ``NotebookClient.execute`` does, minus its SIGINT handler (which
    kills the kernel and turns Ctrl-C into a failed cell): here Ctrl-C kills
    the kernel at once and raises KeyboardInterrupt. Raises what nbclient
    raises for a failing cell, a timeout or a dead kernel.
    """
    try:
        with client.setup_kernel(env=env, stdout=log, stderr=log):
            try:
                client.reset_execution_trackers()
                reply = client.wait_for_reply(client.kc.kernel_info())
                if reply is not None and "language_info" in reply["content"]:
                    client.nb.metadata["language_info"] = reply["content"]["language_info"]
                for index, cell in enumerate(client.nb.cells):
                    client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
                client.set_widgets_metadata()
            except KeyboardInterrupt:
                client.shutdown_kernel = "immediate"  # setup_kernel's cleanup then kills it
                with _sigint_ignored():
                    _cancel_pending_tasks()
                raise
    except KeyboardInterrupt:
        # Also when Ctrl-C came while the kernel was starting, or during the cleanup.
        with _sigint_ignored():
            if client.km is not None and client.km.has_kernel:
                client.shutdown_kernel = "immediate"
                client._cleanup_kernel()
        raise


def _error_summary(exc):
    """Return "Name: message" for an execution failure, without the traceback."""
    ename = getattr(exc, "ename", None)
    if ename:  # nbclient's CellExecutionError carries the kernel's error name and value
        return f"{ename}: {exc.evalue}".rstrip(": ").strip()
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__


def _die_with_parent():
    """Return a ``preexec_fn`` that makes a child process die with this one, or None.

    On Linux the child asks for SIGKILL when the thread that started it ends
    (``prctl(PR_SET_PDEATHSIG)``), so a runner killed by SIGKILL leaves no
    script lesson running; if the runner died before that took effect the
    child exits at once. None where prctl is not available (other systems:
    the child stays in the runner's process group, so Ctrl-C in a terminal
    reaches it). Raises nothing.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec():
        prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def run_script(path, out_dir="build", progress=None, timeout=None, quick=False):
    """Run a lesson script with this interpreter and its default arguments.

    The script runs with its own folder as working directory, and dies with
    this process (see `_die_with_parent`); what it prints (stdout and stderr
    together, read as UTF-8 with undecodable bytes replaced by U+FFFD) is
    saved to ``out_dir/<name>.txt`` and passed
    line by line to `progress` as ``{"event": "output", "name": "stdout",
    "text": line}`` events (plus "start" and "end" events, as in
    `execute_notebook`). `timeout` is the limit in seconds for the whole script.

    Returns the same dict as `execute_notebook`: status "passed" when the exit
    status is 0; error is the last line the script printed (for an uncaught
    exception, "Name: message") or the exit status; failed_cell is None;
    executed_path is the saved output, html_path is None.
    Raises FileNotFoundError when `path` does not exist, OSError when
    `out_dir` cannot be written, and `LessonInterrupted` on Ctrl-C (after
    killing the script and saving what it printed).
    """
    started = time.perf_counter()
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no script at {path}")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / (path.stem + ".txt")

    def notify(**event):
        if progress is not None:
            progress(event)

    notify(event="start", total=1)
    notify(event="cell", done=0, total=1, first_line=f"python {path.name}")
    lines = []
    with subprocess.Popen(
        [sys.executable, str(path)],
        cwd=path.parent,
        env=_kernel_env(quick),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        encoding="utf-8",
        errors="replace",  # a script may print any bytes: never fail reading them
        bufsize=1,
        preexec_fn=_die_with_parent(),
    ) as proc:
        killer = threading.Timer(timeout, proc.kill) if timeout is not None else None
        if killer is not None:
            killer.start()
        try:
            for line in proc.stdout:
                lines.append(line)
                notify(event="output", name="stdout", text=line)
            code = proc.wait()
        except KeyboardInterrupt:
            with _sigint_ignored():
                proc.kill()  # Popen's exit would otherwise leave it running
                proc.wait()
                text = "".join(lines)
                saved = _save_or_none(lambda: log_path.write_text(text, encoding="utf-8"), log_path)
            notify(event="end", status="interrupted")
            raise LessonInterrupted(_result(
                "interrupted", started, error="KeyboardInterrupt: interrupted (Ctrl-C or a stop signal)", text=text,
                executed_path=saved, **parse_output(text))) from None
        finally:
            if killer is not None:
                killer.cancel()
    text = "".join(lines)
    log_path.write_text(text, encoding="utf-8")
    if code != 0 and timeout is not None and time.perf_counter() - started >= timeout:
        error = f"TimeoutError: {path.name} ran over {timeout} s"
    elif code != 0:
        last = [line.strip() for line in lines if line.strip()]
        error = last[-1] if last else f"exit status {code}"
    else:
        error = None
    status = "failed" if error else "passed"
    notify(event="end", status=status)
    return _result(status, started, error=error, text=text, executed_path=str(log_path), **parse_output(text))


def run_lesson(name, parameters=None, out_dir="build", progress=None, timeout=None, lessons=None,
               quick=False):
    """Run one lesson of `lessons` (default `LESSONS`) by name: a notebook or a script.

    Notebooks get `lesson_parameters(name, quick, parameters)`; scripts run
    with their default arguments. `quick` also lets the lesson use labelled
    stand-in data (CNN_COURSE_QUICK=1).
    Returns the result dict of `execute_notebook` / `run_script` with "lesson"
    (the name) and "path" added. A missing lesson file, invalid parameters or
    an out folder that cannot be written give a "failed" result rather than an
    exception, as is any other exception the lesson raises (one line, no
    traceback). Raises KeyError for a name that is not in `lessons`, and
    `LessonInterrupted` on Ctrl-C (its result has "lesson" and "path" too).
    """
    lessons = LESSONS if lessons is None else lessons
    path = Path(lessons[name])
    if not path.is_absolute():
        path = REPO_ROOT / path
    started = time.perf_counter()
    try:
        if path.suffix == ".ipynb":
            result = execute_notebook(path, lesson_parameters(name, quick, parameters), out_dir,
                                      progress=progress, timeout=timeout, quick=quick)
        else:
            result = run_script(path, out_dir, progress=progress, timeout=timeout, quick=quick)
    except LessonInterrupted as stop:
        stop.result = {"lesson": name, "path": str(path), **stop.result}
        raise
    except (OSError, ValueError) as exc:  # no such file, bad parameters, out_dir not writable
        result = _result("failed", started, error=f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # anything else this lesson raised must not stop the others
        result = _result("failed", started, error=_error_summary(exc))
    return {"lesson": name, "path": str(path), **result}
