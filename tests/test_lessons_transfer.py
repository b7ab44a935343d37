"""Lessons 5 and 6 (bottleneck features, transfer learning) run top to bottom, on every tested backend.

(Lesson 7, conv visualisation, is tested in test_lessons_conv.py.)

Each notebook is executed in quick mode through `cnn_course.runner`, offline,
with empty data and Keras folders: the dog images, the VGG16 ImageNet weights
and the ImageNet class names are all missing, so the notebooks must run on
their labelled stand-ins (generated images, random weights, placeholder
names) and say so. The checks are what each lesson promises: the parameter
counts, the bottleneck-feature shapes, the cached features and checkpoint,
the ``Test accuracy`` line, the activation-map shapes and the figures. In full
mode, missing data must stop the lesson with the data layer's clear message.
"""

import ast
import re
from pathlib import Path

import nbformat
import pytest

from cnn_course import lessons, runner
from cnn_course.runner import execute_notebook
from lesson_checks import offline_home

REPO = Path(__file__).resolve().parents[1]
TRANSFER = REPO / "transfer-learning" / "transfer_learning.ipynb"
BOTTLENECK = REPO / "transfer-learning" / "bottleneck_features.ipynb"


@pytest.fixture(scope="module")
def offline(tmp_path_factory, keras_backend):
    """Empty data, Keras and temp folders for the notebook kernels (on each backend); downloads refused.

    Yields the folder that holds them; the notebooks write their outputs under it.
    """
    with offline_home(tmp_path_factory, f"lessons-5-6-{keras_backend}", ("data", "keras", "tmp")) as home:
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


def shapes(pattern, text):
    """Return every tuple printed after `pattern` (a regex with one group around the tuple)."""
    return [ast.literal_eval(m) for m in re.findall(pattern, text, re.MULTILINE)]


# --------------------------------------------------------------------------
# Lessons 5 and 6: bottleneck features, then transfer learning. They run as
# `run --quick` runs them: the lesson's QUICK_PARAMETERS and CNN_COURSE_QUICK=1.


def quick_run(notebook, name, home, out, **overrides):
    """Run `notebook` with `lessons.lesson_parameters(name, quick=True, overrides)`."""
    parameters = lessons.lesson_parameters(name, True, overrides)
    return execute_notebook(notebook, parameters, home / out, timeout=600, quick=True)


def legacy_h5_weights(model, path):
    """Save `model`'s weights in the Keras .h5 layout that keras.applications loads."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return path


@pytest.fixture(scope="module")
def bottleneck(offline):
    return quick_run(BOTTLENECK, "bottleneck-features", offline, "bottleneck")


def test_bottleneck_quick_run_labels_its_stand_ins(bottleneck):
    text = passed(bottleneck)
    assert "Weights: STAND-IN: random weights for VGG16" in text
    # without weights with the top, the predictions are left out, and the lesson says so
    assert "Weights: VGG16 ImageNet weights with the top: not found" in text
    assert "no predictions" in text and "Predictions:" not in text
    # no dog photos here: scikit-learn's two samples, never a stand-in's stripes
    assert "Data: 2 photos from scikit-learn: china.jpg, flower.jpg" in text
    assert shapes(r"^Photos: (\(.*?\)) uint8$", text) == [(2, 224, 224, 3)]


def test_bottleneck_shows_preprocess_input_counts_and_feature_shapes(bottleneck):
    text = passed(bottleneck)
    # VGG16's preprocess_input subtracts ImageNet's mean colour: values from about -124 to 152
    assert re.search(r"^Pixels \d+ to \d+ -> preprocess_input -> \(2, 224, 224, 3\), values -1\d\d\.\d to 1\d\d\.\d$",
                     text, re.MULTILINE)
    assert "With its top: 138,357,544 parameters, output per photo (1000,)" in text
    assert re.search(r"^  fc1 +102,764,544 parameters$", text, re.MULTILINE)
    assert "Without its top: 14,714,688 parameters, output per photo (7, 7, 512)" in text
    assert "The top holds 123,642,856 of the 138,357,544 parameters (89%)" in text
    assert shapes(r"^Bottleneck features: (\(.*?\))$", text) == [(2, 7, 7, 512)]
    assert shapes(r"^Pooled features: (\(.*?\))$", text) == [(2, 512)]
    assert png_outputs(bottleneck["executed_path"]) == 2  # the photos and the feature maps


def test_bottleneck_full_mode_without_weights_stops_with_a_clear_message(offline):
    result = execute_notebook(BOTTLENECK, lessons.lesson_parameters("bottleneck-features"),
                              offline / "bottleneck-full", timeout=600)
    assert result["status"] == "failed"
    assert result["error"].startswith("DatasetNotFound")
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in result["error"]
    assert "STAND-IN" not in result["text"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras's own, when saving .h5 on NumPy 2
def test_bottleneck_decodes_predictions_with_keras_where_the_top_is_available(shared_data, tmp_path, monkeypatch):
    """MobileNetV2 0.35 with its top (random weights saved under Keras's file
    name: there are no real ones here), the real class index and the real
    weights without the top: the lesson names classes with Keras's own
    decode_predictions and shows real dog photos."""
    keras = pytest.importorskip("keras")
    folder = tmp_path / "data"
    (folder / "keras-models").mkdir(parents=True)
    for name in ("imagenet_class_index.json", "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"):
        (folder / "keras-models" / name).write_bytes((shared_data / "keras-models" / name).read_bytes())
    (tmp_path / "keras" / "datasets").mkdir(parents=True)  # found there, unpacked into the data folder
    (tmp_path / "keras" / "datasets" / "dogImages.tar.gz").symlink_to(shared_data / "dogImages-imagewoof10.tar.gz")
    keras.utils.set_random_seed(0)
    legacy_h5_weights(keras.applications.MobileNetV2(weights=None, include_top=True, alpha=0.35),
                      folder / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224.h5")
    monkeypatch.setenv("CNN_COURSE_DATA", str(folder))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    result = quick_run(BOTTLENECK, "bottleneck-features", tmp_path, "out", BACKBONE="MobileNetV2", ALPHA=0.35)
    text = passed(result)
    assert re.search(r"^Data: 2 dog photos \(real, test split of .*dogImages\): ", text, re.MULTILINE)
    assert "Weights: MobileNetV2 (alpha 0.35) ImageNet weights with the top (real, from" in text
    assert "Weights: MobileNetV2 (alpha 0.35) ImageNet weights (real, from" in text
    assert shapes(r"^Predictions: (\(.*?\))$", text) == [(2, 1000)]
    decoded = re.findall(r"^[\w .'-]+: (\w+) \d+\.\d%, (\w+) \d+\.\d%, (\w+) \d+\.\d%$", text, re.MULTILINE)
    assert len(decoded) == 2  # TOP_K=3 ImageNet class names per photo
    assert (tmp_path / "keras" / "models" / "imagenet_class_index.json").is_file()  # where Keras reads it
    assert "Without its top: 410,208 parameters, output per photo (7, 7, 1280)" in text
    assert shapes(r"^Bottleneck features: (\(.*?\))$", text) == [(2, 7, 7, 1280)]


# --------------------------------------------------------------------------
# Lesson 6: transfer learning


@pytest.fixture(scope="module")
def transfer(offline):
    """One quick run of the transfer-learning notebook (VGG16 at 64x64), then a second one."""
    checkpoint = str(offline / "transfer_learning.quick.keras")
    first = quick_run(TRANSFER, "transfer-learning", offline, "transfer", CHECKPOINT=checkpoint)
    second = quick_run(TRANSFER, "transfer-learning", offline, "transfer-again", CHECKPOINT=checkpoint)
    return first, second


def test_transfer_quick_run_passes_on_labelled_stand_ins(transfer, offline):
    text = passed(transfer[0])
    assert re.search(r"^Data: STAND-IN for Dog-breed images \(dogImages\): generated colour-and-stripe images",
                     text, re.MULTILINE)
    assert "Weights: STAND-IN: random weights for VGG16" in text
    assert "STAND-IN data or weights: this number says nothing about telling dog breeds apart." in text
    # the stand-in is built under the kernel's temp folder, never in the lesson folder
    assert any((offline / "tmp").glob("cnn-course-dogimages-standin-*/train"))
    assert not (TRANSFER.parent / "dogImages").exists()


def test_transfer_shows_the_central_step_with_its_shapes(transfer):
    text = passed(transfer[0])
    assert "Backbone: vgg16, 14,714,688 parameters, output per photo (2, 2, 512)" in text
    assert "photos (8, 64, 64, 3) uint8, values" in text
    assert re.search(r"^  -> preprocess_input -> \(8, 64, 64, 3\) float32, values -1\d\d\.\d to 1\d\d\.\d$",
                     text, re.MULTILINE)
    assert "  -> base.predict     -> (8, 2, 2, 512)" in text


def test_transfer_features_are_computed_timed_cached_then_reused(transfer, offline):
    first, second = (passed(run) for run in transfer)
    used = re.search(r"^Using (\d+) training, (\d+) validation and (\d+) test photos$", first, re.MULTILINE)
    assert used, "no 'Using ... photos' line"
    (train, valid, test), = re.findall(
        r"^Bottleneck features: train (\(.*?\)), valid (\(.*?\)), test (\(.*?\))$", first, re.MULTILINE)
    train, valid, test = map(ast.literal_eval, (train, valid, test))
    assert (train[0], valid[0], test[0]) == tuple(map(int, used.groups()))
    assert train[1:] == valid[1:] == test[1:] == (2, 2, 512)  # 64x64 through five poolings
    computed = re.findall(r"^Features: dogs-vgg16-64-(train|valid|test) \(.*?\) computed in [\d.]+ s \(([\d.]+) images/s\), "
                          r"saved to (.*)$", first, re.MULTILINE)
    assert [split for split, _, _ in computed] == ["train", "valid", "test"]
    assert all(float(rate) > 0 for _, rate, _ in computed)
    for split, _, path in computed:  # in the data folder, never in the lesson folder
        assert Path(path) == offline / "data" / "features" / f"dogs-vgg16-64-{split}.npz"
        assert Path(path).is_file()
    assert "bottleneck features:" not in first  # no progress bar when VERBOSE is 2
    # the second run loads all three and computes nothing
    assert len(re.findall(r"^Features: dogs-vgg16-64-\w+ \(.*?\) loaded from the cache ", second, re.MULTILINE)) == 3
    assert "computed in" not in second


def test_transfer_prints_the_heads_parameter_counts(transfer):
    text = passed(transfer[0])
    n_classes = int(re.search(r"^Breeds: (\d+)$", text, re.MULTILINE).group(1))
    assert f"Flatten head: {(2 * 2 * 512 + 1) * n_classes:,} parameters" in text
    assert f"Head: {(512 + 1) * n_classes:,} parameters on features (2, 2, 512) for {n_classes} breeds" in text


def test_transfer_trains_checkpoints_and_reports_test_accuracy(transfer, offline):
    result = transfer[0]
    text = passed(result)
    assert result["epochs"] == 2
    printed = re.findall(r"^Test accuracy: (\d{1,3}\.\d\d)% \(VGG16 features, (\d+) breeds; guessing: ", text,
                         re.MULTILINE)
    assert printed, "no 'Test accuracy: NN.NN% (...)' line"
    assert result["test_accuracy"] == pytest.approx(float(printed[-1][0]))
    assert (offline / "transfer_learning.quick.keras").is_file()
    right, wrong, total = map(int, re.search(r"^Right: (\d+), wrong: (\d+) of (\d+) test photos$", text,
                                             re.MULTILINE).groups())
    assert right + wrong == total
    assert png_outputs(result["executed_path"]) == 3  # training photos, curves, predictions


def test_transfer_with_vgg16_at_224_gives_7x7x512_features(offline):
    result = quick_run(TRANSFER, "transfer-learning", offline, "transfer-224", IMAGE_SIZE=224, N_IMAGES=6,
                       CHECKPOINT=str(offline / "t224.quick.keras"))
    text = passed(result)
    assert "Backbone: vgg16, 14,714,688 parameters, output per photo (7, 7, 512)" in text
    assert shapes(r"^Bottleneck features: train (\(.*?\)),", text) == [(6, 7, 7, 512)]


def test_transfer_full_mode_without_dog_images_stops_with_a_clear_message(offline):
    parameters = lessons.lesson_parameters("transfer-learning", False, {"CHECKPOINT": str(offline / "full.keras")})
    result = execute_notebook(TRANSFER, parameters, offline / "full", timeout=600)
    assert result["status"] == "failed"
    assert result["error"].startswith("DatasetNotFound")
    assert "dogImages.zip" in result["error"]  # the file to get and where it goes
    assert str(offline / "data") in result["error"]
    assert "STAND-IN" not in result["text"]
    assert not (offline / "full.keras").exists()


@pytest.mark.slow
def test_transfer_with_mobilenet_on_the_real_dogs_reaches_75_percent(shared_data, tmp_path, monkeypatch):
    """The full lesson on the shared dog photos and MobileNetV2 (alpha 0.35) weights.

    The data folder and the Keras cache are temporary ones holding links to
    the shared files, so that the unpacked photos and the feature cache go
    into the temporary data folder, never into the shared folder."""
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "keras-models").symlink_to(shared_data / "keras-models")
    (tmp_path / "keras" / "datasets").mkdir(parents=True)  # found there, unpacked into the data folder
    (tmp_path / "keras" / "datasets" / "dogImages-imagewoof10.tar.gz").symlink_to(
        shared_data / "dogImages-imagewoof10.tar.gz")
    monkeypatch.setenv("CNN_COURSE_DATA", str(folder))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    parameters = lessons.lesson_parameters("transfer-learning", False, {
        "BACKBONE": "MobileNetV2", "ALPHA": 0.35, "CHECKPOINT": str(tmp_path / "transfer.best.keras")})
    result = execute_notebook(TRANSFER, parameters, tmp_path / "out", timeout=900)
    text = passed(result)
    assert "STAND-IN" not in text
    assert re.search(r"^Data: Dog-breed images \(real, 2000 train / 500 valid / 1000 test, 10 breeds", text,
                     re.MULTILINE)
    assert "Weights: MobileNetV2 (alpha 0.35) ImageNet weights (real, from" in text
    assert shapes(r"^Bottleneck features: train (\(.*?\)),", text) == [(2000, 7, 7, 1280)]
    assert "Head: 12,810 parameters on features (7, 7, 1280) for 10 breeds" in text
    assert result["test_accuracy"] is not None and result["test_accuracy"] >= 75.0


# --------------------------------------------------------------------------
# The committed notebooks of lessons 5 and 6


@pytest.mark.parametrize("notebook", [BOTTLENECK, TRANSFER], ids=lambda p: p.stem)
def test_transfer_lessons_are_stripped_small_and_without_quick_cells(notebook):
    nb = nbformat.read(notebook, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)
    tagged = [cell for cell in nb.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1
    names = lessons.parameter_names(tagged[0].source)
    assert len(names) <= 9 and "QUICK" not in names
    assert not any("QUICK" in cell.source for cell in code)  # quick sizes come from lessons.QUICK_PARAMETERS
    assert set(lessons.QUICK_PARAMETERS[{"bottleneck_features": "bottleneck-features",
                                        "transfer_learning": "transfer-learning"}[notebook.stem]]) <= set(names)
    # the central step in plain sight, not hidden in cnn_course
    source = "\n".join(cell.source for cell in code)
    assert "preprocess_input(" in source and "include_top=False" in source and "base.predict(" in source
    assert not any(re.search(r"""print\(f?["']Data:""", cell.source) for cell in code)


@pytest.mark.parametrize("notebook", [BOTTLENECK, TRANSFER], ids=lambda p: p.stem)
def test_transfer_lessons_end_with_two_to_four_exercises(notebook):
    last = nbformat.read(notebook, as_version=4).cells[-1]
    assert last.cell_type == "markdown"
    exercises = last.source.split("## Exercises", 1)
    assert len(exercises) == 2, "the last cell has no '## Exercises' section"
    items = re.split(r"^\d\. ", exercises[1], flags=re.MULTILINE)[1:]
    assert 2 <= len(items) <= 4
    for item in items:  # a bold title, a task, and an italic hint of what to observe
        assert item.startswith("**") and re.search(r"(^|\s)\*[A-Z][^*]+\*\s*$", item), item


def test_bottleneck_comes_before_transfer_and_each_points_to_the_next():
    order = list(runner.LESSONS)
    assert order.index("bottleneck-features") + 1 == order.index("transfer-learning")
    bottleneck = nbformat.read(BOTTLENECK, as_version=4)
    transfer = nbformat.read(TRANSFER, as_version=4)
    assert bottleneck.cells[0].source.startswith("# Lesson 5: ")
    assert transfer.cells[0].source.startswith("# Lesson 6: ")
    assert "Next, lesson 6 (`transfer_learning.ipynb`)" in bottleneck.cells[-1].source
    assert "Lesson 5 " in transfer.cells[0].source
