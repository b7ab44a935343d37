"""Build the layers of conv-dims.py and pool-dims.py with Keras and compare them
with the formulas of ``cnn_course.shapes``.

Two checks come before anything is built, so that a student's typo gives one
clear line rather than a TensorFlow traceback or the out-of-memory killer:

- `check_fits` estimates the memory Keras needs to create the layers' weights
  and refuses what would not fit (the formulas, ``--no-keras``, still answer);
- `check_activation` refuses an activation Keras does not have, cannot apply
  by name, or that changes the shape of what it is given (the formulas assume
  it keeps it, and Keras's own shape inference ignores the activation, so it
  would "agree" with a wrong answer).

Keras is imported only by `import_keras`, when called.
"""

import contextlib
import os
from pathlib import Path

from cnn_course.shapes import parse_stack, shape_text, stack_table, trace_stack

# Bytes of memory per parameter while Keras builds a layer: the float32 weights
# and two temporaries of the same size from their random initialisation
# (measured: peak 3.15 x 4 = 12.6 bytes for Conv2D layers of 125 and 250 million
# parameters, Keras 3.15 on TensorFlow 2.21, CPU).
BYTES_PER_PARAMETER = 13

# The share of the memory available now that building may take; the rest is
# left to TensorFlow itself and to the machine's other work.
MEMORY_SHARE = 0.8

_PROBE_SHAPE = (1, 2, 2, 4)  # what check_activation applies an activation to

# Keras works out output shapes and parameter counts with floating-point and
# 64-bit integer arithmetic (numpy), exact only for whole numbers up to 2**53:
# above it its answer can be off by one or overflow, and would look like a
# mismatch with the formulas, which are exact.
MAX_EXACT = 2**53


# ---- memory ------------------------------------------------------------------

def available_memory():
    """Return the bytes of memory this process can still use, or None if unknown.

    On Linux: MemAvailable from /proc/meminfo, or less when a cgroup limit
    leaves less; elsewhere the physical memory. Raises nothing.
    """
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
            if limit != "max":
                found.append(max(0, int(limit) - usage))
        except (OSError, ValueError):
            pass
    if not found:
        try:
            found.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (AttributeError, ValueError, OSError):
            return None
    return min(found)


def _integers(value):
    """Yield every int in ``value``: an int, or nested tuples/lists/dicts of them."""
    if isinstance(value, dict):
        value = value.values()
    if isinstance(value, (tuple, list, type({}.values()))):
        for item in value:
            yield from _integers(item)
    elif isinstance(value, int) and not isinstance(value, bool):
        yield value


def check_exact(*sizes, what="the layer"):
    """Refuse, before Keras is imported, sizes Keras cannot compute exactly.

    ``sizes``: ints, or nested tuples, lists and dicts of them (shapes,
    parameter counts, the rows of trace_stack). Returns None. Raises
    ValueError, one line naming the biggest size and the limit MAX_EXACT.
    """
    biggest = max(_integers(sizes), default=0)
    if biggest > MAX_EXACT:
        raise ValueError(
            f"{what} has a size of {biggest:,} (in its input, its output or its parameter count): "
            f"over 2**53 = {MAX_EXACT:,}, the largest Keras computes shapes with exactly; "
            "use smaller sizes, or --no-keras for the formulas' exact working")


def _size(n_bytes):
    """Return a byte count as text: "3.2 GiB", "512 MiB", "1,024.0 TiB"."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:,.1f} {unit}"
    return f"{n_bytes / 2**20:,.0f} MiB"


def check_fits(params, what="the layer", limit=None):
    """Refuse to build layers with `params` parameters in all when they would not fit.

    The estimate is `params` x BYTES_PER_PARAMETER; `limit` (bytes) defaults
    to MEMORY_SHARE of `available_memory()` (no check when that is unknown).
    Returns the estimate in bytes. Raises ValueError, one line giving the
    estimate and the limit.
    """
    estimate = params * BYTES_PER_PARAMETER
    if limit is None:
        available = available_memory()
        limit = None if available is None else int(available * MEMORY_SHARE)
    if limit is not None and estimate > limit:
        raise ValueError(
            f"{what} has {params:,} parameters: building it with Keras needs about {_size(estimate)} "
            f"of memory ({BYTES_PER_PARAMETER} bytes a parameter), over the limit of {_size(limit)} "
            f"({MEMORY_SHARE:.0%} of the memory available now); --no-keras still prints the working")
    return estimate


def build(make, what="the layer"):
    """Return ``make()`` (a Keras model), with running out of memory as one line.

    A backstop for what `check_fits` cannot see (a GPU's own memory, other
    programs starting meanwhile). Raises ValueError for MemoryError or
    TensorFlow's ResourceExhaustedError; anything else propagates.
    """
    try:
        return make()
    except Exception as exc:
        if isinstance(exc, MemoryError) or type(exc).__name__ == "ResourceExhaustedError":
            raise ValueError(f"{what}: Keras ran out of memory building it ({type(exc).__name__}); "
                             "--no-keras still prints the working") from None
        raise


# ---- Keras --------------------------------------------------------------------

@contextlib.contextmanager
def quiet_tensorflow():
    """Within the block, TensorFlow imports without its start-up notices; yields None.

    Sets TF_CPP_MIN_LOG_LEVEL=2 and TF_ENABLE_ONEDNN_OPTS=0 unless already set
    (else a notice about oneDNN prints on every import), and removes
    TF_ENABLE_ONEDNN_OPTS again when the block ends: TensorFlow reads it once,
    when imported, but processes started later inherit the environment, and
    a notebook kernel without oneDNN trains several times slower (measured in
    the test suite: lesson 9's quick run took 127 s instead of 36 s).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    added = "TF_ENABLE_ONEDNN_OPTS" not in os.environ
    if added:
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
    try:
        yield
    finally:
        if added:
            os.environ.pop("TF_ENABLE_ONEDNN_OPTS", None)


def import_keras():
    """Return the keras module, imported inside `quiet_tensorflow`.

    Raises ImportError when Keras is not installed; when Keras is but the
    package of its backend is not (``pip install cnn-course`` without an
    extra), `cnn_course.backends.BackendError` (a ValueError), one line
    saying what to install.
    """
    with quiet_tensorflow():
        try:
            import keras
        except ImportError as exc:
            if exc.name == "keras":
                raise
            from cnn_course import backends

            backends.check_backend(backends.keras_backend())  # raises, naming what to install
            raise
    return keras


def check_activation(keras, activation, where):
    """Check that Keras has `activation` (a name, or None for none) and that it
    keeps the shape of what it is given, by applying it to a small tensor.

    Returns None. Raises ValueError starting with `where` (e.g.
    "--activation glu") when Keras has no such activation, cannot apply it by
    name alone, or when it changes the shape.
    """
    if activation is None:
        return
    try:
        function = keras.activations.get(activation)
    except ValueError:
        raise ValueError(f"{where}: Keras has no activation of that name") from None
    try:
        shape = tuple(keras.ops.shape(function(keras.ops.ones(_PROBE_SHAPE))))
    except Exception as exc:
        reason = " ".join(str(exc).split())[:120]
        raise ValueError(f"{where}: Keras cannot apply it by name alone "
                         f"({type(exc).__name__}: {reason})") from None
    if shape != _PROBE_SHAPE:
        raise ValueError(f"{where}: changes the shape of what it is given ({_PROBE_SHAPE} becomes {shape}), "
                         "so the layer's output is not what the formulas describe; use an activation that "
                         "keeps the shape, such as relu, sigmoid, tanh or softmax")


def keras_stack(input_shape, layers, name="--stack"):
    """Return a keras.Sequential of the parsed stack layers on an (H, W, D) input.

    Imports keras (and so TensorFlow). Raises ValueError for an activation
    `check_activation` refuses.
    """
    keras = import_keras()
    built = []
    for i, layer in enumerate(layers, 1):
        kind = layer["kind"]
        activation = layer.get("activation")
        check_activation(keras, activation, f"{name} layer {i} ({layer['text']!r}): activation {activation!r}")
        if kind == "conv":
            built.append(keras.layers.Conv2D(
                filters=layer["filters"], kernel_size=layer["window"], strides=layer["strides"],
                padding=layer["padding"], activation=activation))
        elif kind in ("pool", "avgpool"):
            pool = keras.layers.MaxPooling2D if kind == "pool" else keras.layers.AveragePooling2D
            built.append(pool(pool_size=layer["window"], strides=layer["strides"],
                              padding=layer["padding"]))
        elif kind == "gap":
            built.append(keras.layers.GlobalAveragePooling2D())
        elif kind == "dropout":
            built.append(keras.layers.Dropout(layer["rate"]))
        elif kind == "flatten":
            built.append(keras.layers.Flatten())
        else:
            built.append(keras.layers.Dense(layer["units"], activation=activation))
    return keras.Sequential([keras.Input(shape=tuple(input_shape)), *built])


def keras_mismatches(rows, model):
    """Return one line per layer where trace_stack rows and a Keras model disagree.

    An empty list means Keras agrees on every layer's output shape and
    parameter count.
    """
    if len(rows) != len(model.layers):
        return [f"the formulas have {len(rows)} layers, Keras {len(model.layers)}"]
    problems = []
    for i, (row, layer) in enumerate(zip(rows, model.layers), 1):
        shape = tuple(layer.output.shape)[1:]
        params = layer.count_params()
        if shape != tuple(row["shape"]) or params != row["params"]:
            problems.append(
                f"layer {i} ({row['layer']}): formulas say {shape_text(row['shape'])}, "
                f"{row['params']:,} params; Keras says {shape_text(shape)}, {params:,} params")
    return problems


# ---- what conv-dims.py and pool-dims.py share -------------------------------------

def report_agreement(problems, agreement):
    """Print whether Keras and the formulas agree; return 0 if they do, 1 if not.

    ``problems`` is what ``keras_mismatches`` returned; ``agreement`` the text
    printed after "Keras agrees: ". Raises nothing.
    """
    if not problems:
        print(f"Keras agrees: {agreement}")
        return 0
    for problem in problems:
        print(f"!!! MISMATCH: {problem}")
    print("!!! The formulas and Keras disagree: please report this.")
    return 1


def show_stack(spec, input_shape, no_keras):
    """Trace a --stack SPEC layer by layer, checked against Keras unless ``no_keras``.

    Prints the table (and Keras's summary); returns the exit status (0, or 1 on
    a mismatch). Raises ValueError for a bad SPEC, a layer that cannot fit its
    input, a stack too big to build in memory or with sizes Keras cannot
    compute exactly (over MAX_EXACT), or an activation `check_activation` refuses.
    """
    layers = parse_stack(spec)
    rows = trace_stack(input_shape, layers)
    if no_keras:
        print(stack_table(rows))
        return 0
    check_exact(input_shape, [layer.get(key) for layer in layers for key in ("window", "strides", "filters", "units")],
                rows, sum(row["params"] for row in rows), what="the stack")
    check_fits(sum(row["params"] for row in rows), "the stack")
    model = build(lambda: keras_stack(input_shape, layers), "the stack")
    model.summary()
    print(stack_table(rows))
    return report_agreement(keras_mismatches(rows, model),
                            f"every layer, {model.count_params():,} parameters in total")
