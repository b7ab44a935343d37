"""The course's lessons, their quick-mode sizes and answer notebooks, and writing parameters into a notebook.

`LESSONS` names each lesson's notebook or script in course order, `QUICK_PARAMETERS` each notebook's
small sizes for ``run --quick``. `inject_parameters` writes `lesson_parameters` as a cell after the
notebook's ``parameters`` cell (papermill's convention), refusing what Python cannot read back.
"""

from __future__ import annotations

import ast
import contextlib
import keyword
import math
import re
from pathlib import Path

import nbformat

REPO_ROOT = Path(__file__).resolve().parents[1]
# The lessons live in the checkout beside this package; installed from a wheel, REPO_ROOT holds none.
IN_CHECKOUT = (REPO_ROOT / "pyproject.toml").is_file()
NOT_IN_CHECKOUT = (
    "the lessons are not part of the installed cnn-course package: run this command in a "
    "checkout of the course (git clone its repository), or open a lesson's notebook in "
    "Jupyter or Colab and run it there"
)

# Lesson name -> path from the repository root, in the order they run. conv-visualization reuses
# cifar10-cnn's checkpoint; bottleneck-features explains the features transfer-learning computes.
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

# What `run --quick` injects into each notebook lesson (-p values override them): small sizes and a
# checkpoint name of its own, so a smoke run never replaces a full run's checkpoint.
_SMALL = {"EPOCHS": 1, "N_TRAIN": 2000, "BATCH_SIZE": 128}  # most training lessons' quick sizes
_CNN = "../cifar10-classification/cifar10_cnn.quick.keras"  # lesson 3's quick checkpoint, which 4 and 7 reuse
QUICK_PARAMETERS = {
    "mnist-mlp": {**_SMALL, "CHECKPOINT": "mnist_mlp.quick.keras"},
    "cifar10-mlp": {"EPOCHS": 1, "N_TRAIN": 2000, "CHECKPOINT": "cifar10_mlp.quick.keras"},
    "cifar10-cnn": {**_SMALL, "CHECKPOINT": "cifar10_cnn.quick.keras", "MLP_CHECKPOINT": "cifar10_mlp.quick.keras"},
    "cifar10-augmentation": {**_SMALL, "CHECKPOINT": "cifar10_augmentation.quick.keras", "PLAIN_CNN_CHECKPOINT": _CNN},
    "bottleneck-features": {"N_PHOTOS": 2},
    "transfer-learning": {
        "N_IMAGES": 100,
        "EPOCHS": 2,
        "FINE_TUNE_EPOCHS": 1,
        "CHECKPOINT": "transfer_learning.quick.keras",
    },
    "conv-visualization": {"CNN_CHECKPOINT": _CNN, "N_TRAIN": 500, "EPOCHS": 1},
    "training-speed": {**_SMALL, "CHUNK_IMAGES": 1024, "ROUNDS": 1, "SKIP": ["jit_compile", "threads"]},
    "modern-cnn": {"EPOCHS": 2, "N_TRAIN": 1000, "BATCH_SIZE": 128, "CHECKPOINT": "modern_cnn.quick.keras"},
    "data-parallel": {"EPOCHS": 1, "N_TRAIN": 512, "BATCH_SIZE": 64, "TIMING_ROUNDS": 1, "TIMING_STEPS": 2},
}

INJECTED_TAG = "injected-parameters"

# Worked answers: one notebook per notebook lesson, named like it (solutions/mnist_mlp.ipynb).
ANSWERS_DIR = "solutions"
ANSWERS_SUFFIX = " answers"  # a report's row for lesson X's answers is "X answers"


def answer_path(name):
    """Return lesson `name`'s answer notebook from the repository root (may not exist), None for a
    script. Raises KeyError."""
    path = Path(LESSONS[name])
    return Path(ANSWERS_DIR) / path.name if path.suffix == ".ipynb" else None


def answer_lessons():
    """Return {"<lesson> answers": path} for the answer notebooks that exist, in course order."""
    return {
        name + ANSWERS_SUFFIX: str(path)
        for name in LESSONS
        if (path := answer_path(name)) is not None and (REPO_ROOT / path).is_file()
    }


def lessons_without_answers():
    """Return the notebook lessons that have no answer notebook yet (list, in course order)."""
    return [name for name in LESSONS if (path := answer_path(name)) is not None and not (REPO_ROOT / path).is_file()]


def parameter_names(source):
    """Return the names `source` (a cell) assigns at top level, in order. Raises SyntaxError."""
    names = {}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for target in getattr(node, "targets", None) or [node.target]:
                names.update(dict.fromkeys(sub.id for sub in ast.walk(target) if isinstance(sub, ast.Name)))
    return list(names)


# What a parameter's value may be made of: what a notebook reads back from its repr() and JSON holds.
_SCALARS = (type(None), bool, int, float, str)
_NOT_JSON = {set: "a set", frozenset: "a set", bytes: "bytes", complex: "a complex number"}


def check_value(value):
    """Return `value` when a notebook reads it back from its repr() and JSON holds it (None, bools, ints,
    finite floats, strings, and lists, tuples and dicts of them); else raise ValueError saying why."""

    def walk(item):
        if isinstance(item, (float, complex)) and not (math.isfinite(item.real) and math.isfinite(item.imag)):
            raise ValueError(f"{item!r} is not a finite number")
        if isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, _SCALARS):
                    raise ValueError(f"{key!r} cannot be a key: use a string or a number")
                walk(key)
                walk(sub)
        elif isinstance(item, (list, tuple)):
            for sub in item:
                walk(sub)
        elif type(item) in _NOT_JSON:
            raise ValueError(
                f"{item!r} is {_NOT_JSON[type(item)]}, which the report cannot hold: "
                "use a number, a string, True/False/None, or a list, tuple or dict of them"
            )
        elif not isinstance(item, _SCALARS):
            raise ValueError(f"{item!r} cannot be written as a Python literal")

    walk(value)
    try:
        same = ast.literal_eval(repr(value)) == value
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        same = False
    if not same:
        raise ValueError(f"{value!r} cannot be written as a Python literal")
    return value


def parameters_source(parameters):
    """Return the injected cell's source, a ``NAME = repr(value)`` line each. Raises ValueError for a
    name that is no identifier or a value `check_value` refuses."""
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


def _tagged(cell, tag):
    return tag in cell.get("metadata", {}).get("tags", [])


def inject_parameters(nb, parameters, require_cell=False):
    """Insert in `nb` a cell tagged ``injected-parameters`` after its ``parameters`` cell (first, with a
    warning, without one), replacing an earlier one. `require_cell` (a quick run, whose checkpoint must
    not be the full run's) refuses a notebook without that cell or with a later cell assigning a quick
    checkpoint's name again. Returns (its index, warnings). Raises ValueError for those refusals."""
    source = parameters_source(parameters)
    nb.cells = [c for c in nb.cells if not _tagged(c, INJECTED_TAG)]
    at = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code" and _tagged(c, "parameters")), None)
    warnings = []
    if at is None and require_cell:
        raise ValueError(
            "the notebook has no cell tagged 'parameters', so its own values would override the "
            "quick sizes and checkpoint name (a quick run would run at full length and overwrite "
            "the full run's checkpoint); tag its parameters cell 'parameters' again"
        )
    if at is None:
        warnings.append("the notebook has no cell tagged 'parameters'; parameters injected first")
    else:
        with contextlib.suppress(SyntaxError):
            unknown = [name for name in parameters if name not in parameter_names(nb.cells[at].source)]
            if unknown:
                warnings.append("not in the notebook's parameters cell (injected anyway): " + ", ".join(unknown))
    at = 0 if at is None else at + 1
    checkpoints = {name for name, value in parameters.items() if isinstance(value, str) and ".quick." in value}
    for cell in [c for c in nb.cells[at:] if c.cell_type == "code"] if require_cell and checkpoints else []:
        with contextlib.suppress(SyntaxError):  # magics are not Python
            again = [name for name in parameter_names(cell.source) if name in checkpoints]
            if again:
                raise ValueError(
                    f"a cell after the parameters cell assigns {', '.join(again)} again, so a quick "
                    "run would overwrite the full run's checkpoint; assign it in the parameters cell only"
                )
    nb.cells.insert(at, nbformat.v4.new_code_cell(source, metadata={"tags": [INJECTED_TAG]}))
    return at, warnings


def lesson_parameters(name, quick=False, overrides=None, accepted=None):
    """Return lesson `name`'s parameters: VERBOSE=2, with `quick` its `QUICK_PARAMETERS` (only the
    `accepted` names, when given: an answer notebook's), then `overrides` (``-p``), later ones winning."""
    quick_sizes = QUICK_PARAMETERS.get(name.removesuffix(ANSWERS_SUFFIX) if name else name, {}) if quick else {}
    if accepted is not None:
        quick_sizes = {key: value for key, value in quick_sizes.items() if key in accepted}
    return {"VERBOSE": 2, **quick_sizes, **(overrides or {})}


# "1. **No scaling.** ..." in a lesson's "## Exercises" cell; "## Exercise 1: No scaling" opens its answer.
_EXERCISE_RE = re.compile(r"^(\d+)\.\s+\*\*(.+?)\*\*", re.MULTILINE)
_ANSWER_HEADING_RE = re.compile(r"^##\s+Exercise\s+(\d+):\s*(.+?)\s*$")


def exercise_title(bold):
    """Return an exercise's title as its answer's heading has it: the bold text without its full stop."""
    return bold.strip().removesuffix(".").strip()


def exercises_cell(nb):
    """Return the index of the last markdown cell that starts with "## Exercises", or None."""
    found = [
        i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.lstrip().startswith("## Exercises")
    ]
    return found[-1] if found else None


def exercise_titles(nb):
    """Return {number: title} of a lesson notebook's exercises, in order."""
    at = exercises_cell(nb)
    return {} if at is None else {int(n): exercise_title(t) for n, t in _EXERCISE_RE.findall(nb.cells[at].source)}


def answer_sections(nb):
    """Return {number: (title, [cells])} of an answer notebook: from each "## Exercise N: <title>" cell
    to the next heading of level 1 or 2."""
    sections, current = {}, None
    for cell in nb.cells:
        first = cell.source.lstrip().splitlines()[0] if cell.cell_type == "markdown" and cell.source.strip() else ""
        match = _ANSWER_HEADING_RE.match(first)
        if match:
            current = sections.setdefault(int(match.group(1)), (match.group(2), []))[1]
        elif re.match(r"#{1,2}\s", first):
            current = None
        if current is not None:
            current.append(cell)
    return sections
