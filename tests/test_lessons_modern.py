"""The modern-CNN lesson (training-speed/modern_cnn.ipynb) runs and keeps its promises.

Quick mode through the runner, offline (on TensorFlow; on every backend with
CNN_COURSE_TEST_BACKENDS=all): the network's shapes, one line per epoch with
the test accuracy and the clock, the 85%/90% announcements (reached or said
not to be), the test-time averaging's accuracies, the figures, and a saved
model that loads. The lesson's own code (the crop-and-flip augmentation, the
whitening filters, the identity start, the fast offsets, the learning-rate
schedule, the weight averaging) is taken from the committed notebook and
checked for what its text says it does.
"""

import ast
import re
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from cnn_course import lessons, runner
from lesson_checks import check_committed, check_executed, offline_home, png_outputs

REPO = Path(__file__).resolve().parents[1]
MODERN = REPO / runner.LESSONS["modern-cnn"]


@pytest.fixture(scope="module")
def offline(tmp_path_factory, keras_backend):
    """Empty data and Keras folders for the notebook kernels (on each backend); downloads refused."""
    with offline_home(tmp_path_factory, f"modern-cnn-{keras_backend}") as home:
        yield home


@pytest.fixture(scope="module")
def quick_run(offline):
    checkpoint = offline / "modern_cnn.quick.keras"
    result = runner.run_lesson(
        "modern-cnn", {"CHECKPOINT": str(checkpoint)}, offline / "build", timeout=600, quick=True
    )
    return result, checkpoint


def test_quick_run_trains_the_network_and_reports_each_epoch(quick_run):
    result, _ = quick_run
    text = check_executed(result)
    epochs = lessons.QUICK_PARAMETERS["modern-cnn"]["EPOCHS"]
    assert "STAND-IN for CIFAR-10" in (result["data"] or "")
    assert re.search(r"^Precision: (float32|mixed_bfloat16|mixed_float16) \(", text, re.MULTILINE)
    assert re.search(r"^Parameters: 1,973,944$", text, re.MULTILINE)  # WIDTHS = (64, 256, 256)
    groups = re.findall(r"^after group (\d): (\(.*\))$", text, re.MULTILINE)
    assert [(int(g), ast.literal_eval(shape)) for g, shape in groups] == [
        (1, (None, 15, 15, 64)),
        (2, (None, 7, 7, 256)),
        (3, (None, 3, 3, 256)),
    ]
    lines = re.findall(
        r"^epoch (\d+): training accuracy ([\d.]+)%, test accuracy ([\d.]+)%, ([\d,]+) images/s, "
        r"([\d.]+) min since the start$",
        text,
        re.MULTILINE,
    )
    assert [int(e) for e, *_ in lines] == list(range(1, epochs + 1))
    assert all(0 <= float(a) <= 100 and 0 <= float(t) <= 100 for _, a, t, _, _ in lines)
    assert all(int(speed.replace(",", "")) > 0 for *_, speed, _ in lines)
    minutes = [float(m) for *_, m in lines]
    assert minutes == sorted(minutes)  # one clock, started in the imports cell
    assert result["epochs"] == epochs
    for target in (85, 90):  # each target is announced once, or said not to be reached
        reached = re.findall(
            rf"^Reached {target}% test accuracy at epoch (\d+), ([\d.]+) min after the start$", text, re.MULTILINE
        )
        missed = re.findall(rf"^{target}% test accuracy was not reached in {epochs} epochs$", text, re.MULTILINE)
        assert len(reached) + len(missed) == 1, target
        if reached:  # announced at the first epoch whose printed test accuracy passed the target
            first = next(int(e) for e, _, t, *_ in lines if float(t) >= target)
            assert int(reached[0][0]) == first
        else:
            assert all(float(t) < target for _, _, t, *_ in lines)


def test_quick_run_averages_six_views_and_saves_a_model_that_loads(quick_run):
    result, checkpoint = quick_run
    text = check_executed(result)
    one = re.findall(r"^one view: +([\d.]+)%$", text, re.MULTILINE)
    mirror = re.findall(r"^with its mirror image: +([\d.]+)%$", text, re.MULTILINE)
    averaged = re.findall(r"^Test accuracy: ([\d.]+)% \(6 views averaged\) \(STAND-IN data", text, re.MULTILINE)
    assert len(one) == len(mirror) == len(averaged) == 1
    assert result["test_accuracy"] == pytest.approx(float(averaged[0]))
    assert re.search(r"^Whole notebook so far: [\d.]+ min$", text, re.MULTILINE)
    assert png_outputs(result["executed_path"]) == 3  # the schedule, augmented images, accuracy against time
    import keras

    lesson = _notebook_definitions("Offset", "WarmupThenDecay")
    model = keras.models.load_model(checkpoint, custom_objects=lesson)
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
    epochs = lessons.QUICK_PARAMETERS["modern-cnn"]["EPOCHS"]
    assert [e["epoch"] for e in parsed["epochs"]] == list(range(1, epochs + 1))
    assert parsed["images_per_s"] > 0 and set(parsed["minutes_to"]) == {"85", "90"}


def _notebook_definitions(*names):
    """Define the named functions and classes of the committed notebook (only those) and return them."""
    nb = nbformat.read(MODERN, as_version=4)
    import keras
    from IPython.core.inputtransformer2 import TransformerManager

    namespace = {"np": np, "keras": keras}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        # IPython's own transform first: the install cell's `%pip` line is not Python.
        tree = ast.parse(TransformerManager().transform_cell(cell.source))
        defs = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in names]
        if defs:
            exec(compile(ast.Module(body=defs, type_ignores=[]), str(MODERN), "exec"), namespace)  # noqa: S102
    return {name: namespace[name] for name in names}


def test_crop_and_flip_shifts_by_at_most_two_pixels_and_mirrors_where_asked():
    crop_and_flip = _notebook_definitions("crop_and_flip")["crop_and_flip"]
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (400, 32, 32, 3), dtype=np.uint8)
    flip = rng.random(400) < 0.5
    out = crop_and_flip(images, np.random.default_rng(2), flip)
    assert out.shape == images.shape and out.dtype == np.uint8
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
    shifted = 0
    for image, pad, result, mirrored in zip(images, padded, out, flip):
        seen = result[:, ::-1] if mirrored else result
        windows = [pad[i : i + 32, j : j + 32] for i in range(5) for j in range(5)]
        assert any(np.array_equal(seen, w) for w in windows)  # a 32x32 window of the padded image
        shifted += not np.array_equal(seen, image)
    assert shifted > 300  # 24 of the 25 windows are shifted


def test_flips_alternate_so_every_image_is_seen_both_ways_in_two_epochs():
    nb = nbformat.read(MODERN, as_version=4)
    source = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")
    line = next(line for line in source.splitlines() if line.strip().startswith("flip = first_flips[order]"))
    order = np.random.default_rng(4).permutation(10)
    first_flips = np.random.default_rng(5).random(10) < 0.5
    flips = {}
    for epoch in (1, 2, 3):
        namespace = {"first_flips": first_flips, "order": order, "epoch": epoch}
        exec(line.strip(), namespace)  # noqa: S102
        flips[epoch] = namespace["flip"]
    np.testing.assert_array_equal(flips[1], first_flips[order])
    np.testing.assert_array_equal(flips[2], ~first_flips[order])
    np.testing.assert_array_equal(flips[3], flips[1])


def test_whitening_layer_decorrelates_the_patches_it_sees():
    import keras

    whitening_kernel = _notebook_definitions("whitening_kernel")["whitening_kernel"]
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


def test_learning_rate_warms_up_over_23_percent_of_the_steps_then_falls_to_7_percent():
    schedule = _notebook_definitions("WarmupThenDecay")["WarmupThenDecay"](1.3, 1000)
    values = [float(schedule(step)) for step in (0, 115, 230, 615, 1000)]
    assert values[0] == pytest.approx(0.2 * 1.3, rel=1e-4)  # starts at a fifth of the peak
    assert values[1] == pytest.approx(0.6 * 1.3, rel=1e-3)  # half way up, in a straight line
    assert values[2] == pytest.approx(1.3, rel=1e-4)  # the peak at 23% of the steps
    assert values[3] == pytest.approx(0.535 * 1.3, rel=1e-3)  # half way down
    assert values[4] == pytest.approx(0.07 * 1.3, rel=1e-4)  # 7% of the peak at the end
    assert type(schedule).from_config(schedule.get_config()).get_config() == schedule.get_config()


def test_learning_rate_stays_at_its_end_past_the_last_step():
    # a training cell run again went on past total_steps, where the straight line turned negative
    schedule = _notebook_definitions("WarmupThenDecay")["WarmupThenDecay"](1.3, 1000)
    for step in (1000, 1500, 5000):
        assert float(schedule(step)) == pytest.approx(0.07 * 1.3, rel=1e-4)


@pytest.mark.parametrize("widths, parameters", [((64, 256, 256), 1_973_944), ((64, 128, 256), 1_162_168)])
def test_widths_set_each_group_and_the_parameter_count(widths, parameters):
    # The lesson's default, and the narrower network of exercise 2 that the text times.
    lesson = _notebook_definitions("build_model", "conv_bn", "Offset")
    lesson["build_model"].__globals__["WIDTHS"] = widths
    model = lesson["build_model"]()
    assert model.count_params() == parameters
    assert [model.get_layer(f"group_{g}").output.shape for g in (1, 2, 3)] == [
        (None, 15, 15, widths[0]),
        (None, 7, 7, widths[1]),
        (None, 3, 3, widths[2]),
    ]


def test_identity_init_makes_each_3x3_convolution_copy_its_inputs():
    import keras

    identity_init = _notebook_definitions("identity_init")["identity_init"]
    inputs = keras.Input((8, 8, 3))
    widen = keras.layers.Conv2D(5, 3, padding="same", use_bias=False)(inputs)
    keep = keras.layers.Conv2D(5, 3, padding="same", use_bias=False)(widen)
    model = keras.Model(inputs, [widen, keep])
    identity_init(model)
    x = np.random.default_rng(6).normal(size=(2, 8, 8, 3)).astype("float32")
    widened, kept = (keras.ops.convert_to_numpy(t) for t in model(x))
    np.testing.assert_allclose(widened[..., :3], x, atol=1e-6)  # the first 3 of 5 outputs copy the 3 inputs
    assert np.abs(widened[..., 3:]).sum() > 0  # the other 2 keep their random start
    np.testing.assert_allclose(kept, widened, atol=1e-6)  # 5 in, 5 out: all copied


def test_offset_adds_eight_times_what_it_stores():
    import keras

    offset = _notebook_definitions("Offset")["Offset"]()
    offset.build((None, 2))
    offset.set_weights([np.array([1.0, -0.5], dtype="float32")])
    out = keras.ops.convert_to_numpy(offset(np.zeros((3, 2), dtype="float32")))
    np.testing.assert_allclose(out, [[8.0, -4.0]] * 3)  # so a step of the stored number moves the output 8x,
    # and its gradient is 8x larger too: 64 times the step a plain bias would take


def test_lookahead_averages_only_after_30_percent_and_every_5_steps():
    import keras

    lookahead = _notebook_definitions("Lookahead")["Lookahead"](total_steps=20)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    lookahead.set_model(model)
    average = None
    for step in range(1, 21):
        model.set_weights([np.array([[float(step)]])])  # what SGD would have done in this step
        lookahead.on_train_batch_end(step - 1)
        after = model.get_weights()[0].item()
        if step in (15, 20):
            keep = 0.95**5 * (step / 20) ** 3
            assert after == pytest.approx(keep * average + (1 - keep) * step, rel=1e-6), step
            average = after
        else:
            assert after == step, step  # left as SGD left it; at step 10 the average starts from it
            average = float(step) if step == 10 else average


def test_full_run_without_cifar10_stops_with_a_clear_message(offline):
    result = runner.run_lesson("modern-cnn", {}, offline / "full", timeout=600, quick=False)
    assert result["status"] == "failed"
    assert result["error"].startswith("DatasetNotFound")
    assert "CIFAR-10 not found" in result["error"]
    assert "STAND-IN" not in result["text"]


def test_committed_notebook_is_a_lesson():
    check_committed(MODERN, "modern-cnn")
