"""cnn_course.shapes: the formulas, their parsers, and Keras's own answers;
cnn_course.keras_check: building the layers safely and comparing.

The property tests build Keras layers without running them: Keras's
compute_output_shape and count_params are the reference.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cnn_course import keras_check, shapes

keras = pytest.importorskip("keras")

REPO = Path(__file__).resolve().parents[1]
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])

# sizes: square (an int) or rectangular (height, width)
sizes = st.one_of(st.integers(1, 6), st.tuples(st.integers(1, 6), st.integers(1, 6)))
# sizes that may be zero or negative, which both Keras and shapes must refuse
any_sizes = st.one_of(st.integers(-2, 5), st.tuples(st.integers(-2, 5), st.integers(-2, 5)))
sides = st.integers(1, 24)
paddings = st.sampled_from(shapes.PADDINGS)


def keras_shape_or_none(make_layer, input_shape):
    """Return Keras's output shape, or None if Keras refuses the layer."""
    try:
        return make_layer().compute_output_shape((None, *input_shape))
    except (ValueError, ZeroDivisionError, OverflowError):
        return None


# ---- against Keras -------------------------------------------------------------


def assert_keras_refuses_too(err, layer, shape):
    """A window that shapes refuses must not fit Keras either: an error or an empty output."""
    event("shapes refuses: window larger than the input")
    assert "does not fit" in str(err)
    theirs = keras_shape_or_none(lambda: layer, shape)
    assert theirs is None or min(theirs[1:3]) <= 0


@settings(max_examples=500, **SETTINGS)
@given(h=sides, w=sides, d=st.integers(1, 8), filters=st.integers(1, 16), kernel=sizes, strides=sizes, padding=paddings)
def test_conv_shape_and_params_match_keras(h, w, d, filters, kernel, strides, padding):
    layer = keras.layers.Conv2D(filters, kernel, strides=strides, padding=padding)
    try:
        ours = shapes.conv_output_shape((h, w, d), kernel, strides, padding, filters)
    except ValueError as err:
        assert_keras_refuses_too(err, layer, (h, w, d))
        return
    assert layer.compute_output_shape((None, h, w, d)) == (None, *ours)
    layer.build((None, h, w, d))
    assert layer.count_params() == shapes.conv_params(kernel, d, filters)


@settings(max_examples=300, **SETTINGS)
@given(
    h=sides,
    w=sides,
    d=st.integers(1, 8),
    pool=sizes,
    strides=st.one_of(st.none(), sizes),
    padding=paddings,
    average=st.booleans(),
)
def test_pool_shape_matches_keras(h, w, d, pool, strides, padding, average):
    kind = keras.layers.AveragePooling2D if average else keras.layers.MaxPooling2D
    layer = kind(pool_size=pool, strides=strides, padding=padding)
    try:
        ours = shapes.pool_output_shape((h, w, d), pool, strides, padding)
    except ValueError as err:
        assert_keras_refuses_too(err, layer, (h, w, d))
        return
    assert layer.compute_output_shape((None, h, w, d)) == (None, *ours)
    layer.build((None, h, w, d))
    assert layer.count_params() == 0


@settings(max_examples=150, **SETTINGS)
@given(h=sides, w=sides, kernel=any_sizes, strides=any_sizes, padding=paddings)
def test_what_shapes_refuses_keras_cannot_build(h, w, kernel, strides, padding):
    def make():
        return keras.layers.Conv2D(4, kernel, strides=strides, padding=padding)

    theirs = keras_shape_or_none(make, (h, w, 3))
    try:
        ours = shapes.conv_output_shape((h, w, 3), kernel, strides, padding, 4)
    except ValueError:
        event("shapes refuses")
        assert theirs is None or min(theirs[1:3]) <= 0
    else:
        assert theirs == (None, *ours)


def test_cifar10_stack_matches_keras_layer_by_layer():
    layers = shapes.parse_stack(shapes.CIFAR10_STACK)
    rows = shapes.trace_stack((32, 32, 3), layers)
    model = keras_check.keras_stack((32, 32, 3), layers)
    assert keras_check.keras_mismatches(rows, model) == []
    assert model.count_params() == 528_054
    rows[0]["params"] += 1
    rows[1]["shape"] = (15, 16, 16)
    problems = keras_check.keras_mismatches(rows, model)
    assert len(problems) == 2 and problems[0].startswith("layer 1 (conv:16:2:same:relu)")


def test_keras_stack_refuses_an_unknown_activation():
    with pytest.raises(ValueError, match="activation 'relux': Keras has no activation"):
        keras_check.keras_stack((8, 8, 1), shapes.parse_stack("conv:4:2:relux"))


@pytest.mark.parametrize(
    "activation, message",
    [
        ("glu", r"--activation glu: changes the shape of what it is given \(\(1, 2, 2, 4\) becomes \(1, 2, 2, 2\)\)"),
        ("threshold", "--activation threshold: Keras cannot apply it by name alone"),
        ("relux", "--activation relux: Keras has no activation of that name"),
    ],
)
def test_activations_that_change_the_shape_or_cannot_run_are_refused(activation, message):
    # Keras's shape inference for Conv2D ignores the activation: it would "agree"
    # that glu keeps 16 channels while the layer really gives 8 (or crashes).
    if activation != "relux" and not hasattr(keras.activations, activation):  # Keras 3.3 (make lowest) has neither
        pytest.skip(f"Keras {keras.__version__} has no {activation} activation: nothing to refuse but an unknown name")
    with pytest.raises(ValueError, match=message):
        keras_check.check_activation(keras, activation, f"--activation {activation}")


@pytest.mark.parametrize("activation", [None, "relu", "softmax", "leaky_relu", "linear"])
def test_activations_that_keep_the_shape_pass(activation):
    assert keras_check.check_activation(keras, activation, "--activation") is None


def test_glu_is_refused_without_keras_too():
    with pytest.raises(ValueError, match="--activation glu: GLU halves the channels"):
        shapes.parse_activation("glu")
    with pytest.raises(ValueError, match=r"layer 1 \('conv:4:2:glu'\): activation glu: GLU halves"):
        shapes.parse_stack("conv:4:2:glu")


# ---- memory ----------------------------------------------------------------------


def test_check_fits_says_the_estimate_and_the_limit():
    assert keras_check.check_fits(1000, limit=13_000) == 13_000
    with pytest.raises(ValueError) as err:
        keras_check.check_fits(10**9, "the layer", limit=2**30)
    assert str(err.value) == (
        "the layer has 1,000,000,000 parameters: building it with Keras needs about 12.1 GiB of memory "
        "(13 bytes a parameter), over the limit of 1.0 GiB (80% of the memory available now); "
        "--no-keras still prints the working"
    )
    with pytest.raises(ValueError, match="about 13.0 TiB"):
        keras_check.check_fits(2**40)  # the machine's own limit


def test_available_memory_is_read():
    available = keras_check.available_memory()
    assert isinstance(available, int) and 2**20 < available < 2**50


def test_the_estimate_covers_what_keras_takes_to_build():
    """The estimate (13 bytes a parameter) is at least what building takes:
    one Conv2D of 25 million parameters, its peak memory measured in a fresh process."""
    code = (
        "import resource, keras\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "keras.Sequential([keras.Input((64, 64, 100)), keras.layers.Conv2D(1000, 16)])\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    params = shapes.conv_params(16, 100, 1000)
    assert int(result.stdout.split()[-1]) <= params * keras_check.BYTES_PER_PARAMETER


def test_a_build_that_runs_out_of_memory_is_one_line():
    def oom():
        raise MemoryError()

    with pytest.raises(ValueError, match="^the stack: Keras ran out of memory building it"):
        keras_check.build(oom, "the stack")
    with pytest.raises(KeyError):  # anything else is not hidden
        keras_check.build(lambda: {}["x"])


# ---- the formulas --------------------------------------------------------------


def test_the_lessons_layers():
    assert shapes.conv_output_shape((200, 200, 1), 2, 2, "valid", 16) == (100, 100, 16)
    assert shapes.conv_params(2, 1, 16) == 80
    assert shapes.pool_output_shape((100, 100, 15), 2) == (50, 50, 15)


def test_rectangular_kernels_and_strides():
    assert shapes.conv_output_shape((28, 27, 3), (3, 5), (2, 1), "valid", 8) == (13, 23, 8)
    assert shapes.conv_output_shape((28, 27, 3), (3, 5), (2, 1), "same", 8) == (14, 27, 8)
    assert shapes.conv_params((3, 5), 3, 8) == 8 * 3 * 5 * 3 + 8
    assert shapes.pool_output_shape((10, 10, 1), (3, 2)) == (3, 5, 1)  # strides = pool size
    assert shapes.dense_params(1024, 500) == 512_500


def test_conv_without_filters_keeps_the_depth():
    assert shapes.conv_output_shape((9, 9, 7), 3) == (7, 7, 7)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: shapes.conv_output_shape((3, 3, 1), 5), "kernel_size 5x5 does not fit the 3x3"),
        (lambda: shapes.conv_output_shape((9, 3, 1), (2, 4)), "width 4 > 3"),
        (lambda: shapes.pool_output_shape((4, 4, 1), 5), "pool_size 5x5 does not fit"),
        (lambda: shapes.conv_output_shape((8, 8, 1), 0), "kernel_size 0: must be a positive"),
        (lambda: shapes.conv_output_shape((8, 8, 1), (2, -1)), "kernel_size (2, -1): must be"),
        (lambda: shapes.conv_output_shape((8, 8, 1), 2.5), "kernel_size 2.5: must be"),
        (lambda: shapes.conv_output_shape((8, 8, 1), True), "kernel_size True: must be"),
        (lambda: shapes.conv_output_shape((8, 8, 1), 2, strides=0), "strides 0: must be"),
        (lambda: shapes.conv_output_shape((8, 8, 1), 2, padding="full"), "padding 'full'"),
        (lambda: shapes.conv_output_shape((8, 8), 2), "input_shape (8, 8): must be"),
        (lambda: shapes.conv_output_shape((8, 8, 1), 2, filters=0), "filters 0: must be"),
        (lambda: shapes.conv_params(3, 0, 4), "depth_in 0: must be"),
        (lambda: shapes.dense_params(10, -1), "units -1: must be"),
    ],
)
def test_impossible_configurations_say_which_value_and_why(call, message):
    with pytest.raises(ValueError) as err:
        call()
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_same_padding_never_refuses_a_big_kernel():
    assert shapes.conv_output_shape((3, 3, 1), 5, 1, "same", 2) == (3, 3, 2)


# ---- parsing command-line values -----------------------------------------------


def test_parsers_accept_what_students_type():
    assert shapes.parse_size("3", "--k") == (3, 3)
    assert shapes.parse_size(" 3X5 ", "--k") == (3, 5)
    assert shapes.parse_positive_int("16", "--filters") == 16
    assert shapes.parse_input_shape("32,32,3") == (32, 32, 3)
    assert shapes.parse_input_shape("(32, 32, 3)") == (32, 32, 3)
    assert shapes.parse_padding("SAME") == "same"
    assert shapes.parse_activation("relu") == "relu"
    assert shapes.parse_activation("none") is None


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: shapes.parse_size("0", "--kernel-size"), "--kernel-size 0: must be a positive integer"),
        (lambda: shapes.parse_size("-1", "--kernel-size"), "--kernel-size -1: must be a positive"),
        (lambda: shapes.parse_size("2.5", "--strides"), "--strides 2.5: must be a positive integer"),
        (lambda: shapes.parse_size("3x4x5", "--strides"), "--strides 3x4x5: must be N or HxW"),
        (lambda: shapes.parse_size("", "--strides"), "--strides : must be N or HxW"),
        (lambda: shapes.parse_positive_int("ten", "--filters"), "--filters ten: must be a positive"),
        (lambda: shapes.parse_input_shape("32x32x3"), "--input-shape 32x32x3: must be H,W,D"),
        (lambda: shapes.parse_input_shape("32,32,3,1"), "--input-shape 32,32,3,1: must be H,W,D"),
        (lambda: shapes.parse_padding("causal"), "--padding causal: must be valid or same"),
        (lambda: shapes.parse_activation("re lu"), "--activation re lu: must be an activation"),
    ],
)
def test_parsers_refuse_bad_values_naming_them(call, message):
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        call()


# ---- stacks ------------------------------------------------------------------------


def test_cifar10_stack_traces_to_528054_parameters():
    rows = shapes.trace_stack((32, 32, 3), shapes.parse_stack(shapes.CIFAR10_STACK))
    assert [r["shape"] for r in rows] == [
        (32, 32, 16),
        (16, 16, 16),
        (16, 16, 32),
        (8, 8, 32),
        (8, 8, 64),
        (4, 4, 64),
        (4, 4, 64),
        (1024,),
        (500,),
        (500,),
        (10,),
    ]
    assert [r["params"] for r in rows if r["params"]] == [208, 2080, 8256, 512_500, 5010]
    assert sum(r["params"] for r in rows) == 528_054
    table = shapes.stack_table(rows)
    assert "Total params: 528,054" in table
    assert "params 500x1024 + 500" in table


def test_stack_fields_after_the_sizes_come_in_any_order():
    a, b = shapes.parse_stack("conv:8:3x5:relu:same:2, conv:8:3x5:2:same:relu")
    for layer in (a, b):
        assert (layer["filters"], layer["window"], layer["strides"]) == (8, (3, 5), (2, 2))
        assert (layer["padding"], layer["activation"]) == ("same", "relu")
    pool, avg, drop, gap = shapes.parse_stack("maxpool:3,avgpool:2:1:same,dropout,gap")
    assert pool["strides"] == (3, 3) and avg["strides"] == (1, 1) and drop["rate"] == 0.5
    assert shapes.trace_stack((6, 6, 5), [pool, gap])[-1]["shape"] == (5,)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("", "--stack: is empty"),
        ("conv:16", "--stack layer 1 ('conv:16'): expected conv:K:F"),
        ("conv:16:2,pool", "--stack layer 2 ('pool'): expected pool:F"),
        ("conv:16:2,pool:2:same:same", "layer 2 ('pool:2:same:same'): padding given twice"),
        ("pool:2:relu", "'relu' is neither a stride nor valid/same"),
        ("conv:16:0", "--stack layer 1 ('conv:16:0'): kernel size 0: must be a positive"),
        ("dense:ten", "units ten: must be a positive integer"),
        ("dropout:x", "rate x: must be a number from 0"),
        ("flatten:2", "expected flatten"),
        ("conv:8:3,,dense:2", "--stack layer 2: is empty"),
        ("lstm:32", "unknown layer 'lstm'"),
    ],
)
def test_bad_stack_specs_name_the_layer(spec, message):
    with pytest.raises(ValueError) as err:
        shapes.parse_stack(spec)
    assert message in str(err.value)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("conv:4:40", "--stack layer 1 ('conv:4:40'): kernel_size 40x40 does not fit the 32x32"),
        ("conv:4:2,pool:2,flatten,conv:4:2", "layer 4 ('conv:4:2'): needs an H x W x D input"),
        ("gap,gap", "layer 2 ('gap'): needs an H x W x D input but gets (None, 3)"),
    ],
)
def test_stacks_that_cannot_fit_name_the_layer(spec, message):
    with pytest.raises(ValueError) as err:
        shapes.trace_stack((32, 32, 3), shapes.parse_stack(spec))
    assert message in str(err.value)


# ---- the working -------------------------------------------------------------------


def test_conv_working_puts_the_numbers_in():
    text = "\n".join(shapes.conv_working((200, 200, 1), 2, 2, "valid", 16))
    assert "height     = ceil((H_in - F + 1) / S) = ceil((200 - 2 + 1) / 2) = ceil(99.5) = 100" in text
    assert "parameters = K x F x F x D_in + K = 16 x 2 x 2 x 1 + 16 = 80" in text
    text = "\n".join(shapes.conv_working((28, 27, 3), (3, 5), (2, 1), "same", 8))
    assert "height     = ceil(H_in / S_h) = ceil(28 / 2) = 14" in text
    assert "K x F_h x F_w x D_in + K = 8 x 3 x 5 x 3 + 8 = 368" in text


def test_pool_working_keeps_the_depth_and_has_no_parameters():
    text = "\n".join(shapes.pool_working((100, 100, 15), 2))
    assert "depth      = D_in = 15" in text and "parameters = 0" in text
    assert "Output shape (None, 50, 50, 15), 0 parameters" in text
    assert "Output shape (None, 512), 0" in "\n".join(shapes.global_pool_working((7, 7, 512)))


def test_importing_shapes_imports_no_keras():
    code = (
        "import sys, cnn_course.shapes; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('keras', 'tensorflow')))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_import_keras_leaves_the_environment_of_later_processes_as_it_was(monkeypatch):
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    keras = keras_check.import_keras()
    assert keras.__name__ == "keras"
    assert "TF_ENABLE_ONEDNN_OPTS" not in os.environ  # so notebook kernels keep oneDNN's fast kernels
    with keras_check.quiet_tensorflow():
        assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "0"
    assert "TF_ENABLE_ONEDNN_OPTS" not in os.environ
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    with keras_check.quiet_tensorflow():
        assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "1"
    assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "1"
