"""Checks shared by the lesson tests: what a lesson notebook promises, read
from the committed notebook or from an executed copy.

Imported by tests/test_lessons_*.py (pytest puts tests/ on sys.path).
"""

import contextlib
import os
import re
from pathlib import Path

import nbformat
import pytest

from cnn_course import lessons

# TensorFlow's C++ log lines: absl's preamble, oneDNN's notice, cpu_feature_guard,
# and any glog-style "I1129 12:00:00..." or "I0000 00:00:..." line.
TF_LOG = re.compile(
    r"absl::InitializeLog|oneDNN custom operations|cpu_feature_guard|^[IWEF]\d{4} \d\d:\d\d:\d\d", re.MULTILINE
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_COUNT = re.compile(r"(?<![\d/.])(\d+)/(\d+)(?![\d/.])")


def only_on_tensorflow_by_default(backend, what):
    """Skip the test (`what` names it) on a backend other than TensorFlow.

    Unless CNN_COURSE_TEST_BACKENDS=all: then nothing is skipped. See conftest.py.
    """
    every = os.environ.get("CNN_COURSE_TEST_BACKENDS", "").strip().lower() == "all"
    if backend != "tensorflow" and not every:
        pytest.skip(f"{what} runs on {backend} only with CNN_COURSE_TEST_BACKENDS=all")


@contextlib.contextmanager
def offline_home(tmp_path_factory, name, folders=("data", "keras")):
    """Yield a new folder `name` whose empty sub-folders the notebooks use; downloads refused.

    "data" becomes CNN_COURSE_DATA, "keras" KERAS_HOME and "tmp" TMPDIR for
    this process and the kernels it starts, and CNN_COURSE_OFFLINE=1, until
    the block ends. The notebooks write their outputs under the folder.
    """
    variables = {"data": "CNN_COURSE_DATA", "keras": "KERAS_HOME", "tmp": "TMPDIR"}
    home = tmp_path_factory.mktemp(name)
    with pytest.MonkeyPatch.context() as mp:
        for folder in folders:
            (home / folder).mkdir()
            mp.setenv(variables[folder], str(home / folder))
        mp.setenv("CNN_COURSE_OFFLINE", "1")
        yield home


def checkpoints_in(folder, lesson):
    """Return `lesson`'s quick-mode checkpoint parameters pointed into `folder`, file names kept.

    Passed as overrides to a quick run, they keep its checkpoints out of the
    lesson folders (so that tests can run in parallel and leave the checkout
    clean); lessons run with the same `folder` find each other's checkpoints
    (lesson 4's PLAIN_CNN_CHECKPOINT is lesson 3's CHECKPOINT).
    """
    return {
        name: str(Path(folder) / Path(value).name)
        for name, value in lessons.QUICK_PARAMETERS[lesson].items()
        if "CHECKPOINT" in name
    }


def read(path):
    return nbformat.read(path, as_version=4)


def output_text(executed_path):
    """Return every text the executed notebook's cells show (streams, plain text, errors), ANSI codes removed."""
    parts = []
    for cell in read(executed_path).cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            parts.append(out.get("text", ""))
            parts.append(out.get("data", {}).get("text/plain", ""))
            parts.extend(out.get("traceback", []))
    return _ANSI.sub("", "\n".join(parts))


def counts_past_total(text):
    """Return the "n/total" progress counts in `text` whose n exceeds total (e.g. "48/47")."""
    return [m.group(0) for m in _COUNT.finditer(text) if int(m.group(1)) > int(m.group(2))]


def png_outputs(executed_path):
    """Return how many image/png outputs the executed notebook holds."""
    return sum(
        "image/png" in out.get("data", {})
        for cell in read(executed_path).cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    )


def parameters_cell(nb):
    tagged = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    return tagged[0]


def check_executed(result):
    """Assert what every executed lesson promises; return the cells' output text."""
    assert result["status"] == "passed", f"{result['error']} (cell {result['failed_cell']})"
    assert not result["warnings"], result["warnings"]  # e.g. a quick parameter the cell does not have
    text = output_text(result["executed_path"])
    assert not TF_LOG.search(text), f"TensorFlow log line in the outputs: {TF_LOG.search(text).group(0)!r}"
    assert counts_past_total(text) == [], f"progress counts past their total: {counts_past_total(text)}"
    return text


def install_cell_source():
    """Return what every lesson's first code cell holds: installing the course's
    helper package where it is missing (Colab), from the repository that
    pyproject.toml's [project.urls] names."""
    import tomllib

    url = tomllib.loads((lessons.REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["urls"][
        "Repository"
    ]
    return (
        "# Colab, or any Python without the course's helpers: install them (once).\n"
        "import importlib.util\n"
        "\n"
        'if importlib.util.find_spec("cnn_course") is None:\n'
        f'    %pip install --quiet "cnn-course @ git+{url}"'
    )


def check_committed(path, lesson):
    """Assert the committed notebook's shape: stripped, the install cell first, a small parameters
    cell and no quick-mode scaffolding, imports in one cell, and an exercises section at the end."""
    nb = read(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].source == install_cell_source(), "the first code cell installs the course's helpers"
    code = code[1:]  # its import is the install's, not the lesson's
    assert all(c.outputs == [] and c.execution_count is None for c in code), "notebook is not stripped"
    knobs = lessons.parameter_names(parameters_cell(nb).source)
    assert len(knobs) <= 8, f"{len(knobs)} knobs in the parameters cell: {knobs}"
    assert "VERBOSE" in knobs  # the runner sets it
    # quick mode is invisible: no QUICK knob, no quick cell, loaders read CNN_COURSE_QUICK themselves
    for cell in nb.cells:
        assert "QUICK" not in cell.source and "quick=" not in cell.source, cell.source[:80]
        if lesson != "training-speed":  # the lesson that teaches it, with no progress bars
            assert "steps_per_execution" not in cell.source.lower(), cell.source[:80]
    # the quick sizes are ordinary parameters of this notebook, and a smoke run's
    # checkpoint never has a full run's name
    quick = lessons.QUICK_PARAMETERS[lesson]
    assert quick and set(quick) <= set(knobs), set(quick) - set(knobs)
    defaults = {}
    exec(parameters_cell(nb).source, {}, defaults)  # noqa: S102 - the notebook's own literals
    for name, value in quick.items():
        if "CHECKPOINT" in name:
            assert value.endswith(".quick.keras") and defaults[name].endswith(".keras"), name
            assert not defaults[name].endswith(".quick.keras"), name
    importing = [c for c in code if re.search(r"^(import |from \S+ import )", c.source, re.MULTILINE)]
    assert len(importing) == 1, "every import sits in one cell near the top"
    assert not any(re.search(r"""print\(f?["']Data:""", c.source) for c in code)  # cnn_course.data prints it
    last = nb.cells[-1]
    assert last.cell_type == "markdown" and last.source.startswith("## Exercises")
    exercises = re.findall(r"^\d\. \*\*", last.source, re.MULTILINE)
    assert 2 <= len(exercises) <= 4
    assert last.source.count("*Observe:*") == len(exercises), "each exercise says what to observe"
    return nb
