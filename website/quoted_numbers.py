"""The numbers that prose quotes from a run, and whether that run has them.

One helper for every check of quoted numbers (tests/test_quoted_numbers.py:
the lessons' prose against their recorded runs, benchmarks/README.md's
tables against their results files; tests/test_answers.py: the answers'
prose against theirs).

A *quoted number* is a decimal (98.21, 3.76x, 0.002), a number with
thousands commas (669,706; 3,500.5) or a percentage (68%, 47.53%), in prose:
inline code, fenced code, LaTeX ($...$, $$...$$, \\(...\\)) and link targets
do not count, and neither do version numbers (3.15.1). A *cited* figure, one
from outside the course's runs (a paper's result, a dataset's size from its
documentation), is written as the text of a Markdown link to its source,
"[94% in 3.8 seconds](https://arxiv.org/abs/2404.00498)": numbers in a
link's text are not quoted from a run, so they are not checked. A quoted number
*matches* a run when some number the run printed (or the notebook's own code
holds, or the results file has) equals it to the digits quoted: 98.2
matches 98.23, 669,706 matches 669706, 68% matches 68 and 68.4 (and 0.684 in
a results file, where percentages may be fractions), "18:48" matches 1128 s.
"""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation

# Not part of a word (a ratio's "x" aside: 3.76x), a version number (3.15.1) or a longer number.
_BEFORE, _AFTER = r"(?<![\w.,])", r"(?!(?!x\b)\w|[.,]\d)"
# In prose: a decimal, a comma-grouped number or a percentage.
_QUOTED = re.compile(_BEFORE + r"(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+|\d+(?=\s?%))" + _AFTER + r"(\s?%)?")
# In a table: any of those and whole numbers.
_IN_TABLE = re.compile(_BEFORE + r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?" + _AFTER + r"(\s?%)?")
# In outputs, code and results: any number, with an exponent where there is one.
_ANY_NUMBER = re.compile(r"(?<![\w.])\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?|(?<![\w.])\.\d+")
_MINUTES = re.compile(r"(?<![\w.:])(\d+):([0-5]\d)(?![\d:])")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_FENCED = re.compile(r"^(`{3,}|~{3,}).*?^\1", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
_LATEX = re.compile(r"\$\$.+?\$\$|\$[^$\n]+?\$|\\\(.+?\\\)|\\\[.+?\\\]", re.DOTALL)
_LINK_TARGET = re.compile(r"\]\([^)]*\)")
_LINK = re.compile(r"\[[^\[\]]*\]\([^)]*\)")  # a whole inline link, its text included
_HTML_TAG = re.compile(r"<[^>]+>")


def prose_only(markdown):
    """Return `markdown` less what is not prose: code (fenced and inline),
    LaTeX, link targets and HTML tags, each replaced by a space."""
    for pattern in (_FENCED, _INLINE_CODE, _LATEX, _LINK_TARGET, _HTML_TAG):
        markdown = pattern.sub(" ", markdown)
    return markdown


def quoted_numbers(markdown):
    """Return the numbers `markdown` quotes in its prose (see the module's
    docstring), as written: ["98.21%", "669,706", "3.76"], in order. The
    text of a link, a cited figure's, is left out with its target."""
    return [m.group(0).replace(" ", "") for m in _QUOTED.finditer(prose_only(_LINK.sub(" ", markdown)))]


def _decimal(text):
    try:
        return Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None


class Numbers:
    """The numbers a run has: printed text, code, a results file's values.

    ``Numbers(text, ...)`` takes any number of strings; `add_json` adds every
    number of a JSON document. ``number in numbers`` says whether a quoted
    number matches one of them to the digits quoted.
    """

    def __init__(self, *texts):
        self.values = set()
        for text in texts:
            self.add_text(text)

    def add_text(self, text):
        """Add every number in `text` (ANSI colour codes removed), and each m:ss time as seconds."""
        text = _ANSI.sub("", text)
        for token in _ANY_NUMBER.findall(text):
            value = _decimal(token)
            if value is not None:
                self.values.add(value)
        for minutes, seconds in _MINUTES.findall(text):
            self.values.add(Decimal(int(minutes) * 60 + int(seconds)))
        return self

    def add_json(self, data):
        """Add every number (not a bool) in the parsed JSON `data`, and every number in its strings."""
        if isinstance(data, dict):
            for value in data.values():
                self.add_json(value)
        elif isinstance(data, list):
            for value in data:
                self.add_json(value)
        elif isinstance(data, bool) or data is None:
            pass
        elif isinstance(data, (int, float)):
            self.values.add(Decimal(repr(data)) if isinstance(data, float) else Decimal(data))
        elif isinstance(data, str):
            self.add_text(data)
        return self

    def __contains__(self, quoted):
        """Whether the quoted number (as `quoted_numbers` returns it, or an
        "m:ss" time) equals one of the values to the digits quoted."""
        times = _MINUTES.fullmatch(quoted)
        if times:
            seconds = int(times.group(1)) * 60 + int(times.group(2))
            return any(value.quantize(Decimal(1), ROUND_HALF_UP) == seconds for value in self.values)
        percent = quoted.endswith("%")
        target = _decimal(quoted.rstrip("%"))
        if target is None:
            return False
        step = Decimal(1).scaleb(target.as_tuple().exponent)  # 98.2 -> 0.1
        candidates = self.values | ({value * 100 for value in self.values if value <= 1} if percent else set())
        for value in candidates:
            for rounding in (ROUND_HALF_UP, ROUND_HALF_EVEN):
                try:
                    if value.quantize(step, rounding) == target:
                        return True
                except InvalidOperation:  # too many digits for the context: no match
                    break
        return False

    def missing(self, quoted):
        """Return the quoted numbers (a list) that match none of the values."""
        return [number for number in quoted if number not in self]


def notebook_text(nb, code=False):
    """Return what a notebook's code cells printed (streams, plain text,
    Markdown and HTML outputs; errors' messages), or with `code` their source."""
    if code:
        return "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            parts.append(output.get("text", ""))
            data = output.get("data", {})
            for kind in ("text/plain", "text/markdown", "text/html"):
                value = data.get(kind, "")
                parts.append("".join(value) if isinstance(value, list) else value)
            if output.get("output_type") == "error":
                parts.append(f"{output.get('ename', '')}: {output.get('evalue', '')}")
    return "\n".join(parts)


def notebook_prose(nb):
    """Return a notebook's Markdown cells, joined."""
    return "\n\n".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")


def unmatched_in_notebook(current, recorded):
    """Return the numbers the prose of the notebook `current` quotes that
    neither the recorded run `recorded` printed nor `current`'s code holds."""
    numbers = Numbers(notebook_text(recorded), notebook_text(current, code=True))
    return numbers.missing(quoted_numbers(notebook_prose(current)))


# --------------------------------------------------------------------------
# Markdown tables that name their results file

_RESULTS_FILE = re.compile(r"`?(benchmarks/results/[\w.-]+\.(?:json|log))`?")


def tables(markdown):
    """Return the Markdown pipe tables of `markdown` as (line number of the
    header from 1, the last non-blank line before it, rows of cell texts) in
    order; a row is a list of its cells, the header and separator excluded."""
    lines = markdown.splitlines()
    found, i, in_fence = [], 0, False
    while i < len(lines):
        line = lines[i].strip()
        in_fence ^= line.startswith("```")
        separator = i + 1 < len(lines) and re.fullmatch(r"\|[\s:|-]+\|", lines[i + 1].strip())
        if in_fence or not (line.startswith("|") and separator):
            i += 1
            continue
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        rows, j = [], i + 2
        while j < len(lines) and lines[j].strip().startswith("|"):
            rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", lines[j].strip().strip("|"))])
            j += 1
        found.append((i + 1, before, rows))
        i = j
    return found


def results_files_of(line):
    """Return the `benchmarks/results/NAME.json` (or a run's `.log`) paths that `line` names, a list."""
    return _RESULTS_FILE.findall(line)


def table_numbers(rows):
    """Return the numbers quoted in a table's cells: each decimal, comma-grouped
    number, percentage, whole number and m:ss time (code and links aside)."""
    numbers = []
    for row in rows:
        for cell in row:
            text = prose_only(cell)
            numbers += [f"{m}:{s}" for m, s in _MINUTES.findall(text)]
            text = _MINUTES.sub(" ", text)
            numbers += [m.group(0).replace(" ", "") for m in _IN_TABLE.finditer(text)]
    return numbers


def unmatched_in_tables(markdown, root):
    """Return {"line N (NAME.json ...)": [numbers in none of those files]} for each
    table of `markdown` whose preceding line names its results files (JSON, or
    the text log of a run; relative to `root`); a named file that is missing or
    not JSON is reported as ["file missing"] or ["not JSON"]. Tables that name
    no file are not checked."""
    problems = {}
    for line, before, rows in tables(markdown):
        names = results_files_of(before)
        if not names:
            continue
        where, numbers = f"line {line} ({', '.join(names)})", Numbers()
        try:
            for name in names:
                text = (root / name).read_text(encoding="utf-8")
                numbers.add_json(json.loads(text)) if name.endswith(".json") else numbers.add_text(text)
        except FileNotFoundError:
            problems[where] = ["file missing"]
            continue
        except ValueError:
            problems[where] = ["not JSON"]
            continue
        missing = numbers.missing(table_numbers(rows))
        if missing:
            problems[where] = missing
    return problems


# --------------------------------------------------------------------------
# A listing, before or after a recording


def report(current, recorded=None):
    """Return [(number, where)] for each number the prose of the notebook
    `current` quotes, in order: where is "code" (its own code holds it),
    "run" (the recorded run `recorded` printed it) or "unmatched"."""
    code = Numbers(notebook_text(current, code=True))
    run = Numbers(notebook_text(recorded)) if recorded is not None else Numbers()
    return [
        (n, "code" if n in code else "run" if n in run else "unmatched")
        for n in quoted_numbers(notebook_prose(current))
    ]


def main(argv=None):
    """List each lesson's prose numbers and what matches them (the check's
    view): `python website/quoted_numbers.py [LESSON_OR_NOTEBOOK ...]`;
    against website/runs/ (the recordings) or, with --runs DIR, the executed
    copies in DIR at the same paths (e.g. build/full-run). Exits 1 if a
    recorded lesson has an unmatched number."""
    import argparse
    import sys
    from pathlib import Path

    import nbformat

    root = Path(__file__).resolve().parents[1]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from cnn_course.lessons import LESSONS

    parser = argparse.ArgumentParser(description=main.__doc__.split("\n\n")[0])
    parser.add_argument("lessons", nargs="*", help="lesson names or notebook paths (default: every lesson)")
    parser.add_argument(
        "--runs", default=str(root / "website" / "runs"), help="executed copies (default: website/runs)"
    )
    args = parser.parse_args(argv)
    paths = [LESSONS.get(name, name) for name in args.lessons] or [
        path for path in LESSONS.values() if path.endswith(".ipynb")
    ]
    failed = False
    for path in paths:
        current = nbformat.read(root / path, as_version=4)
        recording = Path(args.runs) / path
        recorded = nbformat.read(recording, as_version=4) if recording.is_file() else None
        rows = report(current, recorded)
        counts = {kind: sum(where == kind for _, where in rows) for kind in ("code", "run", "unmatched")}
        state = "recorded" if recorded is not None else "not recorded: the run must print the unmatched"
        print(f"{path} ({state}): " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        for number, where in rows:
            if where != "code":
                print(f"    {number:>12}  {where}")
        failed |= recorded is not None and counts["unmatched"] > 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
