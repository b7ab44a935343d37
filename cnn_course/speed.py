"""What the machine is, and the precision that trains fastest on it, on any Keras backend.

`describe_machine` (with `cpu_model`, `gpu_name`, `backend_version`) says what
a measurement ran on. The lessons call ``precision_policy()`` with their
model's builder and a batch, so that 16-bit mixed precision is used only where
it measured faster: it is not faster everywhere (issue 12: VGG16 on a Xeon with
avx512_bf16 and no AMX ran at 3.1 images/s in mixed bfloat16 against 4.4 in
float32). "auto" measures (float32 against mixed_bfloat16, a few training
steps, the verdict cached per machine, backend and model) or, without a model
or in a quick run, picks conservatively; one printed line says which and why.
"""

import contextlib
import json
import os
import platform
import random
import statistics
import time
from datetime import date
from pathlib import Path

from cnn_course.reports import write_atomic
from cnn_course.timing import alternate

POLICIES = ("auto", "float32", "mixed_bfloat16", "mixed_float16")

# "auto" picks mixed_bfloat16 on a CPU only when it measured at least this
# much faster than float32: a margin over the noise of a shared machine.
MIN_SPEEDUP = 1.10


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """Return the CPU's instruction-set flags as a set of str (Linux's ``cpuinfo``).

    Returns an empty set where ``cpuinfo`` cannot be read (macOS, Windows).
    Raises nothing.
    """
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set(text.split())


def cpu_model(cpuinfo="/proc/cpuinfo"):
    """Return the CPU's model name (from ``cpuinfo``, else platform.processor()). Raises nothing."""
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_has_bf16(cpuinfo="/proc/cpuinfo"):
    """Return True when the CPU lists bfloat16 instructions (avx512_bf16 or amx_bf16).

    Reads ``cpuinfo`` (Linux); returns False where it cannot be read (macOS,
    Windows). Raises nothing.
    """
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags(cpuinfo))


def cpu_has_amx(cpuinfo="/proc/cpuinfo"):
    """Return True when the CPU has AMX bfloat16 matrix units (flag amx_bf16). Raises nothing."""
    return "amx_bf16" in cpu_flags(cpuinfo)


def gpu_names():
    """Return the names of the GPUs Keras's backend sees, a list (empty without one).

    Imports Keras and its backend (TensorFlow, JAX or PyTorch). Raises nothing
    of its own.
    """
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return [d.device_kind for d in jax.devices() if d.platform == "gpu"]
    if backend == "tensorflow":
        import tensorflow as tf

        return [
            tf.config.experimental.get_device_details(gpu).get("device_name") or gpu.name
            for gpu in tf.config.list_physical_devices("GPU")
        ]
    if backend == "torch":
        import torch

        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return []


def gpu_name():
    """Return the name of the first GPU that Keras's backend sees, or None (see `gpu_names`)."""
    return next(iter(gpu_names()), None)


def backend_version():
    """Return (Keras backend name, its version) for the backend Keras uses, e.g. ("jax", "0.10.2")."""
    import importlib

    import keras

    backend = keras.backend.backend()
    try:
        version = importlib.import_module(backend).__version__
    except (ImportError, AttributeError):
        version = "?"
    return backend, version


def describe_machine():
    """Say what a measurement ran on: the course's one CPU/GPU/backend/version description.

    Returns a dict: python, platform, keras (its version), backend,
    backend_version, cpu ("<model>, <n> cores"), device ("CPU", or the GPUs,
    e.g. "2 x NVIDIA H200"), and two texts for people: where ("GPU: <names>"
    or "CPU: <model>, <n> cores") and versions ("Keras 3.15.1, tensorflow
    2.21.0"). Imports Keras and its backend; raises nothing of its own.
    """
    import collections

    import keras

    backend, version = backend_version()
    counts = collections.Counter(gpu_names())
    device = ", ".join(n if c == 1 else f"{c} x {n}" for n, c in counts.items()) or "CPU"
    cpu = f"{cpu_model()}, {os.cpu_count()} cores"
    return {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "keras": keras.__version__,
        "backend": backend,
        "backend_version": version,
        "cpu": cpu,
        "device": device,
        "where": f"GPU: {device}" if counts else f"CPU: {cpu}",
        "versions": f"Keras {keras.__version__}, {backend} {version}",
    }


# --------------------------------------------------------------------------
# Measuring


def measure_precision(model, data, rounds=6, budget_s=6.0):
    """Time training steps of ``model()`` in float32 and in mixed_bfloat16, alternating.

    ``model`` is a function that builds the model (it is called once under
    each dtype policy; the global policy is restored afterwards); a model it
    returns uncompiled is compiled for the timing with Adam and cross-entropy
    (`_compile_for_timing`), as a lesson's would be. ``data`` is a batch
    ``(x, y)``: one ``train_on_batch`` is one step, or with ``y`` None one
    ``predict_on_batch`` (for a model that only infers). Each
    model first runs two steps (compiling), then the two alternate (ABBA) for
    ``rounds`` rounds (`cnn_course.timing.alternate`), stopping early once
    ``budget_s`` seconds are spent (at least two rounds). The models' variables (weights, and the state of
    random layers such as dropout and augmentation) are put back afterwards,
    so a layer the builder reuses from outside comes out unchanged.

    Returns dict(float32_s, mixed_bfloat16_s: median seconds per step,
    speedup: float32_s / mixed_bfloat16_s, rounds). Raises whatever the model
    raises.
    """
    import keras

    x, y = data
    previous = keras.mixed_precision.global_policy()
    built = {}
    try:
        for policy in ("float32", "mixed_bfloat16"):
            keras.mixed_precision.set_global_policy(policy)
            built[policy] = model()
    finally:
        keras.mixed_precision.set_global_policy(previous)
    if y is not None:
        for net in built.values():
            _compile_for_timing(net, y)

    def step(net):
        started = time.perf_counter()
        if y is None:
            net.predict_on_batch(x)  # returns NumPy arrays: the step has finished
        else:
            net.train_on_batch(x, y)  # returns Python floats: the step has finished
        return time.perf_counter() - started

    # A layer the builder shares between its models (lesson 4's augmentation)
    # must come out of the timing as it went in: its weights and random state.
    kept = {id(v): (v, keras.ops.copy(v.value)) for net in built.values() for v in net.variables}
    try:
        for net in built.values():
            step(net), step(net)  # build and compile
        times = alternate({policy: (lambda net=net: step(net)) for policy, net in built.items()}, rounds, budget_s)
    finally:
        for variable, value in kept.values():
            variable.assign(value)
    f32, bf16 = statistics.median(times["float32"]), statistics.median(times["mixed_bfloat16"])
    return {"float32_s": f32, "mixed_bfloat16_s": bf16, "speedup": f32 / bf16, "rounds": len(times["float32"])}


def _compile_for_timing(net, y):
    """Compile ``net`` for timing its training steps, unless it is compiled already.

    Adam and categorical cross-entropy for one-hot labels ``y`` (2-D), sparse
    categorical cross-entropy for class numbers: what the lessons train with
    (the optimizer's share of a step is small whichever it is). Returns
    nothing; raises what Keras raises.
    """
    if not getattr(net, "compiled", False):
        loss = "categorical_crossentropy" if getattr(y, "ndim", 1) == 2 else "sparse_categorical_crossentropy"
        net.compile(optimizer="adam", loss=loss)


def model_signature(model, data):
    """Return a short text that identifies a model and batch for the cache.

    Built from ``model()`` under float32: its name, its layers' classes and its
    parameter count, and the batch's shape (``data[0]``). Raises what the
    model raises.
    """
    import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        net = model()
    finally:
        keras.mixed_precision.set_global_policy(previous)
    layers = ",".join(type(layer).__name__ for layer in net.layers)
    task = "train" if data[1] is not None else "predict"
    return f"{net.name}:{net.count_params()}:{layers}:{task}:{tuple(data[0].shape)}"


def cache_path():
    """Return the file that caches measured verdicts: <Keras home>/cnn_course/precision.json.

    The Keras home is $KERAS_HOME, else ~/.keras. Raises nothing.
    """
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "cnn_course" / "precision.json"


def _read_cache(path):
    try:
        entries = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}


def _write_cache(path, entries):
    """Write ``entries`` to ``path`` atomically (`cnn_course.reports.write_atomic`).

    Returns True when written; False when the folder is not writable (the
    verdict is then simply not cached). Leaves no temporary file behind.
    """
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(entries, indent=1, sort_keys=True))
    except OSError:
        return False
    return True


def _cached_verdict(entries, key):
    """Return the cached entry for ``key`` when it is a usable verdict, else None.

    An entry written by another version, or damaged by hand, is ignored (and
    replaced once measured again). Raises nothing.
    """
    entry = entries.get(key)
    if (
        isinstance(entry, dict)
        and entry.get("policy") in ("float32", "mixed_bfloat16")
        and all(isinstance(entry.get(field), str) for field in ("reason", "date"))
    ):
        return entry
    return None


@contextlib.contextmanager
def _random_state_kept():
    """Keep Python's and NumPy's global random state across the ``with`` block.

    Measuring builds models, and Keras draws their initial weights' seeds from
    Python's ``random`` (after ``keras.utils.set_random_seed``); so a lesson
    that seeded before choosing its precision starts from the same weights
    whether the verdict was measured or read from the cache. Yields nothing.
    """
    import numpy as np

    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


# --------------------------------------------------------------------------
# Choosing


def unmeasured_cpu_precision(backend, cpuinfo="/proc/cpuinfo"):
    """Return (policy name, reason) for a CPU when nothing was measured, conservatively.

    "mixed_bfloat16" only for ``backend`` "tensorflow" on a CPU with AMX
    bfloat16 units (oneDNN runs its matrix products there); else "float32":
    without AMX, or on JAX or PyTorch, bfloat16 on a CPU can be slower.
    Raises nothing.
    """
    if not cpu_has_bf16(cpuinfo):
        return "float32", "this CPU has no bfloat16 instructions"
    if backend == "tensorflow" and cpu_has_amx(cpuinfo):
        return "mixed_bfloat16", "TensorFlow on a CPU with AMX bfloat16 units"
    why = "on a CPU without AMX units" if backend == "tensorflow" else f"on {backend}"
    return "float32", f"bfloat16 can be slower than float32 {why}"


def choose_precision(model=None, data=None, cache=None, cpuinfo="/proc/cpuinfo", quick=None):
    """Decide the dtype policy "auto" stands for; return (policy name, reason).

    - a GPU: "mixed_float16" (its 16-bit units);
    - a CPU without bfloat16 instructions: "float32";
    - a CPU with them, given ``model`` (a function that builds and compiles
      the model) and ``data`` (a batch ``(x, y)``, y None for inference):
      measured with `measure_precision`; "mixed_bfloat16" only when it was at
      least MIN_SPEEDUP times faster than float32. The verdict is cached in
      ``cache`` (default `cache_path()`) per CPU (model and flags), backend and
      its version, and model (`model_signature`), so it is measured once;
    - otherwise, or in a quick run (``quick``; None reads ``CNN_COURSE_QUICK``),
      which must not spend its time measuring, conservatively
      (`unmeasured_cpu_precision`): "mixed_bfloat16" only with TensorFlow on
      a CPU with AMX bfloat16 units, else "float32".

    ``reason`` is a short text for people ("measured 1.62x faster than float32
    on this CPU"). Raises what ``model`` raises; SettingError (from
    `cnn_course.data.quick_mode`) for a CNN_COURSE_QUICK that is not true/false.
    """
    gpu = gpu_name()
    if gpu:
        return "mixed_float16", f"GPU {gpu}: 16-bit tensor maths"
    backend, version = backend_version()
    if model is None or data is None or not cpu_has_bf16(cpuinfo):
        return unmeasured_cpu_precision(backend, cpuinfo)
    from cnn_course.data import quick_mode

    if quick_mode(quick):
        policy, reason = unmeasured_cpu_precision(backend, cpuinfo)
        return policy, f"quick run, not measured: {reason}"

    import keras

    path = Path(cache) if cache is not None else cache_path()
    flags = sorted(f for f in cpu_flags(cpuinfo) if "bf16" in f or "amx" in f or f.startswith("avx512"))
    key = " | ".join(
        [
            cpu_model(cpuinfo),
            " ".join(flags),
            f"os.cpu_count()={os.cpu_count()}",
            f"keras {keras.__version__} on {backend} {version}",
            model_signature(model, data),
        ]
    )
    entries = _read_cache(path)
    entry = _cached_verdict(entries, key)
    if entry is not None:
        return entry["policy"], f"{entry['reason']} on {entry['date']}; cached in {path}"
    result = measure_precision(model, data)
    speedup = result["speedup"]
    if speedup >= MIN_SPEEDUP:
        policy, reason = "mixed_bfloat16", f"measured {speedup:.2f}x faster than float32 on this CPU with {backend}"
    else:
        policy, reason = (
            "float32",
            (f"mixed_bfloat16 measured {speedup:.2f}x the speed of float32 on this CPU with {backend}"),
        )
    entries[key] = dict(result, policy=policy, reason=reason, date=date.today().isoformat())
    cached = _write_cache(path, entries)
    return policy, reason + ("" if cached else f"; not cached: {path.parent} is not writable")


def precision_policy(choice="auto", model=None, data=None, verbose=True):
    """Return the Keras dtype policy name for ``choice``.

    Any allowed name but "auto" is returned as it is. "auto" is decided by
    `choose_precision` (measured when ``model`` and ``data`` are given, see
    there; conservatively otherwise), and, with ``verbose``, one line says
    which it chose and why, e.g.
    ``Precision: mixed_bfloat16 (measured 1.62x faster than float32 on this CPU with jax)``.
    Measuring builds models, but Python's and NumPy's random state are kept,
    so it may come after ``keras.utils.set_random_seed``: a measured and a
    cached verdict leave the same random numbers for the lesson's model.
    Raises ValueError for a name not in POLICIES; what ``model`` raises.
    """
    if choice not in POLICIES:
        raise ValueError(f"PRECISION must be one of {', '.join(map(repr, POLICIES))}, not {choice!r}")
    if choice != "auto":
        return choice
    with _random_state_kept():
        policy, reason = choose_precision(model, data)
    if verbose:
        print(f"Precision: {policy} ({reason})")
    return policy
