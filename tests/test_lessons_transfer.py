"""Lessons 5 and 6 (bottleneck features, transfer learning) run top to bottom, on every tested backend.

(Lesson 7, conv visualisation, is tested in test_lessons_conv.py.)

Each notebook is executed in quick mode through `cnn_course.runner`, offline,
with empty data and Keras folders: the dog images, the backbones' ImageNet
weights and the ImageNet class names are all missing, so the notebooks must
run on their labelled stand-ins (generated images, random weights,
placeholder names) and say so. The checks are what each lesson promises: the
parameter counts, the bottleneck-feature shapes, the cached features and
checkpoint, the ``Test accuracy`` line, the fine-tuning's line beside it, the
activation-map shapes and the figures, with the default MobileNetV2 (alpha
0.35) and with VGG16, one parameter away. In full mode, missing data must
stop the lesson with the data layer's clear message.
"""

import ast
import math
import re
from pathlib import Path

import nbformat
import pytest

from cnn_course import lessons, runner
from cnn_course.runner import execute_notebook
from lesson_checks import check_committed, offline_home

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
    return sum(
        "image/png" in output.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


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
    assert "Weights: STAND-IN: random weights for MobileNetV2 (alpha 0.35)" in text
    # without weights with the top, the predictions are left out, and the lesson says so
    assert "Weights: MobileNetV2 (alpha 0.35) ImageNet weights with the top: not found" in text
    assert "no predictions" in text and "Predictions:" not in text
    # no dog photos here: scikit-learn's two samples, never a stand-in's stripes
    assert "Data: 2 photos from scikit-learn: china.jpg, flower.jpg" in text
    assert shapes(r"^Photos: (\(.*?\)) uint8$", text) == [(2, 224, 224, 3)]


def test_bottleneck_shows_preprocess_input_counts_and_feature_shapes(bottleneck):
    """The default backbone, MobileNetV2 at alpha 0.35: Keras's own counts."""
    text = passed(bottleneck)
    # MobileNetV2's preprocess_input scales the pixels to [-1, 1]
    assert re.search(
        r"^Pixels \d+ to \d+ -> preprocess_input -> \(2, 224, 224, 3\), values -(1\.0|0\.\d) to (1\.0|0\.\d)$",
        text,
        re.MULTILINE,
    )
    assert "With its top: 1,691,208 parameters, output per photo (1000,)" in text
    assert re.search(r"^  predictions +1,281,000 parameters$", text, re.MULTILINE)
    assert "Without its top: 410,208 parameters, output per photo (7, 7, 1280)" in text
    assert "The top holds 1,281,000 of the 1,691,208 parameters (76%)" in text
    assert shapes(r"^Bottleneck features: (\(.*?\))$", text) == [(2, 7, 7, 1280)]
    assert shapes(r"^Pooled features: (\(.*?\))$", text) == [(2, 1280)]
    assert png_outputs(bottleneck["executed_path"]) == 2  # the photos and the feature maps


def test_bottleneck_with_vgg16_one_parameter_away(offline):
    """VGG16, the original course's backbone, with BACKBONE="VGG16" alone."""
    text = passed(quick_run(BOTTLENECK, "bottleneck-features", offline, "bottleneck-vgg16", BACKBONE="VGG16"))
    assert "Weights: STAND-IN: random weights for VGG16" in text
    # VGG16's preprocess_input subtracts ImageNet's mean colour: values from about -124 to 152
    assert re.search(
        r"^Pixels \d+ to \d+ -> preprocess_input -> \(2, 224, 224, 3\), values -1\d\d\.\d to 1\d\d\.\d$",
        text,
        re.MULTILINE,
    )
    assert "With its top: 138,357,544 parameters, output per photo (1000,)" in text
    assert re.search(r"^  fc1 +102,764,544 parameters$", text, re.MULTILINE)
    assert "Without its top: 14,714,688 parameters, output per photo (7, 7, 512)" in text
    assert "The top holds 123,642,856 of the 138,357,544 parameters (89%)" in text
    assert shapes(r"^Bottleneck features: (\(.*?\))$", text) == [(2, 7, 7, 512)]
    assert shapes(r"^Pooled features: (\(.*?\))$", text) == [(2, 512)]


def test_bottleneck_full_mode_without_weights_stops_with_a_clear_message(offline):
    result = execute_notebook(
        BOTTLENECK, lessons.lesson_parameters("bottleneck-features"), offline / "bottleneck-full", timeout=600
    )
    assert result["status"] == "failed"
    assert result["error"].startswith("DatasetNotFound")
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5" in result["error"]
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
    legacy_h5_weights(
        keras.applications.MobileNetV2(weights=None, include_top=True, alpha=0.35),
        folder / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224.h5",
    )
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

MOBILENET_035 = "Backbone: mobilenetv2_0.35_224, 410,208 parameters, output per photo (7, 7, 1280)"
# MobileNetV2 (alpha 0.35): the trainable weights of its last block (block_16 and Conv_1, the
# batch-normalisation scales and offsets included), which fine-tuning unfreezes
MOBILENET_035_LAST_BLOCK = 206_960
FINE_TUNED = re.compile(
    r"^Fine-tuned: test accuracy (\d{1,3}\.\d\d)%, frozen head (\d{1,3}\.\d\d)%, "
    r"change ([+-]\d{1,3}\.\d\d) points$",
    re.MULTILINE,
)


@pytest.fixture(scope="module")
def transfer(offline):
    """One quick run of the transfer-learning notebook (MobileNetV2 0.35 at 224x224), then a second one."""
    checkpoint = str(offline / "transfer_learning.quick.keras")
    first = quick_run(TRANSFER, "transfer-learning", offline, "transfer", CHECKPOINT=checkpoint)
    second = quick_run(TRANSFER, "transfer-learning", offline, "transfer-again", CHECKPOINT=checkpoint)
    return first, second


def test_transfer_quick_run_passes_on_labelled_stand_ins(transfer, offline):
    text = passed(transfer[0])
    assert re.search(
        r"^Data: STAND-IN for Dog-breed images \(dogImages\): generated colour-and-stripe images", text, re.MULTILINE
    )
    assert "Weights: STAND-IN: random weights for MobileNetV2 (alpha 0.35)" in text
    # the course's stand-in note after the result (data.standin_note), and a line of its own for stand-in weights
    assert re.search(
        r"^Test accuracy: \d{1,3}\.\d\d% \(MobileNetV2 features, \d+ breeds; guessing: \d+\.\d\d%\)"
        r" \(STAND-IN data: this number says nothing about Dog-breed images \(dogImages\)\)$",
        text,
        re.MULTILINE,
    )
    assert "STAND-IN weights: this number says nothing about telling dog breeds apart." in text
    # the stand-in is built under the kernel's temp folder, never in the lesson folder
    assert any((offline / "tmp").glob("cnn-course-dogimages-standin-*/train"))
    assert not (TRANSFER.parent / "dogImages").exists()


def test_transfer_shows_the_central_step_with_its_shapes(transfer):
    text = passed(transfer[0])
    assert MOBILENET_035 in text
    assert "photos (8, 224, 224, 3) uint8, values" in text
    # MobileNetV2's preprocess_input scales the pixels to [-1, 1]
    assert re.search(
        r"^  -> preprocess_input -> \(8, 224, 224, 3\) float32, values -(1\.0|0\.\d) to (1\.0|0\.\d)$",
        text,
        re.MULTILINE,
    )
    assert "  -> base.predict     -> (8, 7, 7, 1280)" in text


def test_transfer_features_are_computed_timed_cached_then_reused(transfer, offline):
    first, second = (passed(run) for run in transfer)
    used = re.search(r"^Using (\d+) training, (\d+) validation and (\d+) test photos$", first, re.MULTILINE)
    assert used, "no 'Using ... photos' line"
    ((train, valid, test),) = re.findall(
        r"^Bottleneck features: train (\(.*?\)), valid (\(.*?\)), test (\(.*?\))$", first, re.MULTILINE
    )
    train, valid, test = map(ast.literal_eval, (train, valid, test))
    assert (train[0], valid[0], test[0]) == tuple(map(int, used.groups()))
    assert train[1:] == valid[1:] == test[1:] == (7, 7, 1280)  # 224x224 halved five times
    name = "dogs-mobilenetv2_0.35_224-224"
    computed = re.findall(
        rf"^Features: {name}-(train|valid|test) \(.*?\) computed in [\d.]+ s \(([\d.]+) images/s\), "
        r"saved to (.*)$",
        first,
        re.MULTILINE,
    )
    assert [split for split, _, _ in computed] == ["train", "valid", "test"]
    assert all(float(rate) > 0 for _, rate, _ in computed)
    for split, _, path in computed:  # in the data folder, never in the lesson folder
        assert Path(path) == offline / "data" / "features" / f"{name}-{split}.npz"
        assert Path(path).is_file()
    assert "bottleneck features:" not in first  # no progress bar when VERBOSE is 2
    # the second run loads all three and computes nothing
    assert len(re.findall(rf"^Features: {name}-\w+ \(.*?\) loaded from the cache ", second, re.MULTILINE)) == 3
    assert "computed in" not in second


def test_transfer_prints_the_heads_parameter_counts(transfer):
    text = passed(transfer[0])
    n_classes = int(re.search(r"^Breeds: (\d+)$", text, re.MULTILINE).group(1))
    assert f"Flatten head: {(7 * 7 * 1280 + 1) * n_classes:,} parameters" in text
    assert f"Head: {(1280 + 1) * n_classes:,} parameters on features (7, 7, 1280) for {n_classes} breeds" in text


def test_transfer_trains_checkpoints_and_reports_test_accuracy(transfer, offline):
    result = transfer[0]
    text = passed(result)
    assert result["epochs"] == 2  # the head's; fine-tuning prints its own count
    printed = re.findall(
        r"^Test accuracy: (\d{1,3}\.\d\d)% \(MobileNetV2 features, (\d+) breeds; guessing: ", text, re.MULTILINE
    )
    assert printed, "no 'Test accuracy: NN.NN% (...)' line"
    assert result["test_accuracy"] == pytest.approx(float(printed[-1][0]))
    assert (offline / "transfer_learning.quick.keras").is_file()
    right, wrong, total = map(
        int, re.search(r"^Right: (\d+), wrong: (\d+) of (\d+) test photos$", text, re.MULTILINE).groups()
    )
    assert right + wrong == total
    # training photos, curves, predictions, their class activation maps, the surest mistake's two maps,
    # the map of the features, the most confused breeds' photos
    assert png_outputs(result["executed_path"]) == 7


@pytest.mark.parametrize("run", [0, 1], ids=["first", "again"])
def test_transfer_shows_where_the_head_looks_the_breeds_as_a_map_and_the_confused_pairs(transfer, run):
    """Class activation maps of the photos' own size, computed from the features and the head's
    weights (their scores give the head's predictions), the surest mistake looked at closely,
    a 2-D embedding with one point per test photo, and the most confused breed pairs counted
    from the test predictions, on the features computed (first run) or loaded (second)."""
    text = passed(transfer[run])
    n_test = int(re.search(r"^Using \d+ training, \d+ validation and (\d+) test photos$", text, re.MULTILINE).group(1))
    agree, total = map(
        int,
        re.search(
            r"^The maps' breed scores give the head's prediction for (\d+) of (\d+) "
            r"test photos$",
            text,
            re.MULTILINE,
        ).groups(),
    )
    assert agree == total == n_test  # the maps' means plus the bias are the head's own scores
    ((heat, photo),) = re.findall(r"^Class activation maps: (\(.*?\)) per photo, photos (\(.*?\))$", text, re.MULTILINE)
    assert ast.literal_eval(heat) == ast.literal_eval(photo) == (224, 224)
    wrong = int(re.search(r"^Right: \d+, wrong: (\d+) of", text, re.MULTILINE).group(1))
    mistake = re.search(
        r"^Mistake: test photo \d+, true breed (.+), answered (.+) \(\d+%; .+ \d+%\)$", text, re.MULTILINE
    )
    if wrong:
        assert mistake and mistake.group(1) != mistake.group(2)
        assert re.search(
            rf"^With the 64x64 square at row \d+, column \d+ covered: {re.escape(mistake.group(2))} "
            rf"\d+%, {re.escape(mistake.group(1))} \d+%, answer .+$",
            text,
            re.MULTILINE,
        )
    embedded = re.search(
        r"^Embedding: (\d+) test photos, 1280 features each -> 2 coordinates, \d+% of the "
        r"features' variance$",
        text,
        re.MULTILINE,
    )
    assert embedded and int(embedded.group(1)) == n_test  # one point per photo
    pairs = re.findall(
        r"^Confused: (.+) and (.+), (\d+) test photos \((\d+) .+ called .+, (\d+) the other way\)$", text, re.MULTILINE
    )
    assert 1 <= len(pairs) <= 3 if wrong else pairs == []
    counts = [int(count) for _, _, count, _, _ in pairs]
    assert counts == sorted(counts, reverse=True) and sum(counts) <= wrong
    assert all(int(count) == int(one) + int(other) > 0 for _, _, count, one, other in pairs)


@pytest.mark.parametrize("run", [0, 1], ids=["first", "again"])
def test_transfer_fine_tunes_the_last_block_and_prints_both_accuracies(transfer, run):
    """Quick mode fine-tunes for one epoch: the photos in memory, only the last block and
    the head trainable, and one line with both test accuracies and the change, which is
    their difference. The second run (cached features) fine-tunes again."""
    text = passed(transfer[run])
    used = tuple(
        map(
            int,
            re.search(r"^Using (\d+) training, (\d+) validation and (\d+) test photos$", text, re.MULTILINE).groups(),
        )
    )
    in_memory = re.search(
        r"^Photos in memory: train (\(.*?\)), valid (\(.*?\)), test (\(.*?\)), [\d,]+ MB$", text, re.MULTILINE
    )
    assert in_memory, "no 'Photos in memory' line"
    assert [ast.literal_eval(shape) for shape in in_memory.groups()] == [(n, 224, 224, 3) for n in used]
    n_classes = int(re.search(r"^Breeds: (\d+)$", text, re.MULTILINE).group(1))
    tuned, total = re.search(
        r"^Fine-tuning ([\d,]+) of the ([\d,]+) parameters: the last block and the head$", text, re.MULTILINE
    ).groups()
    assert int(tuned.replace(",", "")) == MOBILENET_035_LAST_BLOCK + (1280 + 1) * n_classes
    assert int(total.replace(",", "")) == 410_208 + (1280 + 1) * n_classes
    assert "Fine-tuning epochs run: 1" in text
    ((fine, frozen, change),) = FINE_TUNED.findall(text)
    fine, frozen, change = float(fine), float(frozen), float(change)
    assert all(math.isfinite(v) for v in (fine, frozen, change))
    assert 0 <= fine <= 100 and change == pytest.approx(fine - frozen, abs=0.011)
    # the frozen head's figure is the one printed by the head's test cell, and the runner's
    assert frozen == pytest.approx(float(re.search(r"^Test accuracy: (\d{1,3}\.\d\d)%", text, re.MULTILINE).group(1)))
    assert transfer[run]["test_accuracy"] == pytest.approx(frozen)


def test_transfer_with_vgg16_one_parameter_away_gives_7x7x512_features_and_fine_tunes_block5(offline):
    result = quick_run(
        TRANSFER,
        "transfer-learning",
        offline,
        "transfer-vgg16",
        BACKBONE="VGG16",
        N_IMAGES=6,
        CHECKPOINT=str(offline / "vgg16.quick.keras"),
    )
    text = passed(result)
    assert "Weights: STAND-IN: random weights for VGG16" in text
    assert "Backbone: vgg16, 14,714,688 parameters, output per photo (7, 7, 512)" in text
    # VGG16's preprocess_input subtracts ImageNet's mean colour: values from about -124 to 152
    assert re.search(
        r"^  -> preprocess_input -> \(6, 224, 224, 3\) float32, values -1\d\d\.\d to 1\d\d\.\d$", text, re.MULTILINE
    )  # 6 photos: N_IMAGES
    assert shapes(r"^Bottleneck features: train (\(.*?\)),", text) == [(6, 7, 7, 512)]
    n_classes = int(re.search(r"^Breeds: (\d+)$", text, re.MULTILINE).group(1))
    block5 = 3 * (3 * 3 * 512 * 512 + 512)  # three 3x3 convolutions of 512 channels
    assert (
        f"Fine-tuning {block5 + (512 + 1) * n_classes:,} of the {14_714_688 + (512 + 1) * n_classes:,} "
        "parameters: the last block and the head"
    ) in text
    assert len(FINE_TUNED.findall(text)) == 1


def test_transfer_fine_tune_epochs_0_skips_the_fine_tuning(offline):
    result = quick_run(
        TRANSFER,
        "transfer-learning",
        offline,
        "transfer-no-fine-tuning",
        N_IMAGES=6,
        FINE_TUNE_EPOCHS=0,
        CHECKPOINT=str(offline / "no-fine-tuning.quick.keras"),
    )
    text = passed(result)
    assert "Fine-tuning skipped: FINE_TUNE_EPOCHS is 0" in text
    assert "Photos in memory" not in text and not FINE_TUNED.search(text)
    assert result["test_accuracy"] is not None


@pytest.mark.filterwarnings("ignore::UserWarning")  # Keras's, for the base's input sizes without weights
def test_transfer_last_block_names_a_layer_of_every_backbone():
    """LAST_BLOCK, read from the committed notebook, names a layer of each backbone it lists,
    so fine-tuning any of them finds where its last block starts."""
    keras = pytest.importorskip("keras")
    from IPython.core.inputtransformer2 import TransformerManager  # the install cell's %pip is not Python

    source = "\n".join(
        TransformerManager().transform_cell(c.source)
        for c in nbformat.read(TRANSFER, as_version=4).cells
        if c.cell_type == "code"
    )
    assignment = next(
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "LAST_BLOCK"
    )
    last_block = ast.literal_eval(assignment.value)
    assert set(last_block) == {"VGG16", "ResNet50", "MobileNetV2"}
    for backbone, first in last_block.items():
        base = getattr(keras.applications, backbone)(weights=None, include_top=False, input_shape=(64, 64, 3))
        names = [layer.name for layer in base.layers]
        assert first in names, (backbone, first)
        # the first layer of the last numbered block: "block5", "conv5_block3", "block_16"
        block = re.match(r".*?block_?\d+", first).group(0)
        start = names.index(first)
        assert not names[start - 1].startswith(block), (backbone, names[start - 1])
        later_blocks = {re.match(r".*?block_?\d+", name).group(0) for name in names[start:] if "block" in name}
        assert later_blocks == {block}, (backbone, later_blocks)


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
    """The full lesson, its defaults (MobileNetV2 at alpha 0.35), on the shared dog photos and
    weights, with one epoch of fine-tuning to keep it short.

    The data folder and the Keras cache are temporary ones holding links to
    the shared files, so that the unpacked photos and the feature cache go
    into the temporary data folder, never into the shared folder."""
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "keras-models").symlink_to(shared_data / "keras-models")
    (tmp_path / "keras" / "datasets").mkdir(parents=True)  # found there, unpacked into the data folder
    (tmp_path / "keras" / "datasets" / "dogImages-imagewoof10.tar.gz").symlink_to(
        shared_data / "dogImages-imagewoof10.tar.gz"
    )
    monkeypatch.setenv("CNN_COURSE_DATA", str(folder))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    parameters = lessons.lesson_parameters(
        "transfer-learning", False, {"FINE_TUNE_EPOCHS": 1, "CHECKPOINT": str(tmp_path / "transfer.best.keras")}
    )
    result = execute_notebook(TRANSFER, parameters, tmp_path / "out", timeout=900)
    text = passed(result)
    assert "STAND-IN" not in text
    assert re.search(
        r"^Data: Dog-breed images \(real, 2000 train / 500 valid / 1000 test, 10 breeds", text, re.MULTILINE
    )
    assert "Weights: MobileNetV2 (alpha 0.35) ImageNet weights (real, from" in text
    assert shapes(r"^Bottleneck features: train (\(.*?\)),", text) == [(2000, 7, 7, 1280)]
    assert "Head: 12,810 parameters on features (7, 7, 1280) for 10 breeds" in text
    assert result["test_accuracy"] is not None and result["test_accuracy"] >= 75.0
    ((fine, frozen, _),) = FINE_TUNED.findall(text)
    assert float(frozen) == pytest.approx(result["test_accuracy"]) and math.isfinite(float(fine))


# --------------------------------------------------------------------------
# The committed notebooks of lessons 5 and 6


@pytest.mark.parametrize(
    "notebook,lesson",
    [(BOTTLENECK, "bottleneck-features"), (TRANSFER, "transfer-learning")],
    ids=["bottleneck_features", "transfer_learning"],
)
def test_transfer_lessons_meet_the_committed_notebook_rules(notebook, lesson):
    """What README.md promises of every lesson (lesson_checks.check_committed: stripped, at
    most 8 knobs, quick sizes among them, imports in one cell, an exercises section at the
    end), and the central step in plain sight, not hidden in cnn_course."""
    nb = check_committed(notebook, lesson)
    source = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")
    assert "preprocess_input(" in source and "include_top=False" in source and "base.predict(" in source


@pytest.mark.parametrize("notebook", [BOTTLENECK, TRANSFER], ids=lambda p: p.stem)
def test_transfer_lessons_default_to_mobilenet_with_vgg16_one_parameter_away(notebook):
    """MobileNetV2 at alpha 0.35 by default; VGG16's download sizes and measured speed beside it."""
    nb = nbformat.read(notebook, as_version=4)
    tagged = next(cell for cell in nb.cells if "parameters" in cell.metadata.get("tags", []))
    defaults = {}
    exec(tagged.source, {}, defaults)  # noqa: S102 - the notebook's own literals
    assert (defaults["BACKBONE"], defaults["ALPHA"]) == ("MobileNetV2", 0.35)
    assert '"VGG16"' in tagged.source
    above = nb.cells[nb.cells.index(tagged) - 1].source
    assert "528 MB" in above and "58 MB" in above
    # the speed as benchmarks/README.md records it, and where: no run of the lesson prints
    # those images per CPU-second, so the prose gives their ratio, without the table's digits
    assert "about a twentieth as many images per CPU-second" in " ".join(above.split())
    assert "benchmarks/README.md" in above and "79.6" not in above
    table = (REPO / "benchmarks" / "README.md").read_text()
    mobilenet = re.search(r"^\| MobileNetV2 \(alpha 0\.35\) \|.*\| ([\d.]+) / [\d.]+ \|$", table, re.MULTILINE)
    vgg16 = re.search(r"^\| VGG16 \|.*\| ([\d.]+) / [\d.]+ \|$", table, re.MULTILINE)
    assert round(float(mobilenet.group(1)) / float(vgg16.group(1))) == 20


def test_bottleneck_comes_before_transfer_and_each_points_to_the_next():
    order = list(runner.LESSONS)
    assert order.index("bottleneck-features") + 1 == order.index("transfer-learning")
    bottleneck = nbformat.read(BOTTLENECK, as_version=4)
    transfer = nbformat.read(TRANSFER, as_version=4)
    assert bottleneck.cells[0].source.startswith("# Lesson 5: ")
    assert transfer.cells[0].source.startswith("# Lesson 6: ")
    assert "Next, lesson 6 (`transfer_learning.ipynb`)" in bottleneck.cells[-2].source
    assert "Lesson 5 " in transfer.cells[0].source
