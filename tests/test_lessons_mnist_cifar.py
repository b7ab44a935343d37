"""Lessons 1-4 (MNIST MLP, CIFAR-10 MLP and CNN, augmentation) run top to bottom.

Each lesson runs through the quick-mode contract (`runner.run_lesson(...,
quick=True)`: the sizes in `lessons.QUICK_PARAMETERS`, CNN_COURSE_QUICK=1),
offline, with empty data and Keras folders, so it trains on the labelled
stand-in data. The checks are what each lesson promises: its parameter count,
the result line ``Test accuracy: NN.NN%`` (saying that a stand-in's number
means nothing), the ``Epochs run:`` line, the quick checkpoint (written under tmp_path,
not the lesson folder, so tests may run in parallel) and, for lessons 2 to 4, the history
saved beside it (lessons 3 and 4 draw the previous lesson's curve from its history file, or
say which lesson writes it), the figures (lesson 2's first-layer templates, lesson 3's sliding
kernel), lesson 3's formulas worked beside Keras's numbers, no progress count past its total
and no TensorFlow log line in the outputs. The committed notebooks are checked for their shape
(small parameters cell, no quick-mode cell, exercises at the end). A slow test
trains the MNIST lesson in full on the real MNIST and checks its accuracy.
"""

import json
import re
from pathlib import Path

import pytest

from cnn_course import lessons, runner
from lesson_checks import check_committed, check_executed, checkpoints_in, only_on_tensorflow_by_default, png_outputs

REPO = Path(__file__).resolve().parents[1]
ON_EVERY_BACKEND = True  # for the lessons in ON_OTHER_BACKENDS only (conftest.py)
ON_OTHER_BACKENDS = {"mnist-mlp", "cifar10-cnn"}  # one dense and one convolutional lesson

# lesson -> what its quick run must show
LESSONS = {
    "mnist-mlp": {
        "parameters": 669_706,
        "dataset": "MNIST",
        "figures": 4,  # six digits, pixel values, curves, right and wrong answers
        "lines": ["Accuracy before training:", "one-hot labels:", "Wrong answers:"],
    },
    "cifar10-mlp": {
        "parameters": 3_590_642,
        "dataset": "CIFAR-10",
        "figures": 5,  # 36 images, curves, right and wrong answers, first-layer templates, confusion matrix
        "lines": [
            "training:   2000 images",
            "validation: 5000 images",
            "Wrong answers:",
            "first Dense layer's weights: (3072, 1000)",
        ],
    },
    "cifar10-cnn": {
        "parameters": 528_054,
        "dataset": "CIFAR-10",
        "figures": 5,  # 36 images, sliding kernel, curves, right and wrong answers, confusion matrix
        "lines": ["after Rescaling: values from -", "Wrong answers:"],  # centred on zero
        # the formulas worked for the first conv and pooling layers agree with the model Keras built
        "patterns": [
            r"^conv2d\w*: formula \(32, 32, 16\), 208 parameters; Keras \(32, 32, 16\), 208 parameters$",
            r"^max_pooling2d\w*: formula \(16, 16, 16\), 0 parameters; Keras \(16, 16, 16\), 0 parameters$",
        ],
    },
    "cifar10-augmentation": {
        "parameters": 528_054,
        "dataset": "CIFAR-10",
        "figures": 4,  # originals above augmented, curves, right and wrong answers, confusion matrix
        "lines": ["augment(images, training=False) returns the images unchanged: True", "Wrong answers:"],
    },
}
HISTORY_KEYS = {"loss", "accuracy", "val_loss", "val_accuracy"}


def history_file(checkpoint):
    """The history file a lesson saves beside ``checkpoint`` (a Path)."""
    return checkpoint.with_name(checkpoint.name.removesuffix(".keras") + ".history.json")


@pytest.fixture
def offline(request, tmp_path, monkeypatch, keras_backend):
    """Point the data and Keras folders at empty temp folders and forbid downloads.

    Off TensorFlow, skips the lessons not in ON_OTHER_BACKENDS and the
    augmentation comparison (unless CNN_COURSE_TEST_BACKENDS=all).
    """
    lesson = getattr(request.node, "callspec", None) and request.node.callspec.params.get("lesson")
    if lesson not in ON_OTHER_BACKENDS:
        only_on_tensorflow_by_default(keras_backend, lesson or request.node.name)
    for name, folder in (("CNN_COURSE_DATA", "data"), ("KERAS_HOME", "keras")):
        (tmp_path / folder).mkdir()
        monkeypatch.setenv(name, str(tmp_path / folder))
    monkeypatch.setenv("CNN_COURSE_OFFLINE", "1")
    return tmp_path


def notebook(lesson):
    return REPO / runner.LESSONS[lesson]


@pytest.mark.parametrize("lesson", list(LESSONS))
def test_lesson_runs_in_quick_mode(lesson, offline):
    expected = LESSONS[lesson]
    quick = lessons.QUICK_PARAMETERS[lesson]
    assert quick["CHECKPOINT"].endswith(".quick.keras")
    overrides = checkpoints_in(offline, lesson)  # not the lesson folder's: tests may run in parallel
    checkpoint = Path(overrides["CHECKPOINT"])
    history = history_file(checkpoint)
    earlier = None  # the previous lesson's history file this lesson draws, if any
    if lesson == "cifar10-cnn":  # lesson 2's history present: a made-up one of 3 epochs is drawn
        earlier = history_file(Path(overrides["MLP_CHECKPOINT"]))
        earlier.write_text(json.dumps({key: [0.1, 0.2, 0.3] for key in HISTORY_KEYS}))
    # MNIST runs with progress bars (VERBOSE=1), where a count past its total showed before
    overrides.update({"VERBOSE": 1} if lesson == "mnist-mlp" else {})
    result = runner.run_lesson(lesson, overrides, offline / "out", timeout=600, quick=True)
    text = check_executed(result)

    assert f"Parameters: {expected['parameters']:,}" in text
    printed = re.findall(
        r"^Test accuracy: (\d{1,3}\.\d\d)% \(STAND-IN data: this number says nothing "
        rf"about {expected['dataset']}\)$",
        text,
        re.MULTILINE,
    )
    assert printed, "no 'Test accuracy: NN.NN% (STAND-IN data: ...)' line"
    assert result["test_accuracy"] == pytest.approx(float(printed[-1]))
    assert re.search(r"^Epochs run: 1$", text, re.MULTILINE)
    assert result["epochs"] == 1  # quick mode trains one epoch
    assert checkpoint.is_file(), f"{checkpoint.name} was not written"
    assert png_outputs(result["executed_path"]) >= expected["figures"]
    assert "STAND-IN" in (result["data"] or "")
    for line in expected["lines"]:
        assert line in text
    for pattern in expected.get("patterns", []):
        assert re.search(pattern, text, re.MULTILINE), pattern
    if lesson == "mnist-mlp":
        assert re.search(r"\b(\d+)/\1\b", text), "no finished progress bar in the outputs"
    else:  # lessons 2 to 4 save their history beside the checkpoint, one entry per epoch
        saved = json.loads(history.read_text())
        assert set(saved) == HISTORY_KEYS and all(len(values) == 1 for values in saved.values()), saved
        assert f"History of 1 epochs saved to {history}: " in text
    if lesson == "cifar10-cnn":
        assert f"Lesson 2's validation accuracy (3 epochs) drawn from {earlier}" in text
    if lesson == "cifar10-augmentation":  # no lesson-3 history in this test's folder: one line says how
        plain = history_file(Path(overrides["PLAIN_CNN_CHECKPOINT"]))
        assert f"No {plain}: run lesson 3 (cifar10_cnn.ipynb) to draw its curve here." in text


def test_augmentation_compares_with_the_quick_plain_cnn_in_quick_mode(offline):
    # the lesson folders' names: lesson 4 reads lesson 3's quick checkpoint from lesson 3's folder
    plain = REPO / "cifar10-classification" / lessons.QUICK_PARAMETERS["cifar10-cnn"]["CHECKPOINT"]
    assert (
        notebook("cifar10-augmentation").parent
        / lessons.QUICK_PARAMETERS["cifar10-augmentation"]["PLAIN_CNN_CHECKPOINT"]
    ).resolve() == plain.resolve()
    # the runs write under tmp_path, not there (tests may run in parallel)
    cnn = runner.run_lesson(
        "cifar10-cnn", checkpoints_in(offline, "cifar10-cnn"), offline / "cnn", timeout=600, quick=True
    )
    check_executed(cnn)
    overrides = checkpoints_in(offline, "cifar10-augmentation")
    result = runner.run_lesson("cifar10-augmentation", overrides, offline / "aug", timeout=600, quick=True)
    text = check_executed(result)
    assert re.search(r"^Plain CNN, no augmentation: \d+\.\d\d%$", text, re.MULTILINE)
    assert re.search(r"^Difference: [+-]\d+\.\d\d percentage points \(STAND-IN data", text, re.MULTILINE)
    # lesson 3's quick run saved its history beside its checkpoint, and lesson 4 draws it
    drawn = history_file(Path(overrides["PLAIN_CNN_CHECKPOINT"]))
    assert f"Lesson 3's validation accuracy (1 epochs) drawn from {drawn}" in text


@pytest.mark.slow
def test_mnist_mlp_full_run_reaches_98_percent(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("CNN_COURSE_DATA", str(shared_data))
    checkpoint = tmp_path / "mnist_mlp.best.keras"  # keep the lesson folder's own checkpoint
    result = runner.run_lesson("mnist-mlp", {"CHECKPOINT": str(checkpoint)}, tmp_path / "out", timeout=900)
    text = check_executed(result)
    assert "STAND-IN" not in (result["data"] or "") and "STAND-IN" not in text
    assert result["epochs"] == 10
    assert result["test_accuracy"] is not None and result["test_accuracy"] >= 98.0  # README's table
    assert checkpoint.is_file()


@pytest.mark.parametrize("lesson", list(LESSONS))
def test_committed_notebook_is_a_lesson(lesson):
    check_committed(notebook(lesson), lesson)


def test_augmentation_exercise_1_names_the_checkpoint_path_lesson_3_writes():
    """Exercise 1 of lesson 4 gives PLAIN_CNN_CHECKPOINT as a path from lesson 4's folder to lesson 3's file."""
    from lesson_checks import read

    exercises = read(notebook("cifar10-augmentation")).cells[-1].source
    written = re.search(r'`CHECKPOINT = "([^"]+)"`', exercises)
    read_back = re.search(r'`PLAIN_CNN_CHECKPOINT = "([^"]+)"`', exercises)
    assert written and read_back, "exercise 1 must spell out both assignments"
    lesson_3_file = notebook("cifar10-cnn").parent / written.group(1)  # lesson 3 writes into its own folder
    assert (notebook("cifar10-augmentation").parent / read_back.group(1)).resolve() == lesson_3_file.resolve()
