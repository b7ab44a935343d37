"""The report of a course run: results.json and results.md.

`build_report` gathers the lessons' results, `format_report` (with
`format_table` and `describe_failure`) writes them as Markdown, and
`write_report` saves both files, atomically, in the out folder that
`check_out_dir` checked and `lock_out_dir` keeps to one run at a time.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import secrets
import tempfile
from pathlib import Path

_REPORT_KEYS = (
    "lesson",
    "path",
    "status",
    "data",
    "epochs",
    "test_accuracy",
    "wall_time_s",
    "error",
    "failed_cell",
    "executed_path",
    "html_path",
    "warnings",
)

STAND_IN_FOOTNOTE = (
    "(stand-in): the lesson ran on stand-in data (generated images, or random "
    "weights), so its accuracy says nothing about the real dataset."
)
_GET_COMMAND_RE = re.compile(r"`(python -m cnn_course data fetch [^`]+)`")


def used_stand_in(lesson):
    """Return True when a lesson's ``Data:``/``Weights:`` text names a stand-in."""
    return "STAND-IN" in (lesson.get("data") or "")


def build_report(results, environment, quick, parameters, wall_time_s=None, not_run=()):
    """Return the report as a JSON-ready dict.

    `results` are `run_lesson` dicts (their printed text is left out: the saved
    executed copies hold it). The dict has "mode" ("quick" or "full"),
    "parameters", "environment", "passed"/"failed" counts, "interrupted"
    (True when a lesson was stopped by Ctrl-C: its status is "interrupted"),
    "not_run" (the chosen lessons that never started, from `not_run`),
    "wall_time_s" and "lessons" (one dict per lesson with the keys in
    `_REPORT_KEYS`, and "stand_in": True when it ran on stand-in data).
    """
    lessons = [{**{key: r.get(key) for key in _REPORT_KEYS}, "stand_in": used_stand_in(r)} for r in results]
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


def format_minutes(seconds):
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
    A stand-in lesson's accuracy reads "75.56% (stand-in)" (see `STAND_IN_FOOTNOTE`).
    """
    header = ["Lesson", "Status", "Data", "Epochs", "Test accuracy", "Wall time"]
    rows = [
        [
            r["lesson"],
            r["status"] if r["status"] == "passed" else r["status"].upper(),
            short_data(r.get("data")).replace("|", "/"),
            "-" if r.get("epochs") is None else str(r["epochs"]),
            "-"
            if r.get("test_accuracy") is None
            else f"{r['test_accuracy']:.2f}%" + (" (stand-in)" if used_stand_in(r) else ""),
            format_minutes(r.get("wall_time_s")),
        ]
        for r in report["lessons"]
    ]
    return text_table(header, rows, right={3, 4, 5}, markdown=True)


def text_table(header, rows, right=(), markdown=False, sep="  "):
    """Return ``rows`` (sequences of str) under ``header`` as aligned columns: the course's one table formatter.

    Columns whose index is in ``right`` are right-aligned; a header cell
    padded with spaces sets its column's least width. Plain text: ``sep``
    between columns and a dashed rule under the header; ``markdown``:
    a Markdown table (right columns ``---:``). A row shorter than the header
    (a note such as "skipped: ...") fills its first columns and lets its last
    cell run on. Raises nothing of its own.
    """
    full = [[str(c) for c in r] for r in [header, *rows] if len(r) == len(header)]
    widths = [max(len(r[i]) for r in full) for i in range(len(header))]

    def line(cells):
        cells = [str(c) for c in cells]
        padded = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells[:-1], widths))]
        last = (
            cells[-1]
            if len(cells) < len(header)
            else (cells[-1].rjust(widths[-1]) if len(header) - 1 in right else cells[-1].ljust(widths[-1]))
        )
        return "| " + " | ".join(padded + [last]) + " |" if markdown else sep.join(padded + [last]).rstrip()

    if markdown:
        rule = "|" + "|".join("-" * (w + 1) + ":" if i in right else "-" * (w + 2) for i, w in enumerate(widths)) + "|"
    else:
        rule = "-" * len(line(header))
    return "\n".join([line(header), rule] + [line(r) for r in rows])


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
    if any(used_stand_in(r) and r.get("test_accuracy") is not None for r in report["lessons"]):
        parts += [STAND_IN_FOOTNOTE, ""]
    for status, title in (("failed", "Failures"), ("interrupted", "Interrupted")):
        stopped = [r for r in report["lessons"] if r["status"] == status]
        if stopped:
            parts += [f"## {title}", ""]
            parts += [f"- **{r['lesson']}**: {describe_failure(r)}" for r in stopped]
            parts.append("")
    total = format_minutes(report.get("wall_time_s"))
    totals = f"{report['passed']} passed, {report['failed']} failed"
    if report.get("interrupted"):
        totals += ", interrupted (Ctrl-C or a stop signal)"
        if report.get("not_run"):
            totals += f"; not run: {', '.join(report['not_run'])}"
    parts.append(f"{totals}, total wall time {total}.")
    return "\n".join(parts) + "\n"


def next_steps(report, python="python"):
    """Return the "Next steps" block for the end of a smoke run ("" when it does not apply).

    It applies when the run was in quick mode or a lesson used stand-in data:
    it then names the commands that get the missing datasets (read from the
    stand-in lessons' ``Data:`` lines), how to run the full course and how to
    open the notebooks. `python` is how the user starts this interpreter
    (e.g. ".venv/bin/python"). A full run on real data gets "".
    """
    stand_ins = [r for r in report["lessons"] if used_stand_in(r)]
    if report["mode"] != "quick" and not stand_ins:
        return ""
    commands = dict.fromkeys(c for r in stand_ins for c in _GET_COMMAND_RE.findall(r.get("data") or ""))
    commands = [c.replace("python -m", f"{python} -m", 1) for c in commands]
    lines = ["Next steps:"]
    if stand_ins:
        lines += [
            f"- {len(stand_ins)} lesson(s) ran on stand-in data. The real datasets (a network is needed):",
            f"    {python} -m cnn_course data fetch all",
        ]
        if commands:
            lines.append("  or only what these lessons missed:")
            lines += [f"    {c}" for c in commands]
        lines.append(
            f"  A file you already have: put it in the data folder; "
            f"what is found, and where: `{python} -m cnn_course data status`"
        )
    if report["mode"] == "quick":
        lines.append(
            f"- That was a quick run (small sizes). The full course: `make full`; "
            f"one lesson: `{python} -m cnn_course run mnist-mlp`"
        )
    lines.append("- Work through the lessons: `make lab` opens the first notebook in JupyterLab")
    return "\n".join(lines) + "\n"


def _strict(value):
    """Return `value` as strict JSON can hold it, whatever a lesson reported:
    non-finite floats ("inf"), sets, bytes, complex numbers and any other
    type become their text (repr), tuples lists, and a dict key that is not a
    string, a number, a bool or None its text too. Raises nothing."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {_strict_key(key): _strict(sub) for key, sub in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(sub) for sub in value]
    return repr(value)


def _strict_key(key):
    """Return a dict key as JSON can hold it: a string, a finite number, a bool
    or None as it is; anything else (a tuple, inf) as its text."""
    if isinstance(key, float) and not math.isfinite(key):
        return repr(key)
    return key if key is None or isinstance(key, (bool, int, float, str)) else repr(key)


def check_out_dir(out_dir):
    """Make sure lessons' outputs and the report can be written to `out_dir`.

    Creates the folder (and its parents) when missing and writes and removes
    a probe file in it. Returns the folder as an absolute Path. Raises
    ValueError, with a one-line reason, when it is a file, lies inside one,
    starts with ``~user`` of no user, or cannot be written (a name too long, say).
    """
    try:
        out_dir = Path(out_dir).expanduser().absolute()
    except RuntimeError:
        raise ValueError(f"{str(out_dir).split('/', 1)[0]} is the home folder of no user on this machine") from None
    try:
        if out_dir.exists() and not out_dir.is_dir():
            raise ValueError(f"{out_dir} is a file, not a folder")
        inside = next((p for p in out_dir.parents if p.exists() and not p.is_dir()), None)
        if inside is not None:
            raise ValueError(f"{out_dir} would lie inside {inside}, which is a file")
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ValueError(f"{out_dir} cannot be written: {reason}") from None
    return out_dir


def lock_out_dir(out_dir):
    """Hold an exclusive lock on the folder `out_dir` for one run.

    Returns an open file descriptor (int) on the folder itself, holding a
    ``flock`` lock, so no lock file is left behind: close it (os.close) when
    the run ends; the lock also ends with the process, even a killed one.
    Where the file system cannot lock, returns None (nothing to release).
    Raises ValueError, with a one-line reason, when another run holds it.
    """
    import fcntl

    try:
        fd = os.open(out_dir, os.O_RDONLY)
    except OSError:
        return None  # check_out_dir wrote there; a folder that cannot be opened cannot be locked
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise ValueError(
                f"another run is writing into {out_dir}; wait for it to end or choose another folder"
            ) from None
        return None  # a file system without locks: run unlocked
    return fd


def _write_new(path, text):
    """Write `text` (str as UTF-8, or bytes) to a new temporary file beside `path`, flushed to disk.

    Returns the temporary file's Path (same folder, so os.replace can put it
    in place of `path` atomically). Raises OSError (a full disk, no
    permission) after removing the temporary file.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for a plain write
    try:
        with os.fdopen(fd, "wb") if isinstance(text, bytes) else os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def write_atomic(path, text):
    """Write ``text`` (str, as UTF-8, or bytes) to ``path`` whole or not at all: the course's one atomic write.

    The text goes to a temporary file beside ``path``, flushed to disk, then
    renamed over it, so a reader sees the old file or the new one, never half
    of one. Returns ``path`` as a Path. Raises OSError (a full disk, no
    permission), leaving the old file and no temporary one.
    """
    path = Path(path)
    tmp = _write_new(path, text)
    try:
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_report(report, out_dir="build"):
    """Write ``out_dir/results.json`` (strict JSON) and ``out_dir/results.md``.

    Both are written in full to temporary files first and then put in place
    together, so a failed write (a full disk) leaves the previous report as it
    was and no temporary file. A value JSON cannot hold is written as its
    text (see `_strict`). Returns (json_path, md_path). Raises OSError when
    they cannot be written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "results.json"
    md_path = out_dir / "results.md"
    write_together(
        {json_path: json.dumps(_strict(report), indent=2, allow_nan=False) + "\n", md_path: format_report(report)}
    )
    return json_path, md_path


def write_together(texts):
    """Write several files, each {path: text or bytes}, all or none.

    Each is written in full to a temporary file beside it first, and only then
    are all put in place, so a failed write (a full disk) leaves every old file
    as it was and no temporary file. Creates missing parent folders. Returns
    nothing; raises OSError when a file cannot be written.
    """
    written = {}
    try:
        for path, text in texts.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            written[path] = _write_new(path, text)
        for path, tmp in written.items():
            os.replace(tmp, path)
    finally:
        for tmp in written.values():
            tmp.unlink(missing_ok=True)
