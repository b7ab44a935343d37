#!/usr/bin/env python3
"""Build the course website, and record the full runs it shows.

    python website/build.py build      the site, into build/site/ (what `make site` runs)
    python website/build.py refresh    run the full lessons, record them in website/runs/
                                       (what `make site-refresh [LESSONS="a b"]` runs)
    python website/build.py record DIR record a full run already made into DIR
                                       (e.g. `make full` wrote build/)
    refresh --answers, record --answers  the same for the lessons' answer notebooks
                                       (solutions/, `run --answers`)

Building executes nothing. Each lesson's page is the lesson notebook as it is
committed now, its markdown and code, with each code cell's outputs taken
from the recorded executed copy (website/runs/<lesson folder>/<notebook>),
matched by the cell's code. A code cell that the recording lacks makes the
lesson stale and the build fails, naming the lesson and the command that
records it again; a lesson never recorded gets its page, without outputs and
with a "No recorded run yet" note. Where a lesson's answer notebook has a
recorded run too, each exercise on the lesson's page is followed by its
answer, folded ("Show answer"). The home page's lesson table is generated
from website/runs/results.json, one row per lesson, each with its own run's
date and machine; recording also writes README.md's results table from it
(between its marker lines). build/site-src/ holds the prepared sources; Sphinx (with
myst-nb and the configuration in website/conf.py) turns them into HTML.
"""

from __future__ import annotations

import argparse
import ast
import copy
import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import warnings
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import nbformat

WEBSITE = Path(__file__).resolve().parent
REPO_ROOT = WEBSITE.parent
if str(REPO_ROOT) not in sys.path:  # `python website/build.py` from a checkout without an install
    sys.path.insert(0, str(REPO_ROOT))

from cnn_course.lessons import (  # noqa: E402
    ANSWERS_SUFFIX,
    INJECTED_TAG,
    LESSONS,
    answer_lessons,
    answer_path,
    answer_sections,
    exercises_cell,
)
from cnn_course.reports import format_minutes, write_together  # noqa: E402

RUNS_DIR = WEBSITE / "runs"
README = REPO_ROOT / "README.md"
# README's lesson results table lies between these lines, written by `record` (see `readme_with_results`).
RESULTS_BEGIN = "<!-- results: written by website/build.py from website/runs/results.json; do not edit by hand -->"
RESULTS_END = "<!-- end of results -->"
SITE_DIR = REPO_ROOT / "build" / "site"
RUN_DIR = REPO_ROOT / "build" / "full-run"
SCRIPTS_PAGE = "dimension-scripts"
DOWNLOADS = "_notebooks"  # the committed notebooks, served by "Download notebook" (conf.py excludes it from pages)
COLAB = "https://colab.research.google.com/github"
# What an executed copy keeps out of the recording: timings and transient state.
_VOLATILE_CELL_METADATA = ("execution", "ExecuteTime", "collapsed", "scrolled")
_VOLATILE_NOTEBOOK_METADATA = ("widgets", "papermill")
_FIGURE_TYPES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")
# A code cell tagged so draws the dataset's images (or direct transforms of them): a
# recording keeps its printed text but never its figures (see CONTRIBUTING.md).
DATASET_IMAGES_TAG = "dataset-images"
DATASET_IMAGES_NOTE = (
    "*This figure shows images from the dataset, which the repository does not store: run the lesson to see it.*"
)


class SiteError(Exception):
    """A problem the user can fix; its message is one line."""


# --------------------------------------------------------------------------
# What the site is about: the repository, the lessons, the recorded runs


def repository_url(pyproject=REPO_ROOT / "pyproject.toml"):
    """Return the repository's URL, ``[project.urls] Repository`` in pyproject.toml,
    without a trailing slash or ``.git``.

    Raises SiteError when the file cannot be read or names no GitHub repository
    (Colab opens notebooks from GitHub only).
    """
    try:
        with open(pyproject, "rb") as handle:
            url = tomllib.load(handle)["project"]["urls"]["Repository"]
    except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError) as exc:
        raise SiteError(f"{pyproject} gives no [project.urls] Repository ({type(exc).__name__}: {exc})") from None
    url = str(url).rstrip("/").removesuffix(".git")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise SiteError(f"[project.urls] Repository in {pyproject} is {url!r}, not https://github.com/OWNER/REPO")
    return url


def colab_url(path, repo_url=None):
    """Return the "Open in Colab" URL of the repository file `path` (POSIX, relative)
    on the main branch. Raises SiteError as `repository_url` does."""
    owner_repo = (repo_url or repository_url()).removeprefix("https://github.com/")
    return f"{COLAB}/{owner_repo}/blob/main/{path}"


def course_title(readme=REPO_ROOT / "README.md"):
    """Return the course's title: README.md's first heading (a default if none)."""
    try:
        for line in readme.read_text(encoding="utf-8").splitlines():
            if line.startswith("# "):
                return line[2:].strip()
    except OSError:
        pass
    return "Convolutional neural networks in Keras"


def notebook_title(nb, default):
    """Return the text of the notebook's first Markdown heading, or `default`."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                match = re.match(r"#{1,6}\s+(.+)", line)
                if match:
                    return match.group(1).strip()
    return default


def recorded_paths():
    """Return {name: path in the repository} of everything a recording may hold:
    the lessons, and "<lesson> answers" for each notebook lesson's answer notebook."""
    paths = dict(LESSONS)
    paths.update(
        {name + ANSWERS_SUFFIX: str(answer_path(name).as_posix()) for name in LESSONS if answer_path(name) is not None}
    )
    return paths


def read_notebook(path):
    """Return the notebook at `path` (nbformat v4). Raises SiteError, one line,
    when it is missing or not a valid notebook."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. MissingIDFieldWarning
            nb = nbformat.read(path, as_version=4)
            nbformat.validate(nb)
    except FileNotFoundError:
        raise SiteError(f"{path} does not exist") from None
    except Exception as exc:  # nbformat raises many kinds: not JSON, not a notebook
        raise SiteError(f"{path} is not a valid notebook ({type(exc).__name__})") from None
    return nb


def load_results(runs_dir=RUNS_DIR):
    """Return the recorded runs in ``runs_dir/results.json`` as {lesson: row}.

    {} when the file does not exist (nothing recorded yet). Raises SiteError
    when it is not the JSON this script writes (see `record_run`).
    """
    path = Path(runs_dir) / "results.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        rows = {row["lesson"]: row for row in data["lessons"]}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SiteError(f"{path} is not a recorded-runs file ({type(exc).__name__}: {exc})") from None
    return rows


def _code_key(source):
    """Return a code cell's source as matching compares it: trailing blanks ignored."""
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def _is_injected(cell):
    return INJECTED_TAG in cell.get("metadata", {}).get("tags", [])


def is_figure(output):
    """Return whether a cell output is an image (a figure)."""
    return any(t in output.get("data", {}) for t in _FIGURE_TYPES)


def figure_count(cells):
    """Return how many outputs of the code `cells` are images (a figure each)."""
    return sum(
        1 for cell in cells if cell.cell_type == "code" for output in cell.get("outputs", []) if is_figure(output)
    )


def merge_outputs(current, recorded):
    """Return a copy of the notebook `current` with each code cell's outputs
    and execution count taken from the cell of `recorded` with the same code.

    Cells are matched by their code (trailing blanks ignored), in order, so a
    repeated cell takes the next unused recorded cell with that code; the
    runner's injected parameters cell is not shown, and markdown always comes
    from `current`; a cell `current` tags `DATASET_IMAGES_TAG` shows no figure.
    Returns (merged notebook, list of the code cells of `current` that the
    recording lacks, as (cell number from 1, first line)).
    Blank code cells need no match. Raises nothing.
    """
    pool = {}
    for cell in recorded.cells:
        if cell.cell_type == "code" and not _is_injected(cell):
            pool.setdefault(_code_key(cell.source), []).append(cell)
    merged = copy.deepcopy(current)
    missing = []
    for number, cell in enumerate(merged.cells, 1):
        if cell.cell_type != "code":
            continue
        matches = pool.get(_code_key(cell.source))
        if matches:
            match = matches.pop(0)
            cell.outputs = copy.deepcopy(match.get("outputs", []))
            cell.execution_count = match.get("execution_count")
            if DATASET_IMAGES_TAG in cell.metadata.get("tags", []):  # tagged since its recording
                cell.outputs = [dataset_images_note() if is_figure(o) else o for o in cell.outputs]
        elif cell.source.strip():
            missing.append((number, cell.source.strip().splitlines()[0]))
    return merged, missing


def sha256_file(path):
    """Return the SHA-256 hex digest of a file's bytes. Raises OSError."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def format_accuracy(row):
    """Return a row's test accuracy as the home page shows it: "97.83%", "-"
    when the lesson reports none; "(stand-in)" follows a stand-in's number."""
    accuracy = row.get("test_accuracy")
    if accuracy is None:
        return "-"
    return f"{accuracy:.2f}%" + (" (stand-in)" if row.get("stand_in") else "")


def format_machine(row, versions=True):
    """Return the machine of a recorded run in one line: its device (the CPU's
    model and cores for a CPU run) and, with `versions`, Keras and its backend."""
    env = row.get("environment") or {}
    device = env.get("device", "?")
    cpu = row.get("cpu")
    where = f"{cpu}, {row['cpu_count']} cores" if cpu and row.get("cpu_count") else (cpu or "")
    if device == "CPU" and where:
        device = where
    elif where:
        device = f"{device} ({where})"
    if not versions:
        return device
    return f"{device}; Keras {env.get('keras', '?')} on {env.get('backend', '?')} {env.get('backend_version', '?')}"


# --------------------------------------------------------------------------
# Preparing the sources


def _fence(text, info="text"):
    """Return `text` as a fenced code block whose fence no line of it can close."""
    longest = max((len(run) for run in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * (longest + 1)
    return f"{fence}{info}\n{text.rstrip()}\n{fence}"


def _md_cell_text(text):
    """Return `text` made safe for one cell of a Markdown pipe table."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _page_header(name, path, row, repo_url, recorded):
    """Return the Markdown cell that opens a lesson's page: its launch links and
    where its outputs come from (or that none are recorded)."""
    lines = [
        f"[Open in Colab]({colab_url(path, repo_url)}) · {{download}}`Download notebook </{DOWNLOADS}/{path}>`",
        "",
    ]
    if recorded:
        mode = "full run" if row.get("mode") == "full" else f"{row.get('mode', '?')} run (small sizes, not the lesson)"
        accuracy = format_accuracy(row)
        lines.append(
            f"The outputs below come from a recorded {mode} of this lesson on {row.get('date', '?')}, "
            f"on {format_machine(row)}: wall time {format_minutes(row.get('wall_time_s'))}"
            + (f", test accuracy {accuracy}." if accuracy != "-" else ".")
        )
    else:
        lines += [
            "```{admonition} No recorded run yet",
            ":class: warning",
            "This page shows the lesson's text and code without outputs: no full run of it is recorded "
            f"yet. `make site-refresh LESSONS={name}` runs it and records its outputs.",
            "```",
        ]
    return nbformat.v4.new_markdown_cell("\n".join(lines), metadata={"tags": ["site-header"]})


def prepare_lesson(name, path, rows, runs_dir, repo_url):
    """Return (page notebook, stale reason or None) for the notebook lesson `name`.

    The page is the committed notebook with its recorded outputs (see
    `merge_outputs`) and a header cell after its first cell. Stale: the
    recording lacks a code cell of the notebook, or its file is missing.
    Raises SiteError when the committed notebook cannot be read.
    """
    current = read_notebook(REPO_ROOT / path)
    row = rows.get(name)
    stale = None
    page = copy.deepcopy(current)
    if row is not None:
        recording = Path(runs_dir) / path
        if not recording.is_file():
            stale = f"{recording} is missing"
        else:
            page, missing = merge_outputs(current, read_notebook(recording))
            if missing:
                number, line = missing[0]
                more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
                stale = f"cell {number} `{line}`{more} changed since its recorded run"
    answers, answers_stale = recorded_answers(name, rows, runs_dir)
    stale = stale or answers_stale
    if answers is not None:
        page = fold_answers(page, answers)
    page.cells.insert(
        min(1, len(page.cells)), _page_header(name, path, row or {}, repo_url, row is not None and stale is None)
    )
    return page, stale


def recorded_answers(name, rows, runs_dir):
    """Return (the answer notebook of lesson `name` with its recorded outputs, or
    None, stale reason or None): None without a recorded answer run; stale when
    the recording is missing or lacks a code cell of the answer notebook (or the
    notebook is gone). Raises SiteError when a notebook cannot be read."""
    label = name + ANSWERS_SUFFIX
    if label not in rows:
        return None, None
    path = answer_path(name)
    recording = Path(runs_dir) / path
    if not (REPO_ROOT / path).is_file():
        return None, f'its answers are recorded but {path} is gone: remove the "{label}" row'
    if not recording.is_file():
        return None, f"{recording} is missing"
    merged, missing = merge_outputs(read_notebook(REPO_ROOT / path), read_notebook(recording))
    if missing:
        number, line = missing[0]
        return None, (
            f"{path} cell {number} `{line}` changed since its recorded run: "
            f"`python website/build.py refresh --answers {name}`"
        )
    return merged, None


_ITEM_RE = re.compile(r"^(\d+)\.\s", re.MULTILINE)


def fold_answers(page, answers):
    """Return a copy of the lesson page `page` whose exercises cell is split into
    one cell per exercise, each followed by its answer from the answer notebook
    `answers` (with outputs): the prose in a folded "Show answer" block, the code
    cells tagged ``hide-cell`` (myst-nb folds them, input and output). Text
    after the list stays after the last answer. Raises nothing."""
    at = exercises_cell(page)
    sections = answer_sections(answers)
    if at is None or not sections:
        return page
    page = copy.deepcopy(page)
    source = page.cells[at].source
    starts = [m.start() for m in _ITEM_RE.finditer(source)]
    if not starts:
        return page
    cells = [nbformat.v4.new_markdown_cell(source[: starts[0]].rstrip())]
    tail = ""
    for i, start in enumerate(starts):
        item = source[start : starts[i + 1] if i + 1 < len(starts) else len(source)].rstrip()
        if i + 1 == len(starts):  # a paragraph after the list (not indented) is no part of the last item
            parts = re.split(r"\n\n(?=\S)", item, maxsplit=1)
            item, tail = parts[0], parts[1] if len(parts) > 1 else ""
        cells.append(nbformat.v4.new_markdown_cell(item))
        number = int(_ITEM_RE.match(item).group(1))
        for cell in copy.deepcopy(sections.get(number, (None, []))[1]):
            if cell.cell_type == "markdown":
                body = cell.source.split("\n", 1)[1].strip() if "\n" in cell.source else ""
                cells.append(
                    nbformat.v4.new_markdown_cell(
                        f'<details class="course-answer">\n<summary>Show answer</summary>\n\n{body}\n\n</details>',
                        metadata={"tags": ["answer"]},
                    )
                )
            else:
                tags = [t for t in cell.metadata.get("tags", []) if t != "hide-cell"] + ["hide-cell", "answer"]
                cell.metadata["tags"] = tags
                cell.metadata["mystnb"] = {
                    "code_prompt_show": "Show the answer's code and output",
                    "code_prompt_hide": "Hide the answer's code and output",
                }
                cells.append(cell)
    if tail:
        cells.append(nbformat.v4.new_markdown_cell(tail))
    page.cells[at : at + 1] = cells
    return page


def script_summary(path):
    """Return (first line, rest) of the docstring of the script at `path` (relative to the repository)."""
    doc = ast.get_docstring(ast.parse((REPO_ROOT / path).read_text(encoding="utf-8"))) or ""
    summary, _, rest = doc.partition("\n")
    return summary.strip(), rest


def _script_section(name, path, rows, runs_dir):
    """Return (Markdown section of a script lesson, stale reason or None).
    The section's label is the lesson's name."""
    script = REPO_ROOT / path
    summary, rest = script_summary(path)
    parts = [f"({name})=", f"## `{path}`", "", summary, ""]
    if rest.strip():
        parts += [_fence(textwrap.dedent(rest).strip("\n")), ""]
    row = rows.get(name)
    if row is None:
        parts += [
            "```{admonition} No recorded run yet",
            ":class: warning",
            f"Its default output is not recorded yet: `make site-refresh LESSONS={name}` records it.",
            "```",
        ]
        return "\n".join(parts), None
    recording = Path(runs_dir) / row.get("recording", f"{Path(path).stem}.txt")
    if not recording.is_file():
        return "", f"{recording} is missing"
    if row.get("source_sha256") != sha256_file(script):
        return "", f"{path} changed since its recorded run"
    parts += [
        f"Its output with the default arguments (`python {path}`), recorded on {row.get('date', '?')} "
        f"on {format_machine(row)}:",
        "",
        _fence(recording.read_text(encoding="utf-8")),
        "",
    ]
    return "\n".join(parts), None


def home_page(rows, titles, title):
    """Return the home page (MyST Markdown): the course's introduction
    (website/intro.md), the lesson table generated from the recorded `rows`,
    and the hidden table of contents. `titles` maps lesson -> (page, title)."""
    intro = (WEBSITE / "intro.md").read_text(encoding="utf-8").strip()
    lines = [
        f"# {title}",
        "",
        intro,
        "",
        "## The lessons",
        "",
        "| Lesson | Test accuracy | Epochs | Wall time | Machine | Date |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for name in LESSONS:
        page, lesson_title = titles[name]
        if page == SCRIPTS_PAGE:  # its section of the scripts' page
            link = f"{{ref}}`{_md_cell_text(lesson_title)} <{name}>`"
        else:
            link = f"[{_md_cell_text(lesson_title)}]({page}.ipynb)"
        row = rows.get(name)
        if row is None:
            lines.append(f"| {link} | not recorded | | | | |")
            continue
        epochs = "-" if row.get("epochs") is None else str(row["epochs"])
        lines.append(
            f"| {link} | {_md_cell_text(format_accuracy(row))} | {epochs} | "
            f"{format_minutes(row.get('wall_time_s'))} | {_md_cell_text(format_machine(row, versions=False))} | "
            f"{_md_cell_text(row.get('date', '?'))} |"
        )
    quick = [name for name, row in rows.items() if row.get("mode") != "full"]
    lines += [
        "",
        "Each row is generated from the lesson's recorded run (`website/runs/results.json`, "
        "written by `make site-refresh`): test accuracy on the real test set, the epochs the lesson "
        'trained, its wall time, and the machine and date of that run. "-": the lesson reports none.',
    ]
    if quick:
        lines += [
            "",
            f"```{{warning}}\nThese rows come from quick runs (small sizes), not full lessons: "
            f"{', '.join(quick)}.\n```",
        ]
    pages = list(dict.fromkeys(page for page, _ in titles.values()))
    lines += ["", "```{toctree}", ":hidden:", ":maxdepth: 1", "", *pages, "```", ""]
    return "\n".join(lines)


def prepare_sources(runs_dir=RUNS_DIR, src_dir=REPO_ROOT / "build" / "site-src"):
    """Write the site's sources into `src_dir` (emptied first): index.md, one
    notebook per lesson at the lesson's own path, and the scripts' page.

    Returns {lesson: page name}. Raises SiteError when a recording is stale
    (one line naming every stale lesson and the command that records them
    again), when results.json is damaged, or when a notebook cannot be read.
    """
    src_dir = Path(src_dir)
    repo_url = repository_url()
    rows = load_results(runs_dir)
    unknown = sorted(set(rows) - set(recorded_paths()))
    if unknown:
        raise SiteError(
            f"{Path(runs_dir) / 'results.json'} records lessons the course no longer has: "
            f"{', '.join(unknown)}; remove their rows"
        )
    pages, titles, stale, scripts = {}, {}, {}, []
    for name, path in LESSONS.items():
        if path.endswith(".ipynb"):
            page, reason = prepare_lesson(name, path, rows, runs_dir, repo_url)
            pages[name] = (path, page)
            titles[name] = (path.removesuffix(".ipynb"), notebook_title(page, name))
        else:
            section, reason = _script_section(name, path, rows, runs_dir)
            scripts.append(section)
            titles[name] = (SCRIPTS_PAGE, f"{path}: {script_summary(path)[0]}")
        if reason:
            stale[name] = reason
    if stale:
        names = " ".join(stale)
        details = "; ".join(f"{name}: {reason}" for name, reason in stale.items())
        raise SiteError(
            f'stale recorded run ({details}): run `make site-refresh LESSONS="{names}"`'
            if len(stale) > 1
            else f"stale recorded run of {names} ({details}): run `make site-refresh LESSONS={names}`"
        )
    if src_dir.exists():
        shutil.rmtree(src_dir)
    src_dir.mkdir(parents=True)
    for name, (path, page) in pages.items():
        target = src_dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(page, target)
        download = src_dir / DOWNLOADS / path
        download.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / path, download)
    scripts_page = [
        "# Shapes and parameters of convolution and pooling layers",
        "",
        "Two scripts of the course print how a layer's arguments decide its output shape and "
        "its parameters, worked out by the formulas and checked against Keras. Each takes flags "
        "for any other layer (`--help` lists them), and `--quiz` drills you.",
        "",
        *scripts,
    ]
    (src_dir / f"{SCRIPTS_PAGE}.md").write_text("\n".join(scripts_page), encoding="utf-8")
    (src_dir / "index.md").write_text(home_page(rows, titles, course_title()), encoding="utf-8")
    return {name: page for name, (page, _) in titles.items()}


# --------------------------------------------------------------------------
# Building


def build_site(runs_dir=RUNS_DIR, out_dir=SITE_DIR, src_dir=None, quiet=True):
    """Build the website from the recordings in `runs_dir` into `out_dir`.

    The sources go to `src_dir` (default: ``<out_dir>-src`` beside it, i.e.
    build/site-src). Sphinx writes into a temporary folder beside `out_dir`,
    which replaces `out_dir` only when the build succeeded: a failed build
    leaves the previous site as it was. Sphinx's warnings fail the build.
    Returns `out_dir` as a Path. Raises SiteError (see `prepare_sources`, and
    when Sphinx fails, after it printed why).
    """
    out_dir = Path(out_dir).absolute()
    src_dir = Path(src_dir) if src_dir else out_dir.with_name(out_dir.name + "-src")
    prepare_sources(runs_dir, src_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        # myst-nb writes beside Sphinx's out folder (jupyter_execute/): keep it all in `work`.
        command = [
            sys.executable,
            "-m",
            "sphinx",
            "-b",
            "html",
            "-W",
            "--keep-going",
            "-E",
            "-c",
            str(WEBSITE),
            "-d",
            str(work / "doctrees"),
            str(src_dir),
            str(work / "html"),
        ]
        if quiet:
            command.insert(5, "-q")
        done = subprocess.run(command, cwd=REPO_ROOT, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise SiteError(f"Sphinx could not build the site (exit status {done.returncode}; its messages are above)")
        if out_dir.exists():
            os.replace(out_dir, work / "previous")  # removed with `work`
        os.replace(work / "html", out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out_dir


def results_table(rows):
    """Return README's lesson results (Markdown) for the recorded `rows` (see
    `load_results`): one table row per recorded lesson in course order (test
    accuracy, epochs, wall time, processor, date), then a line naming the
    lessons not recorded; one line when none is. Raises nothing."""
    recorded = [name for name in LESSONS if name in rows]
    if not recorded:
        return "No full run is recorded yet: `make site-refresh` runs every lesson at full length and records it."
    lines = [
        "| lesson | test accuracy | epochs | wall time | processor | date |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for name in recorded:
        row = rows[name]
        epochs = "-" if row.get("epochs") is None else str(row["epochs"])
        lines.append(
            f"| `{name}` | {_md_cell_text(format_accuracy(row))} | {epochs} | "
            f"{format_minutes(row.get('wall_time_s'))} | {_md_cell_text(format_machine(row, versions=False))} | "
            f"{_md_cell_text(row.get('date', '?'))} |"
        )
    missing = [name for name in LESSONS if name not in rows]
    if missing:
        lines += ["", f'Not recorded yet: {", ".join(missing)} (`make site-refresh LESSONS="{" ".join(missing)}"`).']
    return "\n".join(lines)


def readme_with_results(text, rows):
    """Return the README `text` with its results (between `RESULTS_BEGIN` and
    `RESULTS_END`) made `results_table(rows)`. Raises SiteError when the
    markers are not there once each, in order."""
    begin, end = text.find(RESULTS_BEGIN), text.find(RESULTS_END)
    if text.count(RESULTS_BEGIN) != 1 or text.count(RESULTS_END) != 1 or end < begin:
        raise SiteError(f"README.md lacks the results markers: {RESULTS_BEGIN} ... {RESULTS_END}")
    return text[: begin + len(RESULTS_BEGIN)] + "\n" + results_table(rows) + "\n" + text[end:]


# --------------------------------------------------------------------------
# Recording runs


def dataset_images_note():
    """Return the output that stands in a recording for a figure of dataset images."""
    return nbformat.v4.new_output(
        "display_data",
        data={"text/markdown": DATASET_IMAGES_NOTE, "text/plain": DATASET_IMAGES_NOTE.strip("*")},
        metadata={"cnn_course": DATASET_IMAGES_TAG},
    )


def clean_recording(nb):
    """Return a copy of an executed notebook fit for git: no timings, widget
    state or other volatile metadata, and a fixed id for the injected cell.
    Outputs are kept as nbformat holds them, except the figures of cells
    tagged `DATASET_IMAGES_TAG`: each becomes a short note saying the
    dataset's images are not stored. Raises nothing."""
    nb = copy.deepcopy(nb)
    for key in _VOLATILE_NOTEBOOK_METADATA:
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        for key in _VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
        if _is_injected(cell) and "id" in cell:
            cell["id"] = INJECTED_TAG
        if DATASET_IMAGES_TAG in cell.metadata.get("tags", []):
            cell.outputs = [dataset_images_note() if is_figure(o) else o for o in cell.get("outputs", [])]
    return nb


def machine_cpu():
    """Return (CPU model, logical core count) of this machine. Raises nothing."""
    from cnn_course.speed import cpu_model

    return cpu_model(), os.cpu_count()


def record_run(run_dir, runs_dir=RUNS_DIR, lessons=None, allow_quick=False, readme=None):
    """Copy the passed lessons of the runner's report in `run_dir` into `runs_dir`.

    For each chosen lesson (default: every one in the report) that passed,
    its executed notebook (cleaned, see `clean_recording`) or script output is
    written to ``runs_dir/<its path in the repository>`` (a script's as
    ``<name>.txt``), and its row replaces the lesson's row in
    ``runs_dir/results.json``; the other lessons' rows stay as they were,
    each with its own date and machine. A row holds the report's lesson
    fields, the run's mode, parameters and environment, this machine's CPU
    (the run is taken to have been made here), the date of the report and,
    for a script, the SHA-256 of the script it ran. With `readme` (a path),
    that file's results table is rewritten from the new rows too (see
    `readme_with_results`). Every file is written to a temporary file first
    and all are then put in place together.

    Returns (recorded lesson names, {lesson: why it was not recorded}).
    Raises SiteError when the report cannot be read, is of a quick run (unless
    `allow_quick`: tests do that), or names no chosen lesson.
    """
    run_dir, runs_dir = Path(run_dir), Path(runs_dir)
    report_path = run_dir / "results.json"
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
        results = {row["lesson"]: row for row in report["lessons"]}
    except FileNotFoundError:
        raise SiteError(f"no report at {report_path}: run the lessons there first") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SiteError(f"{report_path} is not a runner report ({type(exc).__name__}: {exc})") from None
    if report.get("mode") != "full" and not allow_quick:
        raise SiteError(f"{report_path} is the report of a {report.get('mode')} run; the site shows full runs only")
    chosen = list(lessons) if lessons else list(results)
    absent = [name for name in chosen if name not in results]
    if absent and len(absent) == len(chosen):
        raise SiteError(f"{report_path} has no result for {', '.join(absent)}")
    date = datetime.datetime.fromtimestamp(report_path.stat().st_mtime, datetime.timezone.utc).date().isoformat()
    cpu, cores = machine_cpu()
    rows = load_results(runs_dir)
    skipped = {name: "not in the run's report" for name in absent}
    writes = {}
    for name in chosen:
        result = results.get(name)
        if result is None:
            continue
        if name not in recorded_paths():
            skipped[name] = "not a lesson of the course"
            continue
        if result.get("status") != "passed":
            skipped[name] = f"it {result.get('status')}: {result.get('error') or '?'}"
            continue
        path = recorded_paths()[name]
        executed = Path(result.get("executed_path") or "")
        if not executed.is_absolute():
            executed = run_dir / executed.name
        if not executed.is_file():  # a folder recorded after it moved: look beside the report
            executed = run_dir / executed.name
        try:
            if path.endswith(".ipynb"):
                recording = path
                text = nbformat.writes(clean_recording(read_notebook(executed))) + "\n"
            else:
                recording = f"{Path(path).stem}.txt"
                text = executed.read_text(encoding="utf-8")
        except (OSError, SiteError) as exc:
            skipped[name] = f"its output cannot be read ({exc})"
            continue
        writes[runs_dir / recording] = text
        row = {
            key: result.get(key)
            for key in ("lesson", "path", "status", "data", "epochs", "test_accuracy", "wall_time_s", "stand_in")
        }
        row.update(
            path=path,
            recording=recording,
            mode=report.get("mode"),
            parameters=report.get("parameters"),
            environment=report.get("environment"),
            cpu=cpu,
            cpu_count=cores,
            date=date,
        )
        if not path.endswith(".ipynb"):
            row["source_sha256"] = sha256_file(REPO_ROOT / path)
        rows[name] = row
    if writes:
        ordered = [rows[name] for name in recorded_paths() if name in rows]
        ordered += [row for name, row in rows.items() if name not in recorded_paths()]
        writes[runs_dir / "results.json"] = (
            json.dumps(
                {
                    "about": "The runs the website shows, one row per lesson, each from its own run: "
                    "written by `make site-refresh` (website/build.py); do not edit by hand.",
                    "lessons": ordered,
                },
                indent=2,
                allow_nan=False,
            )
            + "\n"
        )
        if readme is not None:
            try:
                writes[Path(readme)] = readme_with_results(Path(readme).read_text(encoding="utf-8"), rows)
            except OSError as exc:
                raise SiteError(f"{readme} cannot be read: {exc.strerror or exc}") from None
        try:
            write_together(writes)
        except OSError as exc:
            raise SiteError(f"the recording could not be written to {runs_dir}: {exc.strerror or exc}") from None
    recorded = [name for name in chosen if name not in skipped]
    return recorded, skipped


def refresh(lessons=None, runs_dir=RUNS_DIR, run_dir=RUN_DIR, answers=False, readme=None):
    """Run the chosen lessons (default: all) at full length with the course's
    runner into `run_dir`, then record the passed ones (see `record_run`).
    With `answers`, run and record their answer notebooks instead (default:
    every one there is), as "<lesson> answers". `readme` as in `record_run`.

    Returns (recorded, skipped) as `record_run`. Raises SiteError for an
    unknown lesson name, and when the runner was interrupted or wrote no report.
    """
    named = list(lessons or [])
    lessons = named or ([name.removesuffix(ANSWERS_SUFFIX) for name in answer_lessons()] if answers else list(LESSONS))
    unknown = [name for name in lessons if name not in LESSONS]
    if unknown:
        raise SiteError(f"no lesson named {', '.join(unknown)}; the lessons: {', '.join(LESSONS)}")
    report = Path(run_dir) / "results.json"
    report.unlink(missing_ok=True)  # never record an older run's report by mistake
    done = subprocess.run(
        [sys.executable, "-m", "cnn_course", "run", *named, *(["--answers"] if answers else []), "--out", str(run_dir)],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode == 130:
        raise SiteError("the run was interrupted; nothing was recorded")
    if not report.is_file():
        raise SiteError(f"the run wrote no report (exit status {done.returncode}); nothing was recorded")
    chosen = [name + ANSWERS_SUFFIX for name in lessons] if answers else lessons
    return record_run(run_dir, runs_dir, chosen, readme=readme)


# --------------------------------------------------------------------------
# Command line


def main(argv=None):
    """Run the command line; return the exit status (0 done, 1 failed, 2 usage)."""
    parser = argparse.ArgumentParser(
        prog="website/build.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    build = commands.add_parser("build", help="build the site (nothing is executed)")
    build.add_argument("--runs", default=str(RUNS_DIR), metavar="DIR", help="the recorded runs (default: website/runs)")
    build.add_argument("--out", default=str(SITE_DIR), metavar="DIR", help="the site (default: build/site)")
    build.add_argument("--verbose", action="store_true", help="show Sphinx's progress")
    refresh_cmd = commands.add_parser("refresh", help="run lessons at full length and record them")
    record = commands.add_parser("record", help="record a full run already made (on this machine) in DIR")
    record.add_argument("run_dir", metavar="DIR", help="the runner's out folder (holds results.json)")
    for sub in (refresh_cmd, record):
        sub.add_argument("lessons", nargs="*", metavar="LESSON", help="lessons to record (default: all)")
        sub.add_argument(
            "--runs", default=str(RUNS_DIR), metavar="DIR", help="where recordings go (default: website/runs)"
        )
        sub.add_argument(
            "--answers",
            action="store_true",
            help="the lessons' answer notebooks (run --answers) instead of the lessons",
        )
    refresh_cmd.add_argument(
        "--run-dir", default=str(RUN_DIR), metavar="DIR", help="the runner's out folder (default: build/full-run)"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            out = build_site(args.runs, args.out, quiet=not args.verbose)
            print(f"Site: {out / 'index.html'}")
            return 0
        # README's results table shows the course's own recordings only.
        readme = README if Path(args.runs).resolve() == RUNS_DIR.resolve() else None
        if args.command == "refresh":
            recorded, skipped = refresh(args.lessons, args.runs, args.run_dir, args.answers, readme)
        else:
            unknown = [name for name in args.lessons if name not in LESSONS]
            if unknown:
                raise SiteError(f"no lesson named {', '.join(unknown)}; the lessons: {', '.join(LESSONS)}")
            chosen = [name + ANSWERS_SUFFIX for name in args.lessons] if args.answers else args.lessons
            recorded, skipped = record_run(args.run_dir, args.runs, chosen, readme=readme)
    except SiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if recorded:
        print(f"Recorded in {args.runs}: {', '.join(recorded)}")
    for name, why in skipped.items():
        print(f"error: {name} not recorded: {why}", file=sys.stderr)
    return 1 if skipped or not recorded else 0


if __name__ == "__main__":
    sys.exit(main())
