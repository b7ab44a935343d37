"""The course's lessons, their quick-mode sizes, and the parameters injected into them.

`LESSONS` names each lesson's notebook or script, in course order, and
`QUICK_PARAMETERS` each notebook's small sizes for ``run --quick``.
`lesson_parameters` returns what one lesson gets, and `inject_parameters`
puts it into a notebook as a code cell after its ``parameters`` cell (the
papermill convention); `parameters_source` and `check_value` refuse what
cannot be written there as Python.
"""

from __future__ import annotations

import ast
import keyword
import math
from pathlib import Path

import nbformat

REPO_ROOT = Path(__file__).resolve().parents[1]
# The lessons live in the course's checkout, beside this package. Installed from
# a wheel (pip, Colab) REPO_ROOT is site-packages, which holds no lessons.
IN_CHECKOUT = (REPO_ROOT / "pyproject.toml").is_file()
NOT_IN_CHECKOUT = ("the lessons are not part of the installed cnn-course package: run this command in a "
                   "checkout of the course (git clone its repository), or open a lesson's notebook in "
                   "Jupyter or Colab and run it there")

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
    "cifar10-cnn": {"EPOCHS": 1, "N_TRAIN": 2000, "BATCH_SIZE": 128, "CHECKPOINT": "cifar10_cnn.quick.keras",
                    "MLP_CHECKPOINT": "cifar10_mlp.quick.keras"},
    "cifar10-augmentation": {
        "EPOCHS": 1, "N_TRAIN": 2000, "BATCH_SIZE": 128, "CHECKPOINT": "cifar10_augmentation.quick.keras",
        "PLAIN_CNN_CHECKPOINT": "../cifar10-classification/cifar10_cnn.quick.keras",
    },
    "bottleneck-features": {"N_PHOTOS": 2},
    "transfer-learning": {"N_IMAGES": 100, "EPOCHS": 2, "FINE_TUNE_EPOCHS": 1,
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


# What a parameter's value may be made of: what a notebook reads back from
# its repr() and the report holds as JSON (a tuple becomes a list there).
_SCALARS = (type(None), bool, int, float, str)
# Literals Python reads back but JSON cannot hold, and what to call them.
_NOT_JSON = {set: "a set", frozenset: "a set", bytes: "bytes", complex: "a complex number"}


def check_value(value):
    """Return `value` if it can be written into a notebook as a Python literal
    and into the report as JSON.

    Allowed: None, bools, ints, finite floats, strings, and lists, tuples and
    dicts of them (dict keys: a scalar). Raises ValueError for a non-finite
    number (inf, nan: they read back as undefined names and cannot go into
    strict JSON), also inside a container; for a set, bytes, a complex number
    or any other type JSON cannot hold; and for a value whose repr() does not
    read back as the same literal.
    """
    def walk(item):
        if isinstance(item, (float, complex)) and not all(map(math.isfinite, (item.real, item.imag))):
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
            raise ValueError(f"{item!r} is {_NOT_JSON[type(item)]}, which the report cannot hold: "
                             "use a number, a string, True/False/None, or a list, tuple or dict of them")
        elif not isinstance(item, _SCALARS):
            raise ValueError(f"{item!r} cannot be written as a Python literal")

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


def inject_parameters(nb, parameters, require_cell=False):
    """Insert a code cell tagged ``injected-parameters`` after the ``parameters`` cell.

    Modifies `nb` in place. A previously injected cell is replaced (re-running
    an executed copy is safe). Without a ``parameters`` cell the new cell goes
    first, as papermill does; with `require_cell` (a quick run, whose sizes
    and checkpoint name the notebook's own untagged assignments would
    override, so it would run at full length and overwrite the full run's
    checkpoint) that is refused instead, as is a later cell that assigns a
    quick checkpoint name again.

    Returns (index of the injected cell, list of warning strings): a warning for
    each injected name the parameters cell does not assign (the name is still
    injected: a notebook may read it with ``globals().get``), and one when
    the notebook has no parameters cell.
    Raises ValueError for invalid names or values (see `parameters_source`),
    and with `require_cell` when the notebook has no ``parameters`` cell or
    a later cell assigns a quick checkpoint name (a str with ".quick.") again.
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
        if require_cell:
            raise ValueError("the notebook has no cell tagged 'parameters', so its own values would "
                             "override the quick sizes and checkpoint name (a quick run would run at full "
                             "length and overwrite the full run's checkpoint); tag its parameters cell "
                             "'parameters' again")
        warnings.append("the notebook has no cell tagged 'parameters'; parameters injected first")
    if known is not None:
        unknown = [name for name in parameters if name not in known]
        if unknown:
            warnings.append(
                "not in the notebook's parameters cell (injected anyway): " + ", ".join(unknown)
            )
    if require_cell:
        _refuse_reassigned_checkpoints(nb.cells[position:], parameters)
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": [INJECTED_TAG]})
    nb.cells.insert(position, cell)
    return position, warnings


def _refuse_reassigned_checkpoints(cells, parameters):
    """Raise ValueError when one of `cells` (those after the parameters cell)
    assigns again, at top level, a name `parameters` gives a quick checkpoint
    name (a str with ".quick."): the quick run would then write the full
    run's checkpoint. Cells that are not valid Python (magics) are skipped.
    Returns None."""
    names = {name for name, value in parameters.items() if isinstance(value, str) and ".quick." in value}
    for cell in cells:
        if cell.cell_type != "code" or not names:
            continue
        try:
            again = [name for name in parameter_names(cell.source) if name in names]
        except SyntaxError:
            continue
        if again:
            raise ValueError(f"a cell after the parameters cell assigns {', '.join(again)} again, so a quick "
                             "run would overwrite the full run's checkpoint; assign it in the parameters cell only")



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
