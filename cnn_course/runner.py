"""Run the course's lessons headless and write the report.

`execute_notebook` runs one lesson notebook with parameters injected after its
``parameters`` cell (the papermill convention), saves the executed copy and an
HTML rendering, and reads the lines every lesson prints (``Data: ...``,
``Epochs run: N``, ``Test accuracy: NN.NN%``) into a result dict.
`run_script` does the same for the two plain-Python lessons.
`environment_info`, `write_report` and `format_table` describe the run.
`strip_notebook` clears outputs so notebooks stay diff-friendly in git.
`keras_backend` and `check_backend` say which Keras backend lessons run on.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import keyword
import math
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat

REPO_ROOT = Path(__file__).resolve().parents[1]

# Lesson name -> path relative to the repository root, in the order they run.
# conv-visualization comes after cifar10-cnn: it reuses that lesson's checkpoint.
# bottleneck-features comes before transfer-learning: it explains the backbone
# and its features, which transfer-learning then computes for every dog photo.
LESSONS = {
    "mnist-mlp": "mnist-mlp/mnist_mlp.ipynb",
    "cifar10-mlp": "cifar10-classification/cifar10_mlp.ipynb",
    "cifar10-cnn": "cifar10-classification/cifar10_cnn.ipynb",
    "cifar10-augmentation": "cifar10-augmentation/cifar10_augmentation.ipynb",
    "bottleneck-features": "transfer-learning/bottleneck_features.ipynb",
    "transfer-learning": "transfer-learning/transfer_learning.ipynb",
    "conv-visualization": "conv-visualization/conv_visualization.ipynb",
    "training-speed": "training-speed/training_speed.ipynb",
    "modern-cnn": "training-speed/modern_cnn.ipynb",
    "data-parallel": "training-speed/data_parallel.ipynb",
    "conv-dims": "conv-dims.py",
    "pool-dims": "pool-dims.py",
}

# What `run --quick` injects into each notebook lesson: small sizes and a
# checkpoint name of its own, so a smoke run never replaces a full run's
# checkpoint. The notebooks need no quick-mode cell; quick runs also set
# CNN_COURSE_QUICK=1 in the kernel, which lets the data loaders use labelled
# stand-ins (see cnn_course.data.quick_mode). User -p values override these.
QUICK_PARAMETERS = {
    "mnist-mlp": {"EPOCHS": 1, "N_TRAIN": 2000, "BATCH_SIZE": 128, "CHECKPOINT": "mnist_mlp.quick.keras"},
    "cifar10-mlp": {"EPOCHS": 1, "N_TRAIN": 2000, "CHECKPOINT": "cifar10_mlp.quick.keras"},
    "cifar10-cnn": {"EPOCHS": 1, "N_TRAIN": 2000, "BATCH_SIZE": 128, "CHECKPOINT": "cifar10_cnn.quick.keras"},
    "cifar10-augmentation": {
        "EPOCHS": 1, "N_TRAIN": 2000, "BATCH_SIZE": 128, "CHECKPOINT": "cifar10_augmentation.quick.keras",
        "PLAIN_CNN_CHECKPOINT": "../cifar10-classification/cifar10_cnn.quick.keras",
    },
    "bottleneck-features": {"N_PHOTOS": 2},
    "transfer-learning": {"IMAGE_SIZE": 64, "N_IMAGES": 100, "EPOCHS": 2,
                          "CHECKPOINT": "transfer_learning.quick.keras"},
    "conv-visualization": {
        "CNN_CHECKPOINT": "../cifar10-classification/cifar10_cnn.quick.keras", "N_TRAIN": 500, "EPOCHS": 1,
    },
    "training-speed": {"EPOCHS": 1, "N_TRAIN": 2000, "BATCH_SIZE": 128, "CHUNK_IMAGES": 1024, "ROUNDS": 1,
                       "SKIP": ["jit_compile", "threads"]},
    "modern-cnn": {"EPOCHS": 2, "N_TRAIN": 1000, "BATCH_SIZE": 128, "CHECKPOINT": "modern_cnn.quick.keras"},
    "data-parallel": {"EPOCHS": 1, "N_TRAIN": 512, "BATCH_SIZE": 64, "TIMING_ROUNDS": 1, "TIMING_STEPS": 2},
}

INJECTED_TAG = "injected-parameters"

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


# --------------------------------------------------------------------------
# Parameters


def parameter_names(source):
    """Return the names a parameters cell assigns at top level, in order.

    Raises SyntaxError when the cell is not valid Python.
    """
    names = []
    for node in ast.parse(source).body:
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        for target in targets:
            for sub in ast.walk(target):
                if isinstance(sub, ast.Name) and sub.id not in names:
                    names.append(sub.id)
    return names


def check_value(value):
    """Return `value` if it can be written into a notebook as a Python literal.

    Raises ValueError for a non-finite number (inf, nan: they read back as
    undefined names and cannot go into strict JSON), also inside a list,
    tuple, set or dict, and for a value whose repr() does not read back as
    the same literal (for example an arbitrary object).
    """
    def walk(item):
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"{item!r} is not a finite number")
        if isinstance(item, complex) and not (math.isfinite(item.real) and math.isfinite(item.imag)):
            raise ValueError(f"{item!r} is not a finite number")
        if isinstance(item, dict):
            for key, sub in item.items():
                walk(key)
                walk(sub)
        elif isinstance(item, (list, tuple, set, frozenset)):
            for sub in item:
                walk(sub)

    walk(value)
    text = repr(value)
    try:
        same = ast.literal_eval(text) == value
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        same = False
    if not same:
        raise ValueError(f"{text} cannot be written as a Python literal")
    return value


def parameters_source(parameters):
    """Return the source of the injected cell: one ``NAME = repr(value)`` line each.

    Raises ValueError when a name is not a valid Python identifier (keywords
    such as ``class`` included), or when a value is refused by `check_value`.
    """
    lines = ["# Parameters injected by cnn_course.runner"]
    for name, value in parameters.items():
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise ValueError(f"not a valid parameter name: {name!r}")
        try:
            check_value(value)
        except ValueError as exc:
            raise ValueError(f"parameter {name}: {exc}") from None
        lines.append(f"{name} = {value!r}")
    return "\n".join(lines) + "\n"


def inject_parameters(nb, parameters):
    """Insert a code cell tagged ``injected-parameters`` after the ``parameters`` cell.

    Modifies `nb` in place. A previously injected cell is replaced (re-running
    an executed copy is safe). Without a ``parameters`` cell the new cell goes
    first, as papermill does.

    Returns (index of the injected cell, list of warning strings): a warning for
    each injected name the parameters cell does not assign (the name is still
    injected: a notebook may read it with ``globals().get``), and one when
    the notebook has no parameters cell.
    Raises ValueError for invalid names or values (see `parameters_source`).
    """
    source = parameters_source(parameters)
    nb.cells = [c for c in nb.cells if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    warnings = []
    position = 0
    known = None
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            position = i + 1
            try:
                known = parameter_names(cell.source)
            except SyntaxError:
                known = None
            break
    else:
        warnings.append("the notebook has no cell tagged 'parameters'; parameters injected first")
    if known is not None:
        unknown = [name for name in parameters if name not in known]
        if unknown:
            warnings.append(
                "not in the notebook's parameters cell (injected anyway): " + ", ".join(unknown)
            )
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": [INJECTED_TAG]})
    nb.cells.insert(position, cell)
    return position, warnings


# --------------------------------------------------------------------------
# Executing


def lesson_parameters(name, quick=False, overrides=None):
    """Return the parameters to inject into lesson `name`.

    VERBOSE=2 (one line per epoch), then, when `quick`, the lesson's
    `QUICK_PARAMETERS`, then `overrides` (the user's ``-p`` values), later
    ones winning. Raises nothing; an unknown name simply has no quick sizes.
    """
    parameters = {"VERBOSE": 2}
    if quick:
        parameters.update(QUICK_PARAMETERS.get(name, {}))
    parameters.update(overrides or {})
    return parameters


# Paths the kernels and scripts read from the environment. Kernels run in
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

    Raises FileNotFoundError when `path` does not exist, ValueError for invalid
    parameters or when the executed copy would overwrite the source notebook,
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

    nb = nbformat.read(path, as_version=4)
    injected_at, warnings = inject_parameters(nb, dict(parameters or {}))
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
            nbformat.write(nb, executed_path)
            notify(event="end", status="interrupted")
            text = "".join(texts)
            raise LessonInterrupted(_result(
                "interrupted", started, error="KeyboardInterrupt: interrupted (Ctrl-C)", text=text,
                failed_cell=running_cell(), executed_path=str(executed_path), warnings=warnings,
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


class LessonInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a lesson. ``result`` is its partial result dict (status
    "interrupted"; what it printed so far, the executed copy of the cells run)."""

    def __init__(self, result):
        super().__init__("interrupted")
        self.result = result


@contextlib.contextmanager
def _sigint_ignored():
    """Ignore further Ctrl-C while cleaning up (main thread only), so that a
    second Ctrl-C cannot leave a kernel or a half-written file behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


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


def run_script(path, out_dir="build", progress=None, timeout=None, quick=False):
    """Run a lesson script with this interpreter and its default arguments.

    The script runs with its own folder as working directory; what it prints
    (stdout and stderr together) is saved to ``out_dir/<name>.txt`` and passed
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
        text=True,
        bufsize=1,
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
                log_path.write_text(text, encoding="utf-8")
            notify(event="end", status="interrupted")
            raise LessonInterrupted(_result(
                "interrupted", started, error="KeyboardInterrupt: interrupted (Ctrl-C)", text=text,
                executed_path=str(log_path), **parse_output(text))) from None
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
    exception. Raises KeyError for a name that is not in `lessons`, and
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
    return {"lesson": name, "path": str(path), **result}


# --------------------------------------------------------------------------
# The Keras backend

# Keras backend -> the package it needs (the name `import` uses).
BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


class BackendError(ValueError):
    """The requested Keras backend is unknown or not installed (a usage error)."""


def keras_backend(choice=None):
    """Return the name of the Keras backend lessons will run on.

    `choice` when given; else the environment variable KERAS_BACKEND; else the
    "backend" of Keras's config file ($KERAS_HOME/keras.json, or
    ~/.keras/keras.json); else "tensorflow" (the order Keras itself follows).
    Raises nothing; the name is not checked (see `check_backend`).
    """
    if choice:
        return choice
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    try:
        configured = json.loads((home / "keras.json").read_text(encoding="utf-8")).get("backend")
    except (OSError, ValueError, AttributeError):
        configured = None
    return configured if isinstance(configured, str) and configured else "tensorflow"


def installed_backends():
    """Return the names of the Keras backends whose package is installed (tuple, in BACKENDS order).

    Looks the packages up without importing them, so it is quick. Raises nothing.
    """
    import importlib.util

    return tuple(name for name, module in BACKENDS.items() if importlib.util.find_spec(module) is not None)


def check_backend(name):
    """Return `name` when it is a Keras backend whose package is installed.

    Raises BackendError with a one-line message that says what to do otherwise.
    """
    if name not in BACKENDS:
        raise BackendError(f"{name!r} is not a Keras backend the lessons train on; "
                           f"choose one of {', '.join(BACKENDS)} "
                           f"(--backend or the environment variable KERAS_BACKEND)")
    if name not in installed_backends():
        install = {"tensorflow": "pip install tensorflow", "jax": 'pip install "jax[cpu]"',
                   "torch": "pip install torch"}[name]
        raise BackendError(f"the Keras backend {name!r} is not installed in this Python "
                           f"({sys.executable}); install it ({install}, or see README.md, "
                           f"\"Keras backends and GPUs\") or choose another")
    return name


# --------------------------------------------------------------------------
# The machine the run used

_PROBE = r"""
import collections, json, os, platform, sys
info = {"python": platform.python_version(), "platform": platform.platform(terse=True)}
try:
    import keras
    info["keras"] = keras.__version__
    backend = keras.backend.backend()
    info["backend"] = backend
    names = []
    if backend == "tensorflow":
        import tensorflow as tf
        info["backend_version"] = tf.__version__
        for gpu in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(gpu)
            names.append(details.get("device_name") or gpu.name)
    elif backend == "jax":
        import jax
        info["backend_version"] = jax.__version__
        names = [d.device_kind for d in jax.devices() if d.platform != "cpu"]
    elif backend == "torch":
        import torch
        info["backend_version"] = torch.__version__
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    counts = collections.Counter(names)
    info["device"] = ", ".join(n if c == 1 else f"{c} x {n}" for n, c in counts.items()) or "CPU"
except Exception as exc:
    info["error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(info))
"""


def environment_info(timeout=120):
    """Describe the machine lessons run on, from one subprocess of this interpreter.

    Returns a dict with python, platform, keras, backend, backend_version and
    device ("CPU", or the GPU names); keys that could not be found are "?",
    and "error" says why. Never raises.
    """
    info = {"python": platform.python_version(), "platform": platform.platform(terse=True)}
    env = _kernel_env()
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX: do not grab GPU memory
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE],
            capture_output=True, text=True, env=env, timeout=timeout, stdin=subprocess.DEVNULL,
        )
        lines = done.stdout.strip().splitlines()
        if not lines:
            raise RuntimeError((done.stderr.strip().splitlines() or ["no output"])[-1])
        info.update(json.loads(lines[-1]))
    except Exception as exc:
        info["error"] = f"{type(exc).__name__}: {exc}"
    for key in ("keras", "backend", "backend_version", "device"):
        info.setdefault(key, "?")
    return info


# --------------------------------------------------------------------------
# The report

_REPORT_KEYS = (
    "lesson", "path", "status", "data", "epochs", "test_accuracy", "wall_time_s",
    "error", "failed_cell", "executed_path", "html_path", "warnings",
)


def build_report(results, environment, quick, parameters, wall_time_s=None, not_run=()):
    """Return the report as a JSON-ready dict.

    `results` are `run_lesson` dicts (their printed text is left out: the saved
    executed copies hold it). The dict has "mode" ("quick" or "full"),
    "parameters", "environment", "passed"/"failed" counts, "interrupted"
    (True when a lesson was stopped by Ctrl-C: its status is "interrupted"),
    "not_run" (the chosen lessons that never started, from `not_run`),
    "wall_time_s" and "lessons" (one dict per lesson with the keys in `_REPORT_KEYS`).
    """
    lessons = [{key: r.get(key) for key in _REPORT_KEYS} for r in results]
    return {
        "mode": "quick" if quick else "full",
        "parameters": dict(parameters),
        "environment": dict(environment),
        "passed": sum(r["status"] == "passed" for r in lessons),
        "failed": sum(r["status"] == "failed" for r in lessons),
        "interrupted": any(r["status"] == "interrupted" for r in lessons) or bool(not_run),
        "not_run": list(not_run),
        "wall_time_s": wall_time_s,
        "lessons": lessons,
    }


def _minutes(seconds):
    """Return seconds as "m:ss" ("-" for None)."""
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def describe_failure(lesson):
    """Return one line saying where a failed lesson failed and why.

    Cells are counted from 1 in the source notebook, markdown cells included
    (failed_cell["index"] + 1), e.g. "cell 3 `raise ValueError(...)`: ValueError: boom".
    """
    cell = lesson.get("failed_cell")
    where = ""
    if cell:
        number = "the injected parameters cell" if cell["index"] is None else f"cell {cell['index'] + 1}"
        where = f"{number} `{cell['first_line']}`: "
    error = " ".join((lesson.get("error") or "failed").split())  # one line, even for long messages
    if len(error) > 300:
        error = error[:297] + "..."
    return f"{where}{error}"


def short_data(data, width=80):
    """Return a "Data:" text short enough for a table column ("-" for None).

    When the text is longer than `width`, a real dataset's details shrink to
    "(real)" and a trailing parenthesised remark (e.g. how to get the real
    data) is dropped; what is still too long is cut with "...". The full text
    stays in results.json.
    """
    if not data:
        return "-"
    if len(data) > width:
        data = re.sub(r" \(real,[^()]*\)", " (real)", data)
    if len(data) > width and data.endswith(")") and " (" in data and not data.endswith(" (real)"):
        data = data[: data.rindex(" (")]
    return data if len(data) <= width else data[: width - 3].rstrip() + "..."


def format_table(report):
    """Return the report's lesson table as an aligned Markdown table (str).

    Columns: lesson, status, data (see `short_data`), epochs, test accuracy,
    wall time; "-" stands for nothing reported (e.g. the scripts use no data).
    """
    header = ["Lesson", "Status", "Data", "Epochs", "Test accuracy", "Wall time"]
    rows = []
    for r in report["lessons"]:
        accuracy = r.get("test_accuracy")
        rows.append([
            r["lesson"],
            r["status"] if r["status"] == "passed" else r["status"].upper(),
            short_data(r.get("data")).replace("|", "/"),
            "-" if r.get("epochs") is None else str(r["epochs"]),
            "-" if accuracy is None else f"{accuracy:.2f}%",
            _minutes(r.get("wall_time_s")),
        ])
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    right = {3, 4, 5}

    def line(cells):
        padded = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join("-" * (w + 1) + ":" if i in right else "-" * (w + 2) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), rule] + [line(row) for row in rows])


def format_environment(report):
    """Return one line naming the mode, device, Keras backend and versions."""
    env = report["environment"]
    line = (
        f"Mode: {report['mode']}; device: {env.get('device', '?')}; "
        f"Keras {env.get('keras', '?')} on {env.get('backend', '?')} {env.get('backend_version', '?')}; "
        f"Python {env.get('python', '?')}"
    )
    if env.get("error"):
        line += f" (environment probe failed: {env['error']})"
    return line


def format_report(report):
    """Return the whole report as Markdown: environment, table, failures, totals."""
    parts = ["# Course run", "", format_environment(report), "", format_table(report), ""]
    for status, title in (("failed", "Failures"), ("interrupted", "Interrupted")):
        stopped = [r for r in report["lessons"] if r["status"] == status]
        if stopped:
            parts += [f"## {title}", ""]
            parts += [f"- **{r['lesson']}**: {describe_failure(r)}" for r in stopped]
            parts.append("")
    total = _minutes(report.get("wall_time_s"))
    totals = f"{report['passed']} passed, {report['failed']} failed"
    if report.get("interrupted"):
        totals += ", interrupted (Ctrl-C)"
        if report.get("not_run"):
            totals += f"; not run: {', '.join(report['not_run'])}"
    parts.append(f"{totals}, total wall time {total}.")
    return "\n".join(parts) + "\n"


def _strict(value):
    """Return `value` with non-finite floats replaced by their text ("inf"),
    so that results.json stays strict JSON whatever a lesson reported."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {key: _strict(sub) for key, sub in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(sub) for sub in value]
    return value


def check_out_dir(out_dir):
    """Make sure lessons' outputs and the report can be written to `out_dir`.

    Creates the folder (and its parents) when missing and writes and removes
    a probe file in it. Returns the folder as an absolute Path. Raises
    ValueError, with a one-line reason, when it is a file, lies inside one,
    or cannot be written.
    """
    out_dir = Path(out_dir).expanduser().absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir} is a file, not a folder")
    inside = next((p for p in out_dir.parents if p.exists() and not p.is_dir()), None)
    if inside is not None:
        raise ValueError(f"{out_dir} would lie inside {inside}, which is a file")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ValueError(f"{out_dir} cannot be written: {reason}") from None
    return out_dir


def write_report(report, out_dir="build"):
    """Write ``out_dir/results.json`` (strict JSON) and ``out_dir/results.md``.

    Returns (json_path, md_path). Raises OSError when they cannot be written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "results.json"
    md_path = out_dir / "results.md"
    json_path.write_text(json.dumps(_strict(report), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    md_path.write_text(format_report(report), encoding="utf-8")
    return json_path, md_path


# --------------------------------------------------------------------------
# Keeping notebooks diff-friendly


_TRANSIENT_CELL_METADATA = ("execution", "collapsed", "scrolled", "ExecuteTime")
_TRANSIENT_NOTEBOOK_METADATA = ("widgets", "papermill")


def strip_notebook(path):
    """Clear outputs, execution counts and transient metadata of a notebook in place.

    Cells tagged ``injected-parameters`` (left by a run) are removed too.
    The file is rewritten only when something changed, and replaced whole
    (never left half-written). Returns True when the file changed.
    Raises FileNotFoundError when it
    does not exist and nbformat's errors when it is not a notebook.
    """
    path = Path(path)
    before = path.read_text(encoding="utf-8")
    nb = nbformat.reads(before, as_version=4)
    nb.cells = [c for c in nb.cells if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    for cell in nb.cells:
        for key in _TRANSIENT_CELL_METADATA:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    for key in _TRANSIENT_NOTEBOOK_METADATA:
        nb.metadata.pop(key, None)
    after = nbformat.writes(nb)
    after += "" if after.endswith("\n") else "\n"
    if after == before:
        return False
    # Replace the file whole: an interrupted or failed write leaves the notebook as it was.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(after, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return True


def tracked_notebooks(root=REPO_ROOT):
    """Return the .ipynb files under `root` that git tracks or would track (sorted Paths).

    Untracked notebooks that are not git-ignored count (a new lesson is stripped
    before its first commit); ignored ones (build/) do not. Falls back to every .ipynb under `root` outside hidden folders, build/
    and tests/ when git is unavailable.
    """
    root = Path(root)
    try:
        done = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "*.ipynb"],
            cwd=root, capture_output=True, text=True, check=True,
        )
        return sorted({root / name for name in done.stdout.split("\0") if name})
    except (OSError, subprocess.CalledProcessError):
        skip = {"build", "tests"}
        return sorted(
            p for p in root.rglob("*.ipynb")
            if not any(part.startswith(".") or part in skip for part in p.relative_to(root).parts[:-1])
        )
