"""Running a lesson headless: a notebook in a fresh kernel, or a script.

`run_lesson` runs one of `LESSONS`: a notebook through `execute_notebook` (parameters injected by
`cnn_course.lessons`; the executed copy and its HTML saved), a script through `run_script`.
`parse_output` reads the lines every lesson prints (``Data:``, ``Epochs run:``, ``Test accuracy:``).
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
from jupyter_core.utils import ensure_event_loop, run_sync
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError

from .backends import lesson_env
from .lessons import (
    ANSWERS_DIR,
    ANSWERS_SUFFIX,
    LESSONS,
    REPO_ROOT,
    answer_path,
    inject_parameters,
    lesson_parameters,
    parameter_names,
)

_DATA_RE = re.compile(r"^[ \t]*(Data|Weights):[ \t]*(.+?)[ \t]*$", re.MULTILINE)
_EPOCHS_RE = re.compile(r"^[ \t]*Epochs run:[ \t]*(\d+)[ \t]*$", re.MULTILINE)
_ACCURACY_RE = re.compile(r"^[ \t]*Test accuracy:[ \t]*([0-9]+(?:\.[0-9]+)?)[ \t]*%", re.MULTILINE)
INTERRUPTED = "KeyboardInterrupt: interrupted (Ctrl-C or a stop signal)"
# The signals that stop a run as Ctrl-C does (the command line turns SIGTERM and SIGHUP into it).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def parse_output(text):
    """Return {"data": the distinct ``Data:``/``Weights:`` lines joined, stand-ins first, "epochs" and
    "test_accuracy": the last ``Epochs run: N`` and ``Test accuracy: NN.NN%``}, None where absent."""
    found = (m.group(2) if m.group(1) == "Data" else f"Weights: {m.group(2)}" for m in _DATA_RE.finditer(text))
    data = sorted(dict.fromkeys(found), key=lambda entry: "STAND-IN" not in entry)
    epochs, accuracy = _EPOCHS_RE.findall(text), _ACCURACY_RE.findall(text)
    return {
        "data": "; ".join(data) if data else None,
        "epochs": int(epochs[-1]) if epochs else None,
        "test_accuracy": float(accuracy[-1]) if accuracy else None,
    }


def first_line(source):
    """Return the first non-blank line of `source`, stripped ("" if none)."""
    return next((line.strip() for line in source.splitlines() if line.strip()), "")


def _result(status, started, text="", **fields):
    return {
        "status": status,
        "error": None,
        "failed_cell": None,
        "text": text,
        "executed_path": None,
        "html_path": None,
        "warnings": [],
        **parse_output(text),
        **fields,
        "wall_time_s": round(time.perf_counter() - started, 2),
    }


class LessonInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a lesson; ``result`` is its partial result (status "interrupted")."""

    def __init__(self, result):
        super().__init__("interrupted")
        self.result = result


class _LessonClient(NotebookClient):
    """A NotebookClient (public API only) that tells `progress` of each code cell and of printed text
    as it arrives (one Keras line per epoch), and keeps that text."""

    def __init__(self, nb, progress, **kwargs):
        super().__init__(nb, on_cell_start=self._cell_started, **kwargs)
        self.progress, self.texts, self.running = progress, [], None
        self.code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()]

    def _cell_started(self, cell, cell_index):
        if cell_index in self.code_cells:
            self.running = cell_index
            self.progress(
                {
                    "event": "cell",
                    "done": self.code_cells.index(cell_index),
                    "total": len(self.code_cells),
                    "first_line": first_line(cell.source),
                }
            )

    def output(self, outs, msg, display_id, cell_index):
        if msg["msg_type"] == "stream":
            self.texts.append(msg["content"]["text"])
            self.progress({"event": "output", "name": msg["content"]["name"], "text": msg["content"]["text"]})
        return super().output(outs, msg, display_id, cell_index)

    def run(self, env, log):
        """Start the kernel, execute every cell, stop the kernel. Unlike `execute`, whose SIGINT handler
        turns Ctrl-C into a failed cell, Ctrl-C kills the kernel at once and raises KeyboardInterrupt."""
        try:
            with self.setup_kernel(env=env, stdout=log, stderr=log):
                try:
                    for index, cell in enumerate(self.nb.cells):
                        self.execute_cell(cell, index, execution_count=self.code_cells_executed + 1)
                    self.set_widgets_metadata()
                except KeyboardInterrupt:
                    self.shutdown_kernel = "immediate"  # setup_kernel's clean-up then kills it at once
                    with _signals_ignored():
                        _cancel_pending_tasks()
                    raise
        except KeyboardInterrupt:  # also while the kernel was starting, or during the clean-up
            with _signals_ignored():
                _cancel_pending_tasks()
                if self.kc is not None:
                    self.kc.stop_channels()
                if self.km is not None and self.km.has_kernel:
                    run_sync(self.km.shutdown_kernel)(now=True)  # also removes its connection file
            raise


def _cancel_pending_tasks():
    """Cancel what an interrupted nbclient call left on the event loop (else "Task exception was never retrieved")."""
    loop = ensure_event_loop()
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


@contextlib.contextmanager
def _signals_ignored():
    """Ignore Ctrl-C, SIGTERM and SIGHUP within the block (main thread only): a second signal must not
    leave a kernel or a half-written file behind."""
    main = threading.current_thread() is threading.main_thread()
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in STOP_SIGNALS} if main else {}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _save_or_none(write, path):
    """Return str(path) after `write()`, or None when it raised OSError: a stopped lesson must still stop."""
    try:
        write()
    except OSError:
        return None
    return str(path)


def _error_summary(exc):
    """Return "Name: message" for an execution failure, without the traceback."""
    if getattr(exc, "ename", None):  # nbclient's CellExecutionError: the kernel's error name and value
        return f"{exc.ename}: {exc.evalue}".rstrip(": ").strip()
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__


def execute_notebook(path, parameters=None, out_dir="build", progress=None, timeout=None, quick=False):
    """Execute a notebook in a fresh kernel (in its folder, `lesson_env(quick)`) with `parameters`
    injected; save ``out_dir/<name>.ipynb``, ``.html`` and ``.kernel.log``. `progress(event)` gets
    "start" (total), "cell" (done, total, first_line), "output" (name, text) and "end" (status) events;
    `timeout`: seconds per cell.

    Returns a dict: status ("passed"/"failed"), error, failed_cell (index in the source, None for the
    injected cell; executed_index, first_line), data, epochs, test_accuracy, text, executed_path,
    html_path, wall_time_s, warnings. Raises FileNotFoundError, ValueError (a damaged notebook, bad
    parameters, `out_dir` its own folder), OSError, and `LessonInterrupted` on Ctrl-C.
    """
    started = time.perf_counter()
    path, out_dir = Path(path).resolve(), Path(out_dir).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no notebook at {path}")
    executed_path = out_dir / path.name
    html_path, log_path = executed_path.with_suffix(".html"), executed_path.with_suffix(".kernel.log")
    if executed_path == path:
        raise ValueError(f"out_dir {out_dir} is the notebook's own folder; choose another")
    try:
        with _warnings.catch_warnings():  # e.g. MissingIDFieldWarning: not the student's concern
            _warnings.simplefilter("ignore")
            nb = nbformat.read(path, as_version=4)
            nbformat.validate(nb)
    except OSError:
        raise
    except Exception as exc:  # empty, not JSON, not UTF-8, "cells": 5, ...: nbformat raises many kinds
        raise ValueError(f"{path} is not a valid notebook ({_error_summary(exc)})") from None
    injected_at, warnings = inject_parameters(nb, dict(parameters or {}), require_cell=quick)
    # --log-level: no kernel start-up warnings on our console. capture_fd_output=False: what C++
    # libraries write to stderr (TensorFlow's oneDNN and cpu_feature_guard lines) goes to the kernel
    # log, not into the cells; `make setup` gives Jupyter's kernels the same setting.
    client = _LessonClient(
        nb,
        progress or (lambda event: None),
        timeout=timeout,
        kernel_name="python3",
        extra_arguments=["--log-level=ERROR", "--IPKernelApp.capture_fd_output=False"],
        resources={"metadata": {"path": str(path.parent)}},
    )

    def result(status, **fields):
        client.progress({"event": "end", "status": status})
        at = client.running  # the cell that was running when it failed or stopped
        cell = (
            None
            if at is None or status == "passed"
            else {
                "index": None if at == injected_at else at - (at > injected_at),
                "executed_index": at,
                "first_line": first_line(nb.cells[at].source),
            }
        )
        return _result(status, started, "".join(client.texts), failed_cell=cell, warnings=warnings, **fields)

    client.progress({"event": "start", "total": len(client.code_cells)})
    error = None
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as log:
        try:
            client.run(lesson_env(quick), log)
        except KeyboardInterrupt:  # the kernel is gone: keep the cells run so far, stop at once (no HTML)
            saved = _save_or_none(lambda: nbformat.write(nb, executed_path), executed_path)
            raise LessonInterrupted(result("interrupted", error=INTERRUPTED, executed_path=saved)) from None
        except Exception as exc:  # a failing cell, a timeout, a dead kernel, no kernel
            error = _error_summary(exc)
            if not isinstance(exc, CellTimeoutError) and not getattr(exc, "ename", None):
                error += f" (kernel log: {log_path})"  # e.g. the kernel died or did not start
    nbformat.write(nb, executed_path)
    try:
        from nbconvert import HTMLExporter

        html_path.write_text(HTMLExporter().from_notebook_node(nb)[0], encoding="utf-8")
    except Exception as exc:  # a rendering problem must not hide the run's result
        warnings.append(f"no HTML rendering: {_error_summary(exc)}")
        html_path = None
    return result(
        "failed" if error else "passed",
        error=error,
        executed_path=str(executed_path),
        html_path=html_path and str(html_path),
    )


def _die_with_parent():
    """Return a ``preexec_fn`` by which a child dies with this process, even by SIGKILL (Linux's
    ``prctl(PR_SET_PDEATHSIG)``), or None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec():
        prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the runner died before that took effect
            os._exit(1)

    return preexec


def run_script(path, out_dir="build", progress=None, timeout=None, quick=False):
    """Run a lesson script with its default arguments in its folder, dying with this process; what it
    prints goes to ``out_dir/<name>.txt`` and to `progress` as in `execute_notebook`. Returns
    `execute_notebook`'s dict, error the last line printed. Raises FileNotFoundError, OSError, and
    `LessonInterrupted` on Ctrl-C after killing the script and saving its output."""
    started = time.perf_counter()
    path, out_dir = Path(path).resolve(), Path(out_dir).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no script at {path}")
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path, lines, progress = out_dir / (path.stem + ".txt"), [], progress or (lambda event: None)
    progress({"event": "start", "total": 1})
    progress({"event": "cell", "done": 0, "total": 1, "first_line": f"python {path.name}"})
    with subprocess.Popen(
        [sys.executable, str(path)],
        cwd=path.parent,
        env=lesson_env(quick),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        encoding="utf-8",
        errors="replace",
        bufsize=1,
        preexec_fn=_die_with_parent(),
    ) as proc:
        killer = threading.Timer(timeout, proc.kill) if timeout is not None else None
        if killer is not None:
            killer.start()
        try:
            for line in proc.stdout:
                lines.append(line)
                progress({"event": "output", "name": "stdout", "text": line})
            code = proc.wait()
        except KeyboardInterrupt:
            with _signals_ignored():
                proc.kill()  # Popen's exit would otherwise wait for it
                proc.wait()
                saved = _save_or_none(lambda: log_path.write_text("".join(lines), encoding="utf-8"), log_path)
            progress({"event": "end", "status": "interrupted"})
            raise LessonInterrupted(
                _result("interrupted", started, "".join(lines), error=INTERRUPTED, executed_path=saved)
            ) from None
        finally:
            if killer is not None:
                killer.cancel()
    log_path.write_text("".join(lines), encoding="utf-8")
    last = [line.strip() for line in lines if line.strip()]
    error = None
    if code != 0 and timeout is not None and time.perf_counter() - started >= timeout:
        error = f"TimeoutError: {path.name} ran over {timeout} s"
    elif code != 0:
        error = last[-1] if last else f"exit status {code}"
    progress({"event": "end", "status": "failed" if error else "passed"})
    return _result("failed" if error else "passed", started, "".join(lines), error=error, executed_path=str(log_path))


def run_lesson(
    name, parameters=None, out_dir="build", progress=None, timeout=None, lessons=None, quick=False, answers=False
):
    """Run lesson `name` of `lessons` (default `LESSONS`) with `lesson_parameters(name, quick,
    parameters)`; with `answers` its answer notebook instead ("<name> answers", only the quick sizes its
    parameters cell assigns, saved in ``out_dir/solutions/``). Returns the result with "lesson" and
    "path"; anything the lesson raises is a "failed" result. Raises KeyError for an unknown name (or a
    script's answers) and `LessonInterrupted` on Ctrl-C."""
    path = Path((LESSONS if lessons is None else lessons)[name])
    if answers and lessons is None:
        path = answer_path(name)
        if path is None:
            raise KeyError(f"{name} is a script lesson: it has no answer notebook")
    if answers:  # beside the lesson's executed copy, which has the same file name
        out_dir = Path(out_dir) / ANSWERS_DIR
    path = path if path.is_absolute() else REPO_ROOT / path
    label = name + ANSWERS_SUFFIX if answers else name
    started = time.perf_counter()
    try:
        if path.suffix == ".ipynb":
            accepted = None  # with answers: the names its parameters cell assigns
            with contextlib.suppress(Exception):  # no such cell, or unreadable: execute_notebook says why
                if answers:
                    cells = nbformat.read(path, as_version=4).cells
                    tagged = [c for c in cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
                    accepted = parameter_names(tagged[0].source)
            result = execute_notebook(
                path,
                lesson_parameters(name, quick, parameters, accepted),
                out_dir,
                progress=progress,
                timeout=timeout,
                quick=quick,
            )
        else:
            result = run_script(path, out_dir, progress=progress, timeout=timeout, quick=quick)
    except LessonInterrupted as stop:
        stop.result = {"lesson": label, "path": str(path), **stop.result}
        raise
    except (OSError, ValueError) as exc:  # no such file, bad parameters, out_dir not writable
        result = _result("failed", started, error=f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # anything else this lesson raised must not stop the others
        result = _result("failed", started, error=_error_summary(exc))
    return {"lesson": label, "path": str(path), **result}
