"""Lesson 7 (conv visualisation) runs top to bottom.

Through the quick-mode contract (`runner.run_lesson(..., quick=True)`),
offline, with empty data and Keras folders. The lesson loads lesson 3's
checkpoint, or, when it is missing, says so and trains that CNN itself with
lesson 3's settings, visibly; either way it looks at CIFAR-10 test images (in
quick mode the labelled stand-in's); in full mode without CIFAR-10 it stops
with the data layer's clear message. The checks are what the lesson promises:
the activation-map shapes, the model line, the trained and untrained
first-layer filters, the feature-map shapes of test images with their
predictions, occlusion heat maps of the images' shape with a mistake looked
at closely, and the figures.
"""

import ast
import re
import warnings
from pathlib import Path

import nbformat
import numpy as np
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
    cnn = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            layers.Rescaling(1 / 127.5, offset=-1),
            layers.Conv2D(16, 2, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(32, 2, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 2, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Dropout(0.3),
            layers.Flatten(),
            layers.Dense(500, activation="relu"),
            layers.Dropout(0.4),
            layers.Dense(10, activation="softmax"),
        ]
    )
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


CLASS = r"(airplane|automobile|bird|cat|deer|dog|frog|horse|ship|truck)"


def check_inside_the_cnn(text, executed_path):
    assert "Parameters: 528,054" in text
    assert re.search(r"^Right on the test images: \d{1,3}\.\d\d% of 1,000 \(STAND-IN data", text, re.MULTILINE)
    assert shapes(r"^First-layer filters: (\(.*?\))$", text) == [(2, 2, 3, 16)]
    spread = re.findall(
        r"^Standard deviation of their weights: trained (\d\.\d{3}), untrained (\d\.\d{3})$", text, re.MULTILINE
    )
    assert len(spread) == 1 and all(float(v) > 0 for v in spread[0])
    # the feature maps are of two CIFAR-10 test images, each with the CNN's prediction
    examples = re.findall(rf"^Test image (\d+): predicted {CLASS} \(\d+%\), true {CLASS}$", text, re.MULTILINE)
    assert len(examples) == 2
    (_, said_right, true_right), (_, said_wrong, true_wrong) = examples
    assert said_right == true_right and said_wrong != true_wrong  # the first right answer, the first wrong one
    maps = shapes(r"^Feature maps of \w+: (\(.*?\))$", text)
    assert maps == [(32, 32, 16), (16, 16, 32), (8, 8, 64)]
    # occlusion heat maps: one per image and class, of the image's own shape, for 6 right and 6 wrong answers
    ((heat, image, right, wrong),) = re.findall(
        r"^Occlusion maps: (\(.*?\)) per image and class, images (\(.*?\)); (\d) right and (\d) wrong answers$",
        text,
        re.MULTILINE,
    )
    assert ast.literal_eval(heat) == ast.literal_eval(image) == (32, 32)
    assert int(right) + int(wrong) == 12 and int(wrong) > 0
    # the surest mistake among them, and what covering its hottest square does to the answer
    mistake = re.search(
        rf"^Mistake: test image \d+, true class {CLASS}, answered {CLASS} \(\d+%; \w+ \d+%\)$", text, re.MULTILINE
    )
    assert mistake and mistake.group(1) != mistake.group(2)
    assert re.search(
        rf"^With the 8x8 square at row \d+, column \d+ covered: {mistake.group(2)} \d+%, "
        rf"{mistake.group(1)} \d+%, answer {CLASS}$",
        text,
        re.MULTILINE,
    )
    assert "retracing" not in text  # one occlusion batch per image: one shape, traced once
    # photo, four filters, four maps, trained and untrained filters, filter values, two test images,
    # two map grids, the dozen heat maps, the mistake's two maps
    assert png_outputs(executed_path) == 10
    nb = nbformat.read(executed_path, as_version=4)
    assert all(
        sum("image/png" in out.get("data", {}) for out in cell.get("outputs", [])) <= 1
        for cell in nb.cells
        if cell.cell_type == "code"
    ), "one figure per code cell"


def test_quick_run_without_a_checkpoint_says_so_and_trains_lesson_3s_cnn(offline):
    missing = offline / "no-such-checkpoint.keras"
    result = run({"CNN_CHECKPOINT": str(missing)}, offline, "no-checkpoint")
    text = check_executed(result)
    check_activation_maps(text)
    assert (
        f"Model: no checkpoint at {missing} (cifar10-classification/cifar10_cnn.ipynb makes it); "
        "training lesson 3's CNN here instead, with lesson 3's settings"
    ) in text
    assert "Trained on 500 images" in text  # quick N_TRAIN, after lesson 3's 5,000 validation images
    assert result["epochs"] == 1
    assert "STAND-IN for CIFAR-10" in (result["data"] or "")
    assert "2 photos from scikit-learn" in (result["data"] or "")
    check_inside_the_cnn(text, result["executed_path"])
    assert not missing.exists()  # the CNN trained here is not saved as lesson 3's


def test_quick_run_with_lesson_3s_checkpoint_loads_it_and_trains_nothing(offline, saved_cnn):
    # the checkpoint gives the model; the test images are the stand-in's (CIFAR-10 is nowhere)
    result = run({"CNN_CHECKPOINT": str(saved_cnn)}, offline, "saved")
    text = check_executed(result)
    check_activation_maps(text)
    assert f"Model: lesson 3's CNN, loaded from {saved_cnn}" in text
    assert "Epochs run:" not in text and "Trained on" not in text  # nothing was trained
    assert "STAND-IN for CIFAR-10" in (result["data"] or "")
    check_inside_the_cnn(text, result["executed_path"])


@pytest.mark.parametrize("checkpoint", ["missing", "saved"])
def test_full_run_without_cifar10_stops_with_a_clear_message(offline, saved_cnn, checkpoint):
    """The second half looks at CIFAR-10 test images, so a full run needs CIFAR-10 even with
    lesson 3's checkpoint (before the heat maps it needed none); the first half has run."""
    path = saved_cnn if checkpoint == "saved" else offline / "missing.keras"
    result = run({"CNN_CHECKPOINT": str(path)}, offline, f"full-{checkpoint}", quick=False)
    assert result["status"] == "failed"
    assert result["error"].startswith("DatasetNotFound")
    assert "CIFAR-10 not found" in result["error"]
    assert "STAND-IN" not in result["text"]
    check_activation_maps(result["text"])  # the hand-made filters need no CIFAR-10


def test_quick_run_never_reads_a_full_runs_checkpoint_and_full_never_a_quick_one():
    nb = nbformat.read(CONV, as_version=4)
    defaults = {}
    exec(next(c for c in nb.cells if "parameters" in c.metadata.get("tags", [])).source, {}, defaults)  # noqa: S102
    assert defaults["CNN_CHECKPOINT"] == "../cifar10-classification/cifar10_cnn.best.keras"
    assert (
        lessons.lesson_parameters("conv-visualization", True)["CNN_CHECKPOINT"]
        == "../cifar10-classification/" + lessons.QUICK_PARAMETERS["cifar10-cnn"]["CHECKPOINT"]
    )
    assert "CNN_CHECKPOINT" not in lessons.lesson_parameters("conv-visualization", False)


def test_committed_notebook_is_a_lesson():
    check_committed(CONV, "conv-visualization")


def test_fallback_trains_lesson_3s_cnn_with_lesson_3s_settings():
    """Without lesson 3's checkpoint, lesson 7 trains that CNN with lesson 3's settings: its
    optimiser, learning-rate schedule, batch size, epochs and training images, its validation split
    and early stopping, and its layers (the same build_model)."""
    from lesson_checks import parameters_cell, read

    lesson_3_nb, lesson_7_nb = read(REPO / runner.LESSONS["cifar10-cnn"]), read(CONV)
    lesson_3, lesson_7 = {}, {}
    exec(parameters_cell(lesson_3_nb).source, {}, lesson_3)  # noqa: S102
    exec(parameters_cell(lesson_7_nb).source, {}, lesson_7)  # noqa: S102
    assert (lesson_7["EPOCHS"], lesson_7["N_TRAIN"]) == (lesson_3["EPOCHS"], lesson_3["N_TRAIN"])
    fallback = [c.source for c in lesson_7_nb.cells if c.cell_type == "code" and "cnn.fit(" in c.source]
    assert len(fallback) == 1
    rate = re.search(r"CosineDecay\(([\d.e-]+), decay_steps=EPOCHS \* steps_per_epoch\)", fallback[0])
    assert "Adam(learning_rate=schedule)" in fallback[0], "not lesson 3's optimiser"
    assert re.search(
        r"CosineDecay\(LEARNING_RATE, decay_steps=EPOCHS \* steps_per_epoch\)",
        "\n".join(c.source for c in lesson_3_nb.cells if c.cell_type == "code"),
    ), "lesson 3's schedule changed: change lesson 7's"
    batch = re.search(r"batch_size=(\d+)", fallback[0])
    assert rate and float(rate.group(1)) == lesson_3["LEARNING_RATE"], "not lesson 3's learning-rate schedule"
    assert batch and int(batch.group(1)) == lesson_3["BATCH_SIZE"], "not lesson 3's batch size"
    lesson_3_code = "\n".join(c.source for c in lesson_3_nb.cells if c.cell_type == "code")
    assert "x_train[:5000]" in fallback[0] and "x_train[:5000]" in lesson_3_code  # the same validation images
    assert 'EarlyStopping(monitor="val_accuracy", patience=5' in fallback[0]
    assert 'EarlyStopping(monitor="val_accuracy", patience=5)' in lesson_3_code

    def layers_of(source):  # the layer calls of a build_model, whatever prefix names the layers module
        body = source[source.index("def build_model") :]
        body = body[: body.index("], name=")]
        return re.findall(r"(?:keras\.)?layers\.(\w+\(.*?\)),?\n", body)

    built_7 = layers_of(next(c.source for c in lesson_7_nb.cells if "def build_model" in c.source))
    built_3 = layers_of(next(c.source for c in lesson_3_nb.cells if "def build_model" in c.source))
    assert built_7 == built_3 and len(built_7) == 12


def test_lesson_7_names_lesson_3s_checkpoint_where_it_loads_it():
    from lesson_checks import parameters_cell, read

    nb = read(CONV)
    lesson_3 = {}
    exec(parameters_cell(read(REPO / runner.LESSONS["cifar10-cnn"])).source, {}, lesson_3)  # noqa: S102
    loading = nb.cells.index(next(c for c in nb.cells if "keras.models.load_model(CNN_CHECKPOINT)" in c.source))
    said = nb.cells[loading - 1].source
    assert f'`CNN_CHECKPOINT = "../cifar10-classification/{lesson_3["CHECKPOINT"]}"`' in said
    assert "`CHECKPOINT`" in said and "cifar10-classification/" in said


def occlusion_maps_of_the_notebook():
    """Return the committed notebook's occlusion_maps function (it prints with VERBOSE)."""
    from lesson_checks import read

    source = next(c.source for c in read(CONV).cells if c.source.startswith("def occlusion_maps"))
    namespace = {"np": np, "VERBOSE": 0}
    exec(source, namespace)  # noqa: S102 - the notebook's own code
    return namespace["occlusion_maps"]


def test_occlusion_maps_are_hot_only_where_the_answer_depends_on_the_image():
    """A model that sees only the image's top-left 8x8 corner: covering pixels it never sees
    changes nothing, so their map is 0; the corner's map is not. One map per class, of the
    image's shape. The same predict-only code on whichever backend Keras runs."""
    keras = pytest.importorskip("keras")
    from keras import layers

    corner = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            layers.Rescaling(1 / 127.5, offset=-1),
            layers.Cropping2D(((0, 24), (0, 24))),  # rows and columns 0-7 only
            layers.GlobalAveragePooling2D(),
            layers.Dense(2, activation="softmax"),
        ]
    )
    corner.layers[-1].set_weights([np.array([[4.0, -4.0]] * 3, dtype="float32"), np.zeros(2, dtype="float32")])
    images = np.full((3, 32, 32, 3), 250, dtype="uint8")  # bright: class 0 is sure; grey lowers it
    heat = occlusion_maps_of_the_notebook()(corner, images)
    assert heat.shape == (3, 32, 32, 2)
    # a pixel at row or column 15 or beyond is covered only by squares that start at 8 or later
    assert np.allclose(heat[:, 15:, :, :], 0, atol=1e-6) and np.allclose(heat[:, :, 15:, :], 0, atol=1e-6)
    assert (heat[:, :8, :8, 0] > 0.01).all()  # covering the corner lowers class 0's probability
    assert np.allclose(heat[..., 0], -heat[..., 1], atol=1e-5)  # and raises class 1's by as much
