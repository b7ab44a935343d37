"""Build conv-dims.py's and pool-dims.py's layers with Keras and compare them with ``cnn_course.shapes``.

Checked before anything is built, so that a typo gives one clear line, not a traceback or the
out-of-memory killer: sizes Keras cannot compute exactly (`check_exact`), the memory building needs
(`check_fits`), an activation Keras lacks or that changes the shape (`check_activation`: Keras's
shape inference ignores it). Keras is imported only by `import_keras`.
"""

import contextlib
import os
from pathlib import Path

from cnn_course.shapes import parse_stack, shape_text, stack_table, trace_stack

# Bytes per parameter while Keras builds a layer: the float32 weights and two temporaries (measured:
# peak 12.6 bytes for Conv2D layers of 125 and 250 million parameters, Keras 3.15, TensorFlow 2.21, CPU).
BYTES_PER_PARAMETER = 13
MEMORY_SHARE = 0.8  # of the memory available now that building may take; the rest is TensorFlow's and others'
# Keras computes shapes and counts with floats, exact only up to 2**53: above, off by one = a "mismatch".
MAX_EXACT = 2**53
_PROBE_SHAPE = (1, 2, 2, 4)  # what check_activation applies an activation to


def available_memory():
    """Return the bytes of memory this process can still use (MemAvailable or a cgroup limit, else the
    physical memory), or None if unknown."""
    found = []
    with contextlib.suppress(OSError, ValueError, IndexError):
        found += [
            int(line.split()[1]) * 1024
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemAvailable:")
        ]
    for limit_file, usage_file in (
        ("memory.max", "memory.current"),  # cgroup v2, then v1
        ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes"),
    ):
        with contextlib.suppress(OSError, ValueError):
            limit = Path("/sys/fs/cgroup", limit_file).read_text().strip()
            if limit != "max":
                found.append(max(0, int(limit) - int(Path("/sys/fs/cgroup", usage_file).read_text())))
    with contextlib.suppress(AttributeError, ValueError, OSError):
        found = found or [os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")]
    return min(found, default=None)


def _integers(value):
    if isinstance(value, (tuple, list, dict)):
        for item in value.values() if isinstance(value, dict) else value:
            yield from _integers(item)
    elif isinstance(value, int) and not isinstance(value, bool):
        yield value


def check_exact(*sizes, what="the layer"):
    """Raise ValueError (one line) for an int in `sizes` (nested in tuples, lists, dicts) over MAX_EXACT."""
    biggest = max(_integers(sizes), default=0)
    if biggest > MAX_EXACT:
        raise ValueError(
            f"{what} has a size of {biggest:,} (in its input, its output or its parameter count): "
            f"over 2**53 = {MAX_EXACT:,}, the largest Keras computes shapes with exactly; "
            "use smaller sizes, or --no-keras for the formulas' exact working"
        )


def _size(n_bytes):
    """Return a byte count as text: "3.2 GiB", "512 MiB", "1,024.0 TiB"."""
    scale, unit = next(((s, u) for s, u in ((2**40, "TiB"), (2**30, "GiB")) if n_bytes >= s), (2**20, "MiB"))
    return f"{n_bytes / scale:,.{0 if unit == 'MiB' else 1}f} {unit}"


def check_fits(params, what="the layer", limit=None):
    """Return the bytes building `params` parameters needs; raise ValueError (one line) over `limit`
    (default MEMORY_SHARE of available_memory(), no check when unknown)."""
    estimate = params * BYTES_PER_PARAMETER
    if limit is None:
        available = available_memory()
        limit = None if available is None else int(available * MEMORY_SHARE)
    if limit is not None and estimate > limit:
        raise ValueError(
            f"{what} has {params:,} parameters: building it with Keras needs about {_size(estimate)} "
            f"of memory ({BYTES_PER_PARAMETER} bytes a parameter), over the limit of {_size(limit)} "
            f"({MEMORY_SHARE:.0%} of the memory available now); --no-keras still prints the working"
        )
    return estimate


def build(make, what="the layer"):
    """Return make(); running out of memory anyway raises ValueError in one line."""
    try:
        return make()
    except Exception as exc:
        if isinstance(exc, MemoryError) or type(exc).__name__ == "ResourceExhaustedError":
            raise ValueError(
                f"{what}: Keras ran out of memory building it ({type(exc).__name__}); "
                "--no-keras still prints the working"
            ) from None
        raise


@contextlib.contextmanager
def quiet_tensorflow():
    """Within the block TensorFlow imports without its start-up notices (TF_CPP_MIN_LOG_LEVEL=2 and
    TF_ENABLE_ONEDNN_OPTS=0 unless set). The latter goes after it: a kernel started later would train
    several times slower without oneDNN (lesson 9's quick run: 127 s instead of 36 s)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    added = "TF_ENABLE_ONEDNN_OPTS" not in os.environ
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    try:
        yield
    finally:
        if added:
            os.environ.pop("TF_ENABLE_ONEDNN_OPTS", None)


def import_keras():
    """Return the keras module, imported quietly. Raises ImportError without Keras, BackendError (one
    line saying what to install) without its backend's package."""
    with quiet_tensorflow():
        try:
            import keras
        except ImportError as exc:
            if exc.name != "keras":
                from cnn_course import backends

                backends.check_backend(backends.keras_backend())  # raises, naming what to install
            raise
    return keras


def check_activation(keras, activation, where):
    """Raise ValueError starting with `where` unless Keras has `activation` (None: none) and it keeps
    the shape of a small tensor."""
    if activation is None:
        return
    try:
        function = keras.activations.get(activation)
    except ValueError:
        raise ValueError(f"{where}: Keras has no activation of that name") from None
    try:
        shape = tuple(keras.ops.shape(function(keras.ops.ones(_PROBE_SHAPE))))
    except Exception as exc:
        raise ValueError(
            f"{where}: Keras cannot apply it by name alone ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})"
        ) from None
    if shape != _PROBE_SHAPE:
        raise ValueError(
            f"{where}: changes the shape of what it is given ({_PROBE_SHAPE} becomes {shape}), so the "
            "layer's output is not what the formulas describe; use an activation that keeps the shape, "
            "such as relu, sigmoid, tanh or softmax"
        )


def _keras_layer(kl, layer):
    """Return the keras.layers layer a parsed stack layer (or a drawn quiz layer) stands for."""
    kind, window = layer["kind"], {"strides": layer.get("strides"), "padding": layer.get("padding")}
    if kind == "conv":
        return kl.Conv2D(layer["filters"], layer["window"], activation=layer.get("activation"), **window)
    if kind in ("pool", "avgpool"):
        return (kl.MaxPooling2D if kind == "pool" else kl.AveragePooling2D)(layer["window"], **window)
    if kind == "dense":
        return kl.Dense(layer["units"], activation=layer.get("activation"))
    if kind == "dropout":
        return kl.Dropout(layer["rate"])
    return kl.GlobalAveragePooling2D() if kind == "gap" else kl.Flatten()


def keras_stack(input_shape, layers, name="--stack"):
    """Return a keras.Sequential of parsed stack layers on an (H, W, D) input; ValueError as check_activation."""
    keras = import_keras()
    for i, layer in enumerate(layers, 1):
        activation = layer.get("activation")
        check_activation(keras, activation, f"{name} layer {i} ({layer['text']!r}): activation {activation!r}")
    return keras.Sequential(
        [keras.Input(shape=tuple(input_shape)), *(_keras_layer(keras.layers, layer) for layer in layers)]
    )


def keras_mismatches(rows, model):
    """Return a line per layer where trace_stack rows and a Keras model disagree (shape or parameters)."""
    if len(rows) != len(model.layers):
        return [f"the formulas have {len(rows)} layers, Keras {len(model.layers)}"]
    problems = []
    for i, (row, layer) in enumerate(zip(rows, model.layers), 1):
        shape, params = tuple(layer.output.shape)[1:], layer.count_params()
        if shape != tuple(row["shape"]) or params != row["params"]:
            problems.append(
                f"layer {i} ({row['layer']}): formulas say {shape_text(row['shape'])}, "
                f"{row['params']:,} params; Keras says {shape_text(shape)}, {params:,} params"
            )
    return problems


def report_agreement(problems, agreement):
    """Print "Keras agrees: <agreement>", or each of keras_mismatches' `problems`; return 0 or 1."""
    if not problems:
        print(f"Keras agrees: {agreement}")
        return 0
    for problem in problems:
        print(f"!!! MISMATCH: {problem}")
    print("!!! The formulas and Keras disagree: please report this.")
    return 1


def show_stack(spec, input_shape, no_keras):
    """Print a --stack SPEC's table (and Keras's summary unless `no_keras`); return 0, or 1 on a
    mismatch. Raises ValueError for a bad SPEC, as the checks above do."""
    layers = parse_stack(spec)
    rows = trace_stack(input_shape, layers)
    if no_keras:
        print(stack_table(rows))
        return 0
    total = sum(row["params"] for row in rows)
    check_exact(
        input_shape,
        [layer.get(key) for layer in layers for key in ("window", "strides", "filters", "units")],
        rows,
        total,
        what="the stack",
    )
    check_fits(total, "the stack")
    model = build(lambda: keras_stack(input_shape, layers), "the stack")
    model.summary()
    print(stack_table(rows))
    return report_agreement(keras_mismatches(rows, model), f"every layer, {model.count_params():,} parameters in total")
