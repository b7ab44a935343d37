"""Lessons 5 and 6 (transfer learning, bottleneck features) run top to bottom.

(Lesson 7, conv visualisation, is tested in test_lessons_conv.py.)

Each notebook is executed in quick mode through `cnn_course.runner`, offline,
with empty data and Keras folders: the dog images, the VGG16 ImageNet weights
and the ImageNet class names are all missing, so the notebooks must run on
their labelled stand-ins (generated images, random weights, placeholder
names) and say so. The checks are what each lesson promises: the parameter
counts, the bottleneck-feature shapes, the cached features and checkpoint,
the ``Test accuracy`` line and the figures. In full
mode, missing data must stop the lesson with the data layer's clear message.
"""

import ast
import re
from pathlib import Path

import nbformat
import pytest

from cnn_course.runner import execute_notebook

REPO = Path(__file__).resolve().parents[1]
TRANSFER = REPO / "transfer-learning" / "transfer_learning.ipynb"
BOTTLENECK = REPO / "transfer-learning" / "bottleneck_features.ipynb"
QUICK = {"QUICK": True, "VERBOSE": 2}


@pytest.fixture(scope="module")
def offline(tmp_path_factory, keras_backend):
    """Empty data, Keras and temp folders for the notebook kernels; downloads refused.

    Yields the folder that holds them; the notebooks write their outputs under it.
    """
    home = tmp_path_factory.mktemp("lessons-5-7")
    with pytest.MonkeyPatch.context() as mp:
        for name, folder in (("CNN_COURSE_DATA", "data"), ("KERAS_HOME", "keras"), ("TMPDIR", "tmp")):
            (home / folder).mkdir()
            mp.setenv(name, str(home / folder))
        mp.setenv("CNN_COURSE_OFFLINE", "1")
        yield home


def run(notebook, parameters, home, name):
    """Execute `notebook` with `parameters`; its executed copy goes to home/<name>."""
    return execute_notebook(notebook, parameters, home / name, timeout=600)


def passed(result):
    assert result["status"] == "passed", f"{result['error']} (cell {result['failed_cell']})"
    return result["text"]


def png_outputs(executed_path):
    """Return how many image/png outputs the executed notebook holds."""
    nb = nbformat.read(executed_path, as_version=4)
    return sum("image/png" in output.get("data", {})
               for cell in nb.cells if cell.cell_type == "code"
               for output in cell.get("outputs", []))


def one_figure_per_code_cell(executed_path):
    """Return True when no code cell of the executed notebook shows more than one figure."""
    nb = nbformat.read(executed_path, as_version=4)
    return all(sum("image/png" in output.get("data", {}) for output in cell.get("outputs", [])) <= 1
               for cell in nb.cells if cell.cell_type == "code")


def shapes(pattern, text):
    """Return every tuple printed after `pattern` (a regex with one group around the tuple)."""
    return [ast.literal_eval(m) for m in re.findall(pattern, text, re.MULTILINE)]


# --------------------------------------------------------------------------
# Lesson 5: transfer learning


@pytest.fixture(scope="module")
def transfer(offline):
    """One quick run of the transfer-learning notebook, writing into the temp folder."""
    parameters = dict(QUICK,
                      CHECKPOINT=str(offline / "transfer_learning.best.keras"),
                      FEATURES_CACHE=str(offline / "dog_vgg16_features"))
    return run(TRANSFER, parameters, offline, "transfer")


def test_transfer_quick_run_passes_on_labelled_stand_ins(transfer, offline):
    text = passed(transfer)
    assert "STAND-IN" in (transfer["data"] or "")
    assert re.search(r"^Data: STAND-IN for Dog-breed images \(dogImages\): generated colour-and-stripe images",
                     text, re.MULTILINE)
    assert "Weights: STAND-IN: random weights" in text
    # the stand-in is built under the kernel's temp folder, never in the lesson folder
    assert any((offline / "tmp").glob("cnn-course-dogimages-standin-*/train"))
    assert not (TRANSFER.parent / "dogImages").exists()


def test_transfer_prints_the_promised_parameter_counts(transfer):
    text = passed(transfer)
    assert "Parameters: 14,714,688" in text  # VGG16 without its top
    assert "Parameters: 3,336,837" in text   # Flatten + Dense(133) on 7x7x512
    assert "Parameters: 68,229" in text      # GlobalAveragePooling2D + Dense(133)


def test_transfer_bottleneck_features_are_computed_and_cached(transfer, offline):
    text = passed(transfer)
    (train, valid, test), = re.findall(
        r"^Bottleneck features: train (\(.*?\)), valid (\(.*?\)), test (\(.*?\))$", text, re.MULTILINE)
    train, valid, test = map(ast.literal_eval, (train, valid, test))
    used = re.search(r"^Using (\d+) training, (\d+) validation and (\d+) test images$", text, re.MULTILINE)
    assert used, "no 'Using ... images' line"
    assert (train[0], valid[0], test[0]) == tuple(map(int, used.groups()))
    # quick mode: 64x64 images, so VGG16's five poolings leave 2x2x512
    assert train[1:] == valid[1:] == test[1:] == (2, 2, 512)
    assert text.count("Features: computed") == 3
    assert "bottleneck features:" not in text  # no tqdm bar when VERBOSE is 2
    for split in ("train", "valid", "test"):
        assert (offline / f"dog_vgg16_features.quick-{split}.npz").is_file()


def test_transfer_trains_checkpoints_and_reports_test_accuracy(transfer, offline):
    text = passed(transfer)
    assert transfer["epochs"] == 2
    printed = re.findall(r"^Test accuracy: (\d{1,3}\.\d\d)%$", text, re.MULTILINE)
    assert printed, "no 'Test accuracy: NN.NN%' line"
    assert 0.0 <= float(printed[-1]) <= 100.0
    assert transfer["test_accuracy"] == pytest.approx(float(printed[-1]))
    assert (offline / "transfer_learning.quick.keras").is_file()
    assert not (offline / "transfer_learning.best.keras").exists()  # a quick run never writes the full one
    assert png_outputs(transfer["executed_path"]) >= 3  # training images, curves, predictions


def test_transfer_full_mode_without_dog_images_stops_with_a_clear_message(offline):
    result = run(TRANSFER, {"VERBOSE": 2, "CHECKPOINT": str(offline / "full.best.keras")}, offline, "full")
    assert result["status"] == "failed"
    assert result["error"].startswith("DatasetNotFound")
    assert "dogImages" in result["error"]
    assert "dogImages.zip" in result["error"]  # the file to get and where it goes
    assert str(offline / "data") in result["error"]
    assert not (offline / "full.best.keras").exists()


# --------------------------------------------------------------------------
# Lesson 6: bottleneck features


@pytest.fixture(scope="module")
def bottleneck(offline):
    return run(BOTTLENECK, QUICK, offline, "bottleneck")


def test_bottleneck_quick_run_labels_its_stand_ins(bottleneck):
    text = passed(bottleneck)
    assert "Weights: STAND-IN: random weights" in text
    assert "ImageNet class names: STAND-IN" in text
    assert "Data: 2 photos from scikit-learn: china.jpg, flower.jpg" in text
    assert shapes(r"^Photos: (\(.*?\)) uint8$", text) == [(2, 224, 224, 3)]


def test_bottleneck_prints_counts_and_shapes(bottleneck):
    text = passed(bottleneck)
    assert "Parameters: 138,357,544" in text  # VGG16 with its top
    assert "Parameters: 14,714,688" in text   # and without
    assert shapes(r"^Predictions: (\(.*?\))$", text) == [(2, 1000)]
    assert shapes(r"^Bottleneck features: (\(.*?\))$", text) == [(2, 7, 7, 512)]
    assert shapes(r"^Pooled features: (\(.*?\))$", text) == [(2, 512)]
    assert png_outputs(bottleneck["executed_path"]) >= 3  # photos, top-1 names, feature maps


def test_bottleneck_full_mode_without_weights_stops_with_a_clear_message(offline):
    result = run(BOTTLENECK, {"VERBOSE": 2}, offline, "bottleneck-full")
    assert result["status"] == "failed"
    assert result["error"].startswith("DatasetNotFound")
    assert "vgg16_weights_tf_dim_ordering_tf_kernels.h5" in result["error"]


# --------------------------------------------------------------------------
# The committed notebooks


@pytest.mark.parametrize("notebook", [TRANSFER, BOTTLENECK], ids=lambda p: p.stem)
def test_notebook_is_committed_stripped_with_one_parameters_cell(notebook):
    nb = nbformat.read(notebook, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)
    tagged = [i for i, cell in enumerate(nb.cells) if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1
    quick = nb.cells[tagged[0] + 1]
    assert quick.source.startswith("# Quick mode: ") and "if QUICK:" in quick.source
    assert "N_EVAL" not in nb.cells[tagged[0]].source
    # the "Data:" line comes from cnn_course.data, never from the notebook itself
    assert not any(re.search(r"""print\(f?["']Data:""", cell.source) for cell in code)
