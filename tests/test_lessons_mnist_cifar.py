"""Lessons 1-4 (MNIST MLP, CIFAR-10 MLP and CNN, augmentation) run top to bottom.

Each notebook is executed in quick mode through `cnn_course.runner`, offline,
with empty data and Keras folders, so it trains on the labelled stand-in data.
The checks are what each lesson promises: its parameter count, the result line
``Test accuracy: NN.NN%``, the ``Epochs run:`` line, the quick checkpoint in
the lesson folder and the figures. A slow test trains the MNIST lesson in full
on the real MNIST from ../shared/data and checks its accuracy.
"""

import re
from pathlib import Path

import nbformat
import pytest

from cnn_course.runner import execute_notebook

REPO = Path(__file__).resolve().parents[1]
REAL_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist.npz"
QUICK = {"QUICK": True, "VERBOSE": 2}

# notebook -> what its quick run must show
LESSONS = {
    "mnist-mlp/mnist_mlp.ipynb": {
        "parameters": 669_706,
        "checkpoint": "mnist_mlp.quick.keras",
        "figures": 4,  # six digits, pixel values, curves, predictions
        "lines": ["Accuracy before training:", "one-hot labels:"],
    },
    "cifar10-classification/cifar10_mlp.ipynb": {
        "parameters": 3_590_642,
        "checkpoint": "cifar10_mlp.quick.keras",
        "figures": 4,  # 36 images, curves, predictions, confusion matrix
        "lines": ["validation:"],
    },
    "cifar10-classification/cifar10_cnn.ipynb": {
        "parameters": 528_054,
        "checkpoint": "cifar10_cnn.quick.keras",
        "figures": 4,  # 36 images, curves, predictions, confusion matrix
        "lines": ["validation:"],
    },
    "cifar10-augmentation/cifar10_augmentation.ipynb": {
        "parameters": 528_054,
        "checkpoint": "cifar10_augmentation.quick.keras",
        "figures": 4,  # originals above augmented, curves, predictions, confusion matrix
        "lines": ["augment(images, training=False) returns the images unchanged: True"],
    },
}


@pytest.fixture
def offline(tmp_path, monkeypatch, keras_backend):
    """Point the data and Keras folders at empty temp folders and forbid downloads."""
    for name, folder in (("CNN_COURSE_DATA", "data"), ("KERAS_HOME", "keras")):
        (tmp_path / folder).mkdir()
        monkeypatch.setenv(name, str(tmp_path / folder))
    monkeypatch.setenv("CNN_COURSE_OFFLINE", "1")
    return tmp_path


def png_outputs(executed_path):
    """Return how many image/png outputs the executed notebook holds."""
    nb = nbformat.read(executed_path, as_version=4)
    return sum(
        "image/png" in output.get("data", {})
        for cell in nb.cells if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


@pytest.mark.parametrize("notebook", list(LESSONS), ids=lambda p: Path(p).stem)
def test_lesson_runs_in_quick_mode(notebook, offline):
    lesson = LESSONS[notebook]
    path = REPO / notebook
    checkpoint = path.parent / lesson["checkpoint"]
    checkpoint.unlink(missing_ok=True)  # so the check below sees this run's file
    try:
        result = execute_notebook(path, QUICK, offline / "out", timeout=600)
        assert result["status"] == "passed", f"{result['error']} (cell {result['failed_cell']})"
        text = result["text"]

        assert f"Parameters: {lesson['parameters']:,}" in text
        printed = re.findall(r"^Test accuracy: (\d{1,3}\.\d\d)%$", text, re.MULTILINE)
        assert printed, "no 'Test accuracy: NN.NN%' line"
        assert 0.0 <= float(printed[-1]) <= 100.0
        assert result["test_accuracy"] == pytest.approx(float(printed[-1]))
        assert "Epochs run:" in text
        assert result["epochs"] == 1  # quick mode trains one epoch
        assert checkpoint.is_file(), f"{checkpoint.name} was not written"
        assert png_outputs(result["executed_path"]) >= lesson["figures"]
        assert "STAND-IN" in (result["data"] or "")
        for line in lesson["lines"]:
            assert line in text
    finally:
        checkpoint.unlink(missing_ok=True)


@pytest.mark.slow
@pytest.mark.skipif(not REAL_MNIST.is_file(), reason=f"real MNIST not found at {REAL_MNIST}")
def test_mnist_mlp_full_run_reaches_97_5_percent(offline):
    parameters = {
        "DATA_PATH": str(REAL_MNIST),
        "VERBOSE": 2,
        "CHECKPOINT": str(offline / "mnist_mlp.best.keras"),  # keep the lesson folder's own checkpoint
    }
    result = execute_notebook(REPO / "mnist-mlp/mnist_mlp.ipynb", parameters, offline / "out", timeout=900)
    assert result["status"] == "passed", f"{result['error']} (cell {result['failed_cell']})"
    assert "STAND-IN" not in (result["data"] or "")
    assert result["epochs"] is not None and result["epochs"] >= 1
    assert result["test_accuracy"] is not None and result["test_accuracy"] >= 97.5
    assert (offline / "mnist_mlp.best.keras").is_file()


@pytest.mark.parametrize("notebook", list(LESSONS), ids=lambda p: Path(p).stem)
def test_committed_notebook_is_stripped_and_imports_once(notebook):
    nb = nbformat.read(REPO / notebook, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)
    tagged = [i for i, cell in enumerate(nb.cells) if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1
    quick = nb.cells[tagged[0] + 1].source
    assert quick.startswith("# Quick mode: a small subset") and "never replace" in quick
    # every import sits in one cell, near the top, not in the middle of the lesson
    importing = [cell for cell in code if re.search(r"^(import |from \S+ import )", cell.source, re.MULTILINE)]
    assert len(importing) == 1
