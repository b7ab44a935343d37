"""Lesson 7 (conv visualisation) runs top to bottom.

Through the quick-mode contract (`runner.run_lesson(..., quick=True)`),
offline, with empty data and Keras folders. The lesson needs CIFAR-10 only
when lesson 3's checkpoint is missing: then it says so and trains that CNN
itself, visibly (in quick mode on the labelled stand-in); with the checkpoint
it needs no CIFAR-10 at all, in quick or full mode; in full mode without
either it stops with the data layer's clear message. The checks are what the
lesson promises: the activation-map shapes, the model line, the first-layer
filters, the feature-map shapes and the figures.
"""

import ast
import re
import warnings
from pathlib import Path

import nbformat
import pytest

from cnn_course import lessons, runner
from lesson_checks import check_committed, check_executed, offline_home, png_outputs

REPO = Path(__file__).resolve().parents[1]
CONV = REPO / runner.LESSONS["conv-visualization"]


@pytest.fixture(scope="module")
def offline(tmp_path_factory, keras_backend):
    """Empty data and Keras folders for the notebook kernels (on each backend); downloads refused."""
    with offline_home(tmp_path_factory, f"lesson-7-{keras_backend}") as home:
        yield home


@pytest.fixture(scope="module")
def saved_cnn(offline):
    """Lesson 3's CNN (random weights), saved as lesson 3 saves it."""
    keras = pytest.importorskip("keras")
    from keras import layers

    keras.utils.set_random_seed(0)
    cnn = keras.Sequential([
        keras.Input((32, 32, 3)),
        layers.Rescaling(1 / 127.5, offset=-1),
        layers.Conv2D(16, 2, padding="same", activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(32, 2, padding="same", activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(64, 2, padding="same", activation="relu"), layers.MaxPooling2D(2),
        layers.Dropout(0.3), layers.Flatten(),
        layers.Dense(500, activation="relu"), layers.Dropout(0.4),
        layers.Dense(10, activation="softmax"),
    ])
    path = offline / "cifar10_cnn.best.keras"
    with warnings.catch_warnings():  # Keras's own DeprecationWarning when saving on NumPy 2
        warnings.simplefilter("ignore", DeprecationWarning)
        cnn.save(path)
    return path


def run(parameters, home, name, quick=True):
    return runner.run_lesson("conv-visualization", parameters, home / name, timeout=600, quick=quick)


def shapes(pattern, text):
    """Return every tuple printed after `pattern` (a regex with one group around the tuple)."""
    return [ast.literal_eval(m) for m in re.findall(pattern, text, re.MULTILINE)]


def check_activation_maps(text):
    gray = shapes(r"grayscale image: (\(.*?\))$", text)
    assert len(gray) == 1
    height, width = gray[0]
    assert width == 256  # WIDTH
    maps = re.findall(r"^Activation map (\d): (\(.*?\))$", text, re.MULTILINE)
    assert [int(n) for n, _ in maps] == [1, 2, 3, 4]
    # a 4x4 filter without padding fits in 3 fewer positions each way
    assert all(ast.literal_eval(shape) == (height - 3, width - 3) for _, shape in maps)


def check_inside_the_cnn(text, executed_path):
    assert "Parameters: 528,054" in text
    assert shapes(r"^First-layer filters: (\(.*?\))$", text) == [(2, 2, 3, 16)]
    maps = shapes(r"^Feature maps of \w+: (\(.*?\))$", text)
    assert maps == [(32, 32, 16), (16, 16, 32), (8, 8, 64)]
    # photo, four filters, four maps, learned filters, filter values, photo at 32x32, two map grids
    assert png_outputs(executed_path) >= 8
    nb = nbformat.read(executed_path, as_version=4)
    assert all(sum("image/png" in out.get("data", {}) for out in cell.get("outputs", [])) <= 1
               for cell in nb.cells if cell.cell_type == "code"), "one figure per code cell"


def test_quick_run_without_a_checkpoint_says_so_and_trains_lesson_3s_cnn(offline):
    missing = offline / "no-such-checkpoint.keras"
    result = run({"CNN_CHECKPOINT": str(missing)}, offline, "no-checkpoint")
    text = check_executed(result)
    check_activation_maps(text)
    assert (f"Model: no checkpoint at {missing} (cifar10-classification/cifar10_cnn.ipynb makes it); "
            "training lesson 3's CNN here instead, on 500 CIFAR-10 images for 1 epoch(s)") in text
    assert result["epochs"] == 1
    assert "STAND-IN for CIFAR-10" in (result["data"] or "")
    assert "2 photos from scikit-learn" in (result["data"] or "")
    check_inside_the_cnn(text, result["executed_path"])
    assert not missing.exists()  # the CNN trained here is not saved as lesson 3's


def test_full_run_with_lesson_3s_checkpoint_needs_no_cifar10(offline, saved_cnn):
    # full mode, and CIFAR-10 is nowhere: the checkpoint and the photo are all the lesson needs
    result = run({"CNN_CHECKPOINT": str(saved_cnn)}, offline, "saved", quick=False)
    text = check_executed(result)
    check_activation_maps(text)
    assert f"Model: lesson 3's CNN, loaded from {saved_cnn}" in text
    assert "Epochs run:" not in text  # nothing was trained
    assert "CIFAR-10" not in (result["data"] or "") and "STAND-IN" not in text
    check_inside_the_cnn(text, result["executed_path"])


def test_full_run_without_checkpoint_or_cifar10_stops_with_a_clear_message(offline):
    result = run({"CNN_CHECKPOINT": str(offline / "missing.keras")}, offline, "full", quick=False)
    assert result["status"] == "failed"
    assert result["error"].startswith("DatasetNotFound")
    assert "CIFAR-10 not found" in result["error"]
    assert "STAND-IN" not in result["text"]
    assert "Model: no checkpoint at" in result["text"]  # it said why it needed CIFAR-10


def test_quick_run_never_reads_a_full_runs_checkpoint_and_full_never_a_quick_one():
    nb = nbformat.read(CONV, as_version=4)
    defaults = {}
    exec(next(c for c in nb.cells if "parameters" in c.metadata.get("tags", [])).source, {}, defaults)  # noqa: S102
    assert defaults["CNN_CHECKPOINT"] == "../cifar10-classification/cifar10_cnn.best.keras"
    assert lessons.lesson_parameters("conv-visualization", True)["CNN_CHECKPOINT"] == \
        "../cifar10-classification/" + lessons.QUICK_PARAMETERS["cifar10-cnn"]["CHECKPOINT"]
    assert "CNN_CHECKPOINT" not in lessons.lesson_parameters("conv-visualization", False)


def test_committed_notebook_is_a_lesson():
    check_committed(CONV, "conv-visualization")


def test_fallback_trains_lesson_3s_cnn_with_lesson_3s_settings():
    """Without lesson 3's checkpoint, lesson 7 trains that CNN with lesson 3's optimiser settings."""
    from lesson_checks import parameters_cell, read

    lesson_3 = {}
    exec(parameters_cell(read(REPO / runner.LESSONS["cifar10-cnn"])).source, {}, lesson_3)  # noqa: S102
    fallback = [c.source for c in read(REPO / runner.LESSONS["conv-visualization"]).cells
                if c.cell_type == "code" and "cnn.fit(" in c.source]
    assert len(fallback) == 1
    rate = re.search(r"Adam\(learning_rate=([\d.e-]+)\)", fallback[0])
    batch = re.search(r"batch_size=(\d+)", fallback[0])
    assert rate and float(rate.group(1)) == lesson_3["LEARNING_RATE"], "not lesson 3's optimiser and learning rate"
    assert batch and int(batch.group(1)) == lesson_3["BATCH_SIZE"], "not lesson 3's batch size"
