"""The modern-CNN lesson (training-speed/modern_cnn.ipynb) runs and keeps its promises.

Quick mode through the runner, offline, on each backend (`keras_backend`):
the residual network's shapes, one line per epoch with the test accuracy and
the clock, the 85%/90% announcements (reached or said not to be), flip
averaging's two accuracies, the figures, and a saved model that loads.
The lesson's own functions (the crop-and-flip augmentation, the learning-rate
schedule) are taken from the committed notebook and checked for what its
text says they do.
"""

import ast
import re
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from cnn_course import runner
from lesson_checks import check_committed, check_executed, png_outputs

REPO = Path(__file__).resolve().parents[1]
MODERN = REPO / runner.LESSONS["modern-cnn"]


@pytest.fixture(scope="module")
def offline(tmp_path_factory, keras_backend):
    """Empty data and Keras folders for the notebook kernels (on each backend); downloads refused."""
    home = tmp_path_factory.mktemp(f"modern-cnn-{keras_backend}")
    with pytest.MonkeyPatch.context() as mp:
        for name, folder in (("CNN_COURSE_DATA", "data"), ("KERAS_HOME", "keras")):
            (home / folder).mkdir()
            mp.setenv(name, str(home / folder))
        mp.setenv("CNN_COURSE_OFFLINE", "1")
        yield home


@pytest.fixture(scope="module")
def quick_run(offline):
    checkpoint = offline / "modern_cnn.quick.keras"
    result = runner.run_lesson("modern-cnn", {"CHECKPOINT": str(checkpoint)}, offline / "build",
                               timeout=600, quick=True)
    return result, checkpoint


def test_quick_run_trains_the_residual_network_and_reports_each_epoch(quick_run):
    result, _ = quick_run
    text = check_executed(result)
    epochs = runner.QUICK_PARAMETERS["modern-cnn"]["EPOCHS"]
    assert "STAND-IN for CIFAR-10" in (result["data"] or "")
    assert re.search(r"^Precision: (float32|mixed_bfloat16|mixed_float16) \(", text, re.MULTILINE)
    assert re.search(r"^Parameters: 1,163,040$", text, re.MULTILINE)
    groups = [ast.literal_eval(m) for m in re.findall(r"^after a residual group: (\(.*\))$", text, re.MULTILINE)]
    assert groups == [(None, 15, 15, 64), (None, 7, 7, 128), (None, 3, 3, 256)]
    lines = re.findall(r"^epoch (\d+): training accuracy ([\d.]+)%, test accuracy ([\d.]+)%, ([\d,]+) images/s, "
                       r"([\d.]+) min since the start$", text, re.MULTILINE)
    assert [int(e) for e, *_ in lines] == list(range(1, epochs + 1))
    assert all(0 <= float(a) <= 100 and 0 <= float(t) <= 100 for _, a, t, _, _ in lines)
    assert all(int(speed.replace(",", "")) > 0 for *_, speed, _ in lines)
    minutes = [float(m) for *_, m in lines]
    assert minutes == sorted(minutes)  # the clock runs from the first cell
    assert result["epochs"] == epochs
    for target in (85, 90):  # each target is announced once, or said not to be reached
        reached = re.findall(rf"^Reached {target}% test accuracy at epoch (\d+), ([\d.]+) min after the start$",
                             text, re.MULTILINE)
        missed = re.findall(rf"^{target}% test accuracy was not reached in {epochs} epochs$", text, re.MULTILINE)
        assert len(reached) + len(missed) == 1, target
        if reached:  # announced at the first epoch whose printed test accuracy passed the target
            first = next(int(e) for e, _, t, *_ in lines if float(t) >= target)
            assert int(reached[0][0]) == first
        else:
            assert all(float(t) < target for _, _, t, *_ in lines)


def test_quick_run_averages_flips_and_saves_a_model_that_loads(quick_run):
    result, checkpoint = quick_run
    text = check_executed(result)
    plain = re.findall(r"^without flip averaging: ([\d.]+)%$", text, re.MULTILINE)
    averaged = re.findall(r"^Test accuracy: ([\d.]+)% \(with flip averaging\) \(STAND-IN data", text, re.MULTILINE)
    assert len(plain) == 1 and len(averaged) == 1
    assert result["test_accuracy"] == pytest.approx(float(averaged[0]))
    assert re.search(r"^Whole notebook so far: [\d.]+ min$", text, re.MULTILINE)
    assert png_outputs(result["executed_path"]) == 3  # the schedule, augmented images, accuracy against time
    import keras

    model = keras.models.load_model(checkpoint)
    assert model.name == "modern_cnn"
    assert tuple(model.input.shape) == (None, 32, 32, 3) and model.input.dtype == "uint8"
    assert tuple(model.output.shape) == (None, 10)


def test_the_training_benchmark_reads_what_the_lesson_prints(quick_run):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import train_speed
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    result, _ = quick_run
    parsed = train_speed.parse_modern(check_executed(result))
    epochs = runner.QUICK_PARAMETERS["modern-cnn"]["EPOCHS"]
    assert [e["epoch"] for e in parsed["epochs"]] == list(range(1, epochs + 1))
    assert parsed["images_per_s"] > 0 and set(parsed["minutes_to"]) == {"85", "90"}


def _notebook_functions(*names):
    """Define the named functions of the committed notebook (only their `def`s) and return them."""
    nb = nbformat.read(MODERN, as_version=4)
    import keras

    namespace = {"np": np, "keras": keras}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(cell.source)
        defs = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in names]
        if defs:
            exec(compile(ast.Module(body=defs, type_ignores=[]), str(MODERN), "exec"), namespace)  # noqa: S102
    return namespace


def test_crop_and_flip_shifts_by_at_most_two_pixels_and_mirrors_about_half():
    crop_and_flip = _notebook_functions("crop_and_flip")["crop_and_flip"]
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (400, 32, 32, 3), dtype=np.uint8)
    out = crop_and_flip(images, np.random.default_rng(2))
    assert out.shape == images.shape and out.dtype == np.uint8
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
    flipped = 0
    for image, pad, result in zip(images, padded, out):
        windows = [pad[i:i + 32, j:j + 32] for i in range(5) for j in range(5)]
        plain = any(np.array_equal(result, w) for w in windows)
        mirrored = any(np.array_equal(result[:, ::-1], w) for w in windows)
        assert plain or mirrored  # a 32x32 window of the padded image, maybe mirrored
        flipped += mirrored and not plain
    assert 150 < flipped < 250  # about half of 400
    assert not np.array_equal(out, images)


def test_whitening_layer_decorrelates_the_patches_it_sees():
    import keras

    whitening_kernel = _notebook_functions("whitening_kernel")["whitening_kernel"]
    rng = np.random.default_rng(3)
    # correlated "photos": smooth random fields, colours mixed, as bytes
    base = rng.normal(size=(300, 33, 33, 3)).cumsum(axis=1).cumsum(axis=2)[:, :32, :32]
    base = base @ np.array([[1.0, 0.8, 0.6], [0.0, 0.6, 0.5], [0.0, 0.0, 0.4]])
    images = np.clip(128 + 6 * base / base.std(), 0, 255).astype(np.uint8)
    kernel, eigenvalues = whitening_kernel(images)
    assert kernel.shape == (2, 2, 3, 24) and eigenvalues.shape == (12,)
    np.testing.assert_allclose(kernel[..., 12:], -kernel[..., :12])  # each filter and its negative
    # applied as the lesson applies it (Keras's kernel layout), every direction comes out with
    # variance about 1 (eigenvalue / (eigenvalue + eps)) and uncorrelated with the others
    conv = keras.layers.Conv2D(24, 2, use_bias=False)
    conv.build((None, 32, 32, 3))
    conv.set_weights([kernel])
    out = keras.ops.convert_to_numpy(conv(images.astype("float32") / 64 - 2))[..., :12].reshape(-1, 12)
    covariance = out.T @ out / len(out)
    expected = eigenvalues / (eigenvalues + 5e-4)
    np.testing.assert_allclose(np.diag(covariance), expected, rtol=2e-2, atol=2e-3)
    np.testing.assert_allclose(covariance - np.diag(np.diag(covariance)), 0, atol=2e-2)


def test_learning_rate_warms_up_over_one_epoch_then_decays_to_zero():
    names = _notebook_functions("learning_rate_schedule")
    names.update(total_steps=800, warmup_steps=100, LEARNING_RATE=0.4)
    schedule = names["learning_rate_schedule"]()
    values = [float(schedule(step)) for step in (0, 50, 100, 450, 800)]
    assert values[0] == pytest.approx(0.0, abs=1e-7)
    assert values[1] == pytest.approx(0.2, rel=1e-3)   # linear warm-up
    assert values[2] == pytest.approx(0.4, rel=1e-3)   # the peak after one epoch
    assert values[3] == pytest.approx(0.2, rel=1e-2)   # half way down the cosine
    assert values[4] == pytest.approx(0.0, abs=1e-6)


def test_full_run_without_cifar10_stops_with_a_clear_message(offline):
    result = runner.run_lesson("modern-cnn", {}, offline / "full", timeout=600, quick=False)
    assert result["status"] == "failed"
    assert result["error"].startswith("DatasetNotFound")
    assert "CIFAR-10 not found" in result["error"]
    assert "STAND-IN" not in result["text"]


def test_committed_notebook_is_a_lesson():
    check_committed(MODERN, "modern-cnn")
