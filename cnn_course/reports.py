"""The report of a course run: results.json and results.md.

`build_report` gathers the lessons' results, `format_report` (with
`format_table` and `describe_failure`) writes them as Markdown, and
`write_report` saves both files in the out folder that `check_out_dir` checked.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from pathlib import Path

_REPORT_KEYS = (
    "lesson", "path", "status", "data", "epochs", "test_accuracy", "wall_time_s",
    "error", "failed_cell", "executed_path", "html_path", "warnings",
)

STAND_IN_FOOTNOTE = ("(stand-in): the lesson ran on stand-in data (generated images, or random "
                     "weights), so its accuracy says nothing about the real dataset.")
_GET_COMMAND_RE = re.compile(r"`(python -m cnn_course data (?:fetch|import) [^`]+)`")


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
    A stand-in lesson's accuracy reads "75.56% (stand-in)" (see `STAND_IN_FOOTNOTE`).
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
            "-" if accuracy is None else f"{accuracy:.2f}%" + (" (stand-in)" if used_stand_in(r) else ""),
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
    if any(used_stand_in(r) and r.get("test_accuracy") is not None for r in report["lessons"]):
        parts += [STAND_IN_FOOTNOTE, ""]
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
        lines += [f"- {len(stand_ins)} lesson(s) ran on stand-in data. The real datasets (a network is needed):",
                  f"    {python} -m cnn_course data fetch all"]
        if commands:
            lines.append("  or only what these lessons missed:")
            lines += [f"    {c}" for c in commands]
        lines.append(f"  A file you already have: `{python} -m cnn_course data import NAME FILE`; "
                     f"what is found: `{python} -m cnn_course data status`")
    if report["mode"] == "quick":
        lines.append(f"- That was a quick run (small sizes). The full course: `make full`; "
                     f"one lesson: `{python} -m cnn_course run mnist-mlp`")
    lines.append("- Work through the lessons: `make lab` opens the first notebook in JupyterLab")
    return "\n".join(lines) + "\n"


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
