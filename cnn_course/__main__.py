"""The course's command line.

    python -m cnn_course run [LESSON ...] [--answers] [--quick] [-p NAME=VALUE ...] [--out DIR] [--backend NAME]
    python -m cnn_course data status | fetch [NAME|all]
    python -m cnn_course strip [NOTEBOOK ...]

Exit status: 0 when everything passed, 1 when a lesson or a data command failed, 2 for a usage
error (checked before anything runs), 130 when Ctrl-C, SIGTERM or SIGHUP stopped the command (each
handled as Ctrl-C: what was running is stopped and cleaned up, "interrupted" is printed).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import keyword
import math
import os
import re
import shutil
import signal
import sys
import textwrap
import threading
import time
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _stop_on_signals():
    """Make SIGTERM and SIGHUP raise KeyboardInterrupt unless ignored (``nohup``); main thread only.
    Returns {signal: previous handler} for what it changed."""
    signals = (getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
    return {s: signal.signal(s, _raise_interrupt) for s in signals if signal.getsignal(s) is not signal.SIG_IGN}


def _interrupted():
    print("\ninterrupted", file=sys.stderr, flush=True)
    return EXIT_INTERRUPTED


if __name__ == "__main__":  # from the first moment: SIGTERM and SIGHUP as Ctrl-C
    _stop_on_signals()
try:  # loading these takes about a second: a stop then must not print a traceback
    from cnn_course import backends, keras_check, lessons, notebooks, reports, runner
except KeyboardInterrupt:
    if __name__ != "__main__":
        raise
    sys.exit(_interrupted())

MAX_TIMEOUT_S = 30 * 24 * 3600  # the longest --timeout, far below what threading's and asyncio's timers hold
_EPOCH_RE = re.compile(r"^Epoch (\d+)/(\d+)$")
_STEPS_RE = re.compile(r"^\d+/\d+ - ")


def parse_parameter(text):
    """Return (name, value) for one ``-p NAME=VALUE``, VALUE a Python literal or else the raw string.
    Raises ValueError for no "=", a NAME that is no identifier, or a value `lessons.check_value` refuses."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep:
        raise ValueError(f"-p {text!r}: expected NAME=VALUE, for example -p EPOCHS=3")
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"-p {text!r}: {name!r} is not a valid Python name")
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        value = raw
    try:
        return name, lessons.check_value(value)
    except ValueError as exc:
        raise ValueError(f"-p {text!r}: {exc}") from None


def positive_seconds(text):
    """Return ``--timeout`` as whole seconds, rounded up. Raises argparse.ArgumentTypeError unless
    above 0 and at most `MAX_TIMEOUT_S`."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number of seconds above 0")
    if seconds > MAX_TIMEOUT_S:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at most {MAX_TIMEOUT_S} seconds (30 days)")
    return math.ceil(seconds)


def build_parser():
    """Return the argparse parser of the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m cnn_course", description="Run the Keras CNN course's lessons headless and manage its datasets."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    names = textwrap.fill(
        ", ".join(runner.LESSONS), 76, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False
    )
    run = commands.add_parser(
        "run",
        help="execute lessons and write the report",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Execute lessons (default: all, in course order), save each executed notebook\nand its "
        f"HTML under the out folder, and write results.json and results.md there.\nLessons:\n{names}",
        epilog="examples:\n  python -m cnn_course run --quick\n  python -m cnn_course run mnist-mlp -p EPOCHS=3\n"
        "  python -m cnn_course run --quick --backend jax\n  python -m cnn_course run --answers mnist-mlp --quick",
    )
    run.add_argument("lessons", nargs="*", metavar="LESSON", help="lessons to run (default: all)")
    run.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: each lesson's small sizes (QUICK_PARAMETERS in cnn_course/lessons.py), "
        "labelled stand-in data where the real data is missing",
    )
    run.add_argument(
        "--answers",
        action="store_true",
        help="run the lessons' worked answers (solutions/<notebook>) instead, reported as '<lesson> answers'",
    )
    run.add_argument(
        "-p",
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a notebook parameter (repeatable); VALUE is a Python literal, else a string. "
        "VERBOSE=2 unless given. The script lessons (conv-dims, pool-dims) take none",
    )
    run.add_argument("--out", default="build", metavar="DIR", help="where outputs and the report go (default: build)")
    run.add_argument(
        "--timeout",
        type=positive_seconds,
        metavar="SECONDS",
        help="fail a notebook cell (or a script) that runs longer than this (default: no limit)",
    )
    run.add_argument(
        "--backend",
        choices=list(backends.BACKENDS),
        help="the Keras backend the lessons run on (default: $KERAS_BACKEND, else tensorflow)",
    )
    run.set_defaults(handler=cmd_run, subparser=run)

    data = commands.add_parser("data", help="find or download the datasets")
    actions = data.add_subparsers(dest="action", metavar="ACTION", required=True)
    status = actions.add_parser("status", help="list each dataset: where it was found, or how to get it")
    fetch = actions.add_parser("fetch", help="download a dataset into the cache and check it (default: every one)")
    fetch.add_argument("name", metavar="NAME", nargs="?", default="all", help="mnist, cifar10, dogs, weights, or all")
    for sub in (status, fetch):
        sub.set_defaults(handler=cmd_data, subparser=sub)

    strip = commands.add_parser("strip", help="clear notebooks' outputs in place (default: the repository's)")
    strip.add_argument("notebooks", nargs="*", metavar="NOTEBOOK")
    strip.set_defaults(handler=cmd_strip, subparser=strip)
    return parser


def compact_epoch(epoch_line, steps_line):
    """Return one short line for a Keras verbose=2 epoch: "Epoch 3/10" and
    "469/469 - 2s - 4ms/step - accuracy: 0.97" give "epoch 3/10  2s - accuracy: 0.97"."""
    parts = [p for p in steps_line.strip().split(" - ")[1:] if not p.endswith("/step")]
    return f"{epoch_line.strip().replace('Epoch', 'epoch')}  " + " - ".join(parts)


def console_progress(label, out, tty):
    """Return (progress, finish): `progress(event)` shows the runner's events on `out` (on a TTY a
    status line redrawn every second, else a line per cell; epoch lines compacted, "Data:" and
    "Weights:" lines as they come); `finish(text)` stops it and prints `text` as the lesson's line."""
    state = {"total": 0, "cell": 0, "line": "starting", "epoch": None}
    partial = {}  # stream name -> its unfinished last line
    started, lock, stop = time.perf_counter(), threading.Lock(), threading.Event()

    def status():
        elapsed = reports.format_minutes(time.perf_counter() - started)
        line = f"{label}  cell {state['cell']}/{state['total']}  {elapsed}  {state['line']}"
        return line[: max(shutil.get_terminal_size((100, 20)).columns - 1, 20)] if tty else line

    def write(text="", redraw=True):  # a line of its own; on a TTY, then the status line again
        with lock:
            if tty and not stop.is_set():
                out.write("\r\x1b[K" + (text + "\n" if text else "") + (status() if redraw else ""))
            elif text:
                out.write(text + "\n")
            out.flush()

    def show(name, text):
        lines = (partial.get(name, "") + text).split("\n")
        partial[name] = lines.pop()
        for line in (line.rsplit("\r", 1)[-1].rstrip() for line in lines):
            if _EPOCH_RE.match(line):
                state["epoch"] = line
            elif _STEPS_RE.match(line) and (state["epoch"] or " - val_" in line):  # one epoch has no header
                write("    " + compact_epoch(state["epoch"] or "Epoch 1/1", line))
                state["epoch"] = None
            elif line.startswith(("Data:", "Weights:")):
                write("    " + line)

    def progress(event):
        if event["event"] == "start":
            state["total"] = event["total"]
        elif event["event"] == "cell":
            state["cell"], state["line"] = event["done"] + 1, event["first_line"]
            write() if tty else write(status())
        elif event["event"] == "output":
            show(event.get("name", "stdout"), event["text"])

    def tick():
        while not stop.wait(1.0):
            write()

    if tty:
        threading.Thread(target=tick, daemon=True).start()

    def finish(text):
        stop.set()
        with lock:
            out.write(("\r\x1b[K" if tty else "") + text + "\n")
            out.flush()

    return progress, finish


def lesson_summary(result):
    """Return the one-line outcome of a lesson: status, time, accuracy or failure."""
    text = f"{result['status']:>6}  {reports.format_minutes(result['wall_time_s'] or 0)}"
    if result["status"] != "passed":
        return text.replace("failed", "FAILED") + "  " + reports.describe_failure(result)
    if result.get("test_accuracy") is not None:
        text += f"  Test accuracy {result['test_accuracy']:.2f}%" + " (stand-in)" * reports.used_stand_in(result)
    return text


def script_lessons(names):
    """Return the lessons among `names` that are scripts (run without -p)."""
    return [name for name in names if Path(runner.LESSONS[name]).suffix != ".ipynb"]


def _check_settings():
    """Raise SettingError (a ValueError) for a bad CNN_COURSE_* or KERAS_HOME setting."""
    from cnn_course import data

    for check in (data.offline, data.quick_mode, data.data_dirs, data.keras_home):
        check()


def check_run_arguments(args, parser):
    """Return (lessons in course order, ``-p`` values, out folder created, its lock or None), checked
    before anything runs; else exit through ``parser.error`` (status 2, one line)."""
    if not lessons.IN_CHECKOUT:
        parser.error(lessons.NOT_IN_CHECKOUT)
    known = runner.LESSONS
    unknown = [name for name in args.lessons if name not in known]
    if unknown:
        parser.error(f"unknown lesson {', '.join(map(repr, unknown))}; valid names: {', '.join(known)}")
    chosen = [name for name in known if name in args.lessons] if args.lessons else list(known)
    if args.answers and not args.lessons:  # every answer notebook there is
        chosen = [name for name in chosen if name + lessons.ANSWERS_SUFFIX in lessons.answer_lessons()]
    for name in chosen if args.answers and args.lessons else []:
        path = lessons.answer_path(name)
        if path is None:
            parser.error(f"--answers: {name} is a script lesson; it has no answer notebook")
        if not (lessons.REPO_ROOT / path).is_file():
            parser.error(f"--answers: {name} has no answer notebook yet ({path} does not exist)")
    try:
        parameters = dict(parse_parameter(text) for text in args.parameter)
    except ValueError as exc:
        parser.error(str(exc))
    scripts = script_lessons(chosen)
    if args.parameter and len(scripts) == len(chosen):
        parser.error(
            f"-p sets notebook parameters, and {' and '.join(scripts)} "
            f"{'is a script' if len(scripts) == 1 else 'are scripts'}, run with default "
            "arguments: drop -p (or run the script yourself with its options, see its --help)"
        )
    if not args.out:
        parser.error("--out: must name a folder (an empty name is no folder)")
    try:
        _check_settings()
    except ValueError as exc:
        parser.error(_one_line(exc))
    try:  # last, as it creates the folder
        out_dir = reports.check_out_dir(args.out)
        return chosen, parameters, out_dir, reports.lock_out_dir(out_dir)
    except ValueError as exc:
        parser.error(f"--out {args.out}: {exc}")


def cmd_run(args, parser, out):
    """Run the chosen lessons, print progress and the report, write it; return the exit status.
    Ctrl-C stops the lesson at once, writes the report of what ran and returns 130."""
    try:  # before anything runs: the lessons' kernels and scripts inherit KERAS_BACKEND
        os.environ["KERAS_BACKEND"] = backends.check_backend(backends.keras_backend(args.backend))
    except backends.BackendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    chosen, parameters, out_dir, lock = check_run_arguments(args, parser)
    try:
        return _run_lessons(args, chosen, parameters, out_dir, out)
    finally:
        if lock is not None:
            os.close(lock)


def _run_lessons(args, chosen, parameters, out_dir, out):
    started, suffix = time.perf_counter(), lessons.ANSWERS_SUFFIX if args.answers else ""
    shown = lessons.lesson_parameters(None, False, parameters)  # what every lesson gets
    what = "lesson answer notebook(s)" if args.answers else "lesson(s)"
    mode = "quick mode" if args.quick else "full mode"
    sizes = " and each lesson's quick sizes" if args.quick else ""
    values = ", ".join(f"{k}={v!r}" for k, v in shown.items())
    out.write(f"Running {len(chosen)} {what}, {mode}, parameters {values}{sizes}; outputs in {out_dir}/\n")
    missing = lessons.lessons_without_answers() if args.answers and not args.lessons else []
    if missing:
        out.write(f"note: no answer notebook yet for {', '.join(missing)} (in {lessons.ANSWERS_DIR}/)\n")
    ignoring = script_lessons(chosen) if args.parameter else []
    if ignoring:
        out.write(f"note: -p does not reach {', '.join(ignoring)}: script lessons run with their default arguments\n")
    out.flush()
    environment, results, interrupted = {}, [], False
    try:
        environment = backends.environment_info()
        out.write(
            f"Device: {environment['device']}; Keras {environment['keras']} on "
            f"{environment['backend']} {environment['backend_version']}; Python {environment['python']}\n"
        )
        for number, name in enumerate(chosen, 1):
            label = f"[{number}/{len(chosen)}] {name}{suffix}"
            progress, finish = console_progress(label, out, out.isatty())
            try:
                result = runner.run_lesson(
                    name,
                    parameters,
                    out_dir,
                    progress=progress,
                    timeout=args.timeout,
                    quick=args.quick,
                    answers=args.answers,
                )
            except KeyboardInterrupt as stop:
                finish(f"{label}  interrupted")
                if isinstance(stop, runner.LessonInterrupted):
                    results.append(stop.result)
                raise
            finish(f"{label}  {lesson_summary(result)}")
            for warning in result.get("warnings") or []:
                out.write(f"    note: {warning}\n")
            results.append(result)
    except KeyboardInterrupt:
        interrupted = True
        out.flush()
        print("interrupted", file=sys.stderr, flush=True)
    ran = {r["lesson"] for r in results}
    not_run = [name + suffix for name in chosen if name + suffix not in ran]
    wall_time_s = round(time.perf_counter() - started, 1)
    report = reports.build_report(results, environment, args.quick, shown, wall_time_s, not_run)
    out.write("\n" + reports.format_report(report).split("\n", 2)[2])  # printed first: never lost
    out.flush()
    try:
        json_path, md_path = reports.write_report(report, out_dir)
    except OSError as exc:
        print(f"error: the report could not be written to {out_dir}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_INTERRUPTED if interrupted else EXIT_FAILED
    out.write(f"Report: {md_path} and {json_path}\n")
    steps = "" if interrupted else reports.next_steps(report, python=python_command())
    out.write("\n" + steps if steps else "")
    out.flush()
    return EXIT_INTERRUPTED if interrupted else EXIT_OK if report["failed"] == 0 else EXIT_FAILED


def python_command():
    """Return how to start this interpreter from here: "python", or a virtual environment's python
    (relative when below this folder)."""
    if sys.prefix == sys.base_prefix:
        return "python"
    venv_python = Path(sys.prefix) / "bin" / "python"
    with contextlib.suppress(ValueError):
        return str(venv_python.relative_to(Path.cwd()))
    return str(venv_python)


def format_status_table(rows):
    """Return `data status` rows as a table: each dataset, found, MISSING or BROKEN, and where it is
    or how to get it."""
    table = []
    for r in rows:
        status = r.get("status") or ("found" if r["found"] else "missing")
        where = _one_line(r["where"] if status == "found" else r["how"])
        table.append((r["name"], "found" if status == "found" else status.upper(), where))
    lines = reports.text_table(("Dataset", "Status", "Where / how to get it"), table).splitlines()
    return "\n".join(lines[:1] + lines[2:])  # no rule under the header


def _one_line(text) -> str:
    """``text`` as one line: its lines joined with "; "."""
    return "; ".join(s.strip() for s in str(text).splitlines() if s.strip())


def cmd_data(args, parser, out):
    """Run `data status|fetch`; return 0, 1 for a data error, 2 for a usage error (an unknown dataset,
    a bad setting). Errors are one line."""
    from cnn_course import data

    fetch_all = args.action == "fetch" and args.name == "all"
    if args.action == "fetch" and args.name not in data.DATASETS and not fetch_all:
        parser.error(f"unknown dataset {args.name!r}; valid names: {', '.join(data.DATASETS)}, all")

    def error_line(exc):  # an OSError by its file and reason
        if not isinstance(exc, OSError) or exc.strerror is None:
            return _one_line(exc)
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror

    # fetch may import Keras to download or read a file: no TensorFlow start-up notices
    with keras_check.quiet_tensorflow():
        try:
            _check_settings()  # a typo in any setting is a usage error, whatever the action
            if args.action == "status":
                out.write(format_status_table(data.dataset_status()) + "\n")
            elif fetch_all:
                failed = 0
                for name, result in data.fetch_all():  # one line each; a failure does not stop it
                    if isinstance(result, Exception):
                        failed += 1
                        print(f"error: {name}: {error_line(result)}", file=sys.stderr)
                    else:
                        out.write(f"{name}: {result}\n")
                        out.flush()
                return EXIT_FAILED if failed else EXIT_OK
            else:
                out.write(f"{args.name}: {data.fetch(args.name)}\n")
        except data.SettingError as exc:
            print(f"error: {_one_line(exc)}", file=sys.stderr)
            return EXIT_USAGE
        except (data.DataError, data.DatasetNotFound, ValueError, OSError) as exc:
            print(f"error: {error_line(exc)}", file=sys.stderr)
            return EXIT_FAILED
    return EXIT_OK


def cmd_strip(args, parser, out):
    """Strip the given notebooks (default: the repository's); return the exit status."""
    if not args.notebooks and not lessons.IN_CHECKOUT:  # never every notebook in site-packages
        parser.error(
            "no notebook named, and the installed cnn-course package holds no lessons: name the notebooks to strip"
        )
    paths = [Path(p) for p in args.notebooks] or notebooks.tracked_notebooks()
    changed = failed = 0
    for path in paths:
        try:
            if notebooks.strip_notebook(path):
                changed += 1
                out.write(f"stripped {path}\n")
        except Exception as exc:  # not found, not JSON, not a notebook
            failed += 1
            print(f"error: {path}: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
    out.write(f"{changed} of {len(paths)} notebook(s) changed\n")
    return EXIT_FAILED if failed else EXIT_OK


@contextlib.contextmanager
def stop_signals_interrupt():
    """Within the block SIGTERM and SIGHUP raise KeyboardInterrupt as Ctrl-C does (`_stop_on_signals`);
    the previous handlers are put back after it."""
    previous = _stop_on_signals() if threading.current_thread() is threading.main_thread() else {}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv=None):
    """Run the command line with `argv` (default sys.argv[1:]); return the exit status. Usage errors
    exit through argparse (SystemExit 2); Ctrl-C, SIGTERM and SIGHUP end it with 130."""
    try:
        with stop_signals_interrupt():
            args = build_parser().parse_args(argv)
            return args.handler(args, args.subparser, sys.stdout)
    except KeyboardInterrupt:
        return _interrupted()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # in the instant between main's handlers and its return
        sys.exit(_interrupted())
