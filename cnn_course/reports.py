"""The report of a course run (results.json and results.md), and the helpers everything that writes shares.

`build_report` gathers the lessons' results, `format_report` writes them as Markdown and
`write_report` saves both files together in the out folder that `check_out_dir` checked and
`lock_out_dir` keeps to one run at a time. `write_atomic`/`write_together` (a file whole or not at
all) and `text_table` (aligned plain or Markdown tables) are the course's one copy of each.
"""

from __future__ import annotations

import contextlib
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
    """Return the report as a JSON-ready dict: mode, parameters, environment, passed, failed,
    interrupted, not_run, wall_time_s and lessons (`_REPORT_KEYS` and stand_in of each result)."""
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
    """Return one line saying where a failed lesson failed (cells counted from 1) and why."""
    cell, where = lesson.get("failed_cell"), ""
    if cell:
        number = "the injected parameters cell" if cell["index"] is None else f"cell {cell['index'] + 1}"
        where = f"{number} `{cell['first_line']}`: "
    error = " ".join((lesson.get("error") or "failed").split())
    return where + (error[:297] + "..." if len(error) > 300 else error)


def short_data(data, width=80):
    """Return a "Data:" text short enough for a table column ("-" for None): a real dataset's
    details shrink to "(real)", a trailing remark goes, the rest is cut with "..."."""
    if not data:
        return "-"
    if len(data) > width:
        data = re.sub(r" \(real,[^()]*\)", " (real)", data)
    if len(data) > width and data.endswith(")") and " (" in data and not data.endswith(" (real)"):
        data = data[: data.rindex(" (")]
    return data if len(data) <= width else data[: width - 3].rstrip() + "..."


def text_table(header, rows, right=(), markdown=False, sep="  "):
    """Return ``rows`` under ``header`` as aligned columns (``right``: right-aligned column indices;
    ``markdown``: a Markdown table); a short row fills its first columns and its last cell runs on."""
    full = [[str(c) for c in r] for r in [header, *rows] if len(r) == len(header)]
    widths = [max(len(r[i]) for r in full) for i in range(len(header))]

    def line(cells):
        cells = [str(c) for c in cells]
        padded = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        if len(cells) < len(header):
            padded[-1] = cells[-1]
        return "| " + " | ".join(padded) + " |" if markdown else sep.join(padded).rstrip()

    if markdown:
        rule = "|" + "|".join("-" * (w + 1) + ":" if i in right else "-" * (w + 2) for i, w in enumerate(widths)) + "|"
    else:
        rule = "-" * len(line(header))
    return "\n".join([line(header), rule] + [line(r) for r in rows])


def format_report(report):
    """Return the whole report as Markdown: environment, lesson table, failures, totals."""
    env = report["environment"]
    environment = (
        f"Mode: {report['mode']}; device: {env.get('device', '?')}; Keras {env.get('keras', '?')} on "
        f"{env.get('backend', '?')} {env.get('backend_version', '?')}; Python {env.get('python', '?')}"
    ) + (f" (environment probe failed: {env['error']})" if env.get("error") else "")
    rows = [
        [
            r["lesson"],
            r["status"] if r["status"] == "passed" else r["status"].upper(),
            short_data(r.get("data")).replace("|", "/"),
            "-" if r.get("epochs") is None else str(r["epochs"]),
            "-" if r.get("test_accuracy") is None else f"{r['test_accuracy']:.2f}%" + " (stand-in)" * used_stand_in(r),
            format_minutes(r.get("wall_time_s")),
        ]
        for r in report["lessons"]
    ]
    header = ["Lesson", "Status", "Data", "Epochs", "Test accuracy", "Wall time"]
    parts = ["# Course run", "", environment, "", text_table(header, rows, right={3, 4, 5}, markdown=True), ""]
    if any(used_stand_in(r) and r.get("test_accuracy") is not None for r in report["lessons"]):
        parts += [STAND_IN_FOOTNOTE, ""]
    for status, title in (("failed", "Failures"), ("interrupted", "Interrupted")):
        stopped = [f"- **{r['lesson']}**: {describe_failure(r)}" for r in report["lessons"] if r["status"] == status]
        parts += [f"## {title}", "", *stopped, ""] if stopped else []
    totals = f"{report['passed']} passed, {report['failed']} failed"
    if report.get("interrupted"):
        totals += ", interrupted (Ctrl-C or a stop signal)"
        totals += f"; not run: {', '.join(report['not_run'])}" if report.get("not_run") else ""
    parts.append(f"{totals}, total wall time {format_minutes(report.get('wall_time_s'))}.")
    return "\n".join(parts) + "\n"


def next_steps(report, python="python"):
    """Return the "Next steps" block after a quick run or one on stand-ins ("" otherwise): the commands
    that get the missing data, the full course, the notebooks; `python` starts this interpreter."""
    stand_ins = [r for r in report["lessons"] if used_stand_in(r)]
    if report["mode"] != "quick" and not stand_ins:
        return ""
    commands = dict.fromkeys(c for r in stand_ins for c in _GET_COMMAND_RE.findall(r.get("data") or ""))
    lines = ["Next steps:"]
    if stand_ins:
        lines += [
            f"- {len(stand_ins)} lesson(s) ran on stand-in data. The real datasets (a network is needed):",
            f"    {python} -m cnn_course data fetch all",
        ]
        if commands:
            lines.append("  or only what these lessons missed:")
            lines += ["    " + c.replace("python -m", f"{python} -m", 1) for c in commands]
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


def _strict(value, key=False):
    """Return `value` as strict JSON holds it: non-finite floats, sets, bytes, ... (and keys that are
    not str, number, bool or None) as their repr, tuples as lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict) and not key:
        return {_strict(k, key=True): _strict(sub) for k, sub in value.items()}
    if isinstance(value, (list, tuple)) and not key:
        return [_strict(sub) for sub in value]
    return repr(value)


def check_out_dir(out_dir):
    """Return `out_dir` as an absolute Path, created and tried with a probe file. Raises ValueError,
    one line, when it is a file, lies inside one, names no user's home, or cannot be written."""
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
        raise ValueError(f"{out_dir} cannot be written: {exc.strerror or type(exc).__name__}") from None
    return out_dir


def lock_out_dir(out_dir):
    """Return a descriptor holding an exclusive ``flock`` on the folder (os.close it; it also ends with
    the process), or None where it cannot lock. Raises ValueError when another run holds it."""
    import fcntl

    try:
        fd = os.open(out_dir, os.O_RDONLY)
    except OSError:
        return None
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
    """Write `text` (str as UTF-8, or bytes) to a new temporary file beside `path`, synced, with the
    mode of the file it replaces; return its Path. Raises OSError, leaving no temporary file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for a plain write
    try:
        with os.fdopen(fd, "wb") if isinstance(text, bytes) else os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, path.stat().st_mode & 0o7777)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def write_together(texts):
    """Write {path: str or bytes} all or none: each to a temporary file first, then all put in place
    (missing folders made). Raises OSError, leaving every old file and no temporary one."""
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


def write_atomic(path, text):
    """Write ``text`` (str or bytes) to ``path`` whole or not at all (`write_together`); return it as a Path."""
    write_together({Path(path): text})
    return Path(path)


def write_report(report, out_dir="build"):
    """Write ``out_dir/results.json`` (strict JSON, `_strict`) and ``results.md`` together; return
    (json_path, md_path). Raises OSError, leaving the previous report."""
    json_path, md_path = Path(out_dir) / "results.json", Path(out_dir) / "results.md"
    report_json = json.dumps(_strict(report), indent=2, allow_nan=False) + "\n"
    write_together({json_path: report_json, md_path: format_report(report)})
    return json_path, md_path
