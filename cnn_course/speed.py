"""What the machine is, and the precision that trains fastest on it, on any Keras backend.

`describe_machine` says what a measurement ran on. ``precision_policy()`` uses 16-bit mixed
precision only where it measured faster (issue 12: VGG16 on a Xeon with avx512_bf16 and no AMX ran
at 3.1 images/s in mixed bfloat16 against 4.4 in float32): "auto" times float32 against
mixed_bfloat16 for a few steps and caches the verdict per machine, backend and model, or, without a
model or in a quick run, picks conservatively; on a GPU it times float32 against mixed_float16 the
same way (on an H200 the modern CNN's loop was no faster in float16); one printed line says which and why.
"""

import collections
import contextlib
import importlib
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
MIN_SPEEDUP = 1.10  # "auto" picks 16-bit only when this much faster than float32: a margin over the noise


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """Return the CPU's instruction-set flags (a set; empty where ``cpuinfo`` cannot be read)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set(text.split())


def cpu_model(cpuinfo="/proc/cpuinfo"):
    """Return the CPU's model name (from ``cpuinfo``, else platform.processor())."""
    with contextlib.suppress(OSError):
        for line in Path(cpuinfo).read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_has_bf16(cpuinfo="/proc/cpuinfo"):
    """Return True when the CPU lists bfloat16 instructions (avx512_bf16 or amx_bf16)."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags(cpuinfo))


def cpu_has_amx(cpuinfo="/proc/cpuinfo"):
    """Return True when the CPU has AMX bfloat16 matrix units."""
    return "amx_bf16" in cpu_flags(cpuinfo)


def gpu_names():
    """Return the names of the GPUs Keras's backend sees (a list; imports Keras and its backend)."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return [d.device_kind for d in jax.devices() if d.platform == "gpu"]
    if backend == "tensorflow":
        import tensorflow as tf

        details = tf.config.experimental.get_device_details
        return [details(gpu).get("device_name") or gpu.name for gpu in tf.config.list_physical_devices("GPU")]
    if backend == "torch":
        import torch

        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return []


def gpu_name():
    """Return the name of the first GPU Keras's backend sees, or None."""
    return next(iter(gpu_names()), None)


def backend_version():
    """Return (Keras backend name, its version), e.g. ("jax", "0.10.2")."""
    import keras

    backend = keras.backend.backend()
    try:
        return backend, importlib.import_module(backend).__version__
    except (ImportError, AttributeError):
        return backend, "?"


def describe_machine():
    """Return what a measurement ran on, the course's one description: a dict of python, platform,
    keras, backend, backend_version, cpu, device ("CPU" or "2 x NVIDIA H200"), where and versions."""
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


def measure_precision(model, data, rounds=6, budget_s=6.0, sixteen="mixed_bfloat16"):
    """Time steps of ``model()`` (built under each policy; compiled with Adam and cross-entropy
    unless it is) on ``data`` (x, y; y None: predict) in float32 and ``sixteen``, alternating
    (`alternate`), with the models' variables put back after. Returns dict(float32_s,
    <sixteen>_s: median seconds per step, speedup, rounds). Raises what the model raises."""
    import keras

    x, y = data
    previous, built = keras.mixed_precision.global_policy(), {}
    try:
        for policy in ("float32", sixteen):
            keras.mixed_precision.set_global_policy(policy)
            built[policy] = model()
    finally:
        keras.mixed_precision.set_global_policy(previous)
    for net in built.values():
        if y is not None and not getattr(net, "compiled", False):
            loss = "categorical_crossentropy" if getattr(y, "ndim", 1) == 2 else "sparse_categorical_crossentropy"
            net.compile(optimizer="adam", loss=loss)

    def step(net):
        started = time.perf_counter()
        net.predict_on_batch(x) if y is None else net.train_on_batch(x, y)  # both return when done
        return time.perf_counter() - started

    # A layer the builder shares between its models (lesson 4's augmentation) must come out as it went in.
    kept = {id(v): (v, keras.ops.copy(v.value)) for net in built.values() for v in net.variables}
    try:
        for net in built.values():
            step(net), step(net)  # build and compile
        times = alternate({policy: (lambda net=net: step(net)) for policy, net in built.items()}, rounds, budget_s)
    finally:
        for variable, value in kept.values():
            variable.assign(value)
    f32, half = statistics.median(times["float32"]), statistics.median(times[sixteen])
    return {"float32_s": f32, f"{sixteen}_s": half, "speedup": f32 / half, "rounds": len(times["float32"])}


def model_signature(model, data):
    """Return a short text identifying ``model()`` (built under float32) and the batch, for the cache."""
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
    """Return the file that caches measured verdicts: <$KERAS_HOME or ~/.keras>/cnn_course/precision.json."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "cnn_course" / "precision.json"


def unmeasured_cpu_precision(backend, cpuinfo="/proc/cpuinfo"):
    """Return (policy, reason) for a CPU when nothing was measured: "mixed_bfloat16" only for
    TensorFlow on a CPU with AMX bfloat16 units, else "float32"."""
    if not cpu_has_bf16(cpuinfo):
        return "float32", "this CPU has no bfloat16 instructions"
    if backend == "tensorflow" and cpu_has_amx(cpuinfo):
        return "mixed_bfloat16", "TensorFlow on a CPU with AMX bfloat16 units"
    why = "on a CPU without AMX units" if backend == "tensorflow" else f"on {backend}"
    return "float32", f"bfloat16 can be slower than float32 {why}"


def choose_precision(model=None, data=None, cache=None, cpuinfo="/proc/cpuinfo", quick=None):
    """Return (policy, reason) for "auto". Given a ``model`` builder and batch ``data``, on a GPU or a
    CPU with bfloat16: measured (`measure_precision`: mixed_float16 on a GPU, mixed_bfloat16 on a CPU,
    picked when at least MIN_SPEEDUP faster than float32) and cached in ``cache`` (default
    `cache_path()`) per device, backend and model. Otherwise, or in a quick run: mixed_float16 on a
    GPU, `unmeasured_cpu_precision` on a CPU. Raises what ``model`` raises and SettingError for a bad
    CNN_COURSE_QUICK."""
    gpu = gpu_name()
    backend, version = backend_version()
    if gpu:
        sixteen, device, unmeasured = "mixed_float16", f"this GPU ({gpu})", ("mixed_float16", f"GPU {gpu}")
    else:
        sixteen, device, unmeasured = "mixed_bfloat16", "this CPU", unmeasured_cpu_precision(backend, cpuinfo)
    if model is None or data is None or not (gpu or cpu_has_bf16(cpuinfo)):
        return unmeasured
    from cnn_course.data import quick_mode

    if quick_mode(quick):
        return unmeasured[0], f"quick run, not measured: {unmeasured[1]}"
    import keras

    path = Path(cache) if cache is not None else cache_path()
    if gpu:
        machine = [f"GPU {gpu}"]
    else:
        flags = sorted(f for f in cpu_flags(cpuinfo) if "bf16" in f or "amx" in f or f.startswith("avx512"))
        machine = [cpu_model(cpuinfo), " ".join(flags), f"os.cpu_count()={os.cpu_count()}"]
    key = " | ".join([*machine, f"keras {keras.__version__} on {backend} {version}", model_signature(model, data)])
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        entries = {}
    entries = entries if isinstance(entries, dict) else {}
    entry = entries.get(key)  # one written by another version, or damaged by hand, is measured again
    if (
        isinstance(entry, dict)
        and entry.get("policy") in ("float32", sixteen)
        and all(isinstance(entry.get(field), str) for field in ("reason", "date"))
    ):
        return entry["policy"], f"{entry['reason']} on {entry['date']}; cached in {path}"
    result = measure_precision(model, data, sixteen=sixteen)
    speedup = result["speedup"]
    if speedup >= MIN_SPEEDUP:
        policy, reason = sixteen, f"measured {speedup:.2f}x faster than float32 on {device} with {backend}"
    else:
        policy, reason = "float32", f"{sixteen} measured {speedup:.2f}x the speed of float32 on {device} with {backend}"
    entries[key] = dict(result, policy=policy, reason=reason, date=date.today().isoformat())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(entries, indent=1, sort_keys=True))
    except OSError:
        reason += f"; not cached: {path.parent} is not writable"
    return policy, reason


def precision_policy(choice="auto", model=None, data=None, verbose=True):
    """Return the Keras dtype policy name for ``choice``: any name but "auto" as it is; "auto" from
    `choose_precision`, printing "Precision: <policy> (<why>)" with ``verbose``. Python's and NumPy's
    random state are kept, so measuring leaves the lesson's seeded weights alone.
    Raises ValueError for a name not in POLICIES; what ``model`` raises."""
    if choice not in POLICIES:
        raise ValueError(f"PRECISION must be one of {', '.join(map(repr, POLICIES))}, not {choice!r}")
    if choice != "auto":
        return choice
    import numpy as np

    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        policy, reason = choose_precision(model, data)
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
    if verbose:
        print(f"Precision: {policy} ({reason})")
    return policy
