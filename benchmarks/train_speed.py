#!/usr/bin/env python
"""Training speed: the original course code against the lesson's pipeline.

For the lessons' MNIST MLP and CIFAR-10 CNN this trains, alternately, the
original course's code (ported only as far as Keras 3 requires) and the
lesson's pipeline, prints a table and writes ``benchmarks/results.json``::

    python benchmarks/train_speed.py                      # both models, real data when found
    python benchmarks/train_speed.py --models cifar10_cnn --repeats 2
    python benchmarks/train_speed.py --quick              # smoke run: 256 images, 2 epochs
    python benchmarks/train_speed.py --cifar-npz c.npz    # CIFAR-10 arrays from an .npz

Each training runs in a subprocess of its own, so its peak RSS is that
pipeline's alone; a further subprocess trains both in alternating chunks
(`cnn_course.timing.compare`), so that both meet the same load: their ratio is
``speedup_throughput``. Real data comes from ``cnn_course.data`` (nothing is
downloaded) or ``--mnist-npz``/``--cifar-npz`` (Keras layout); without it a
labelled stand-in gives throughput only. ``modern_cnn`` runs the lesson
notebook ``training-speed/modern_cnn.ipynb`` as the runner does and reads what
it prints. With a GPU (any backend) the lesson pipeline uses its GPU settings:
mixed_float16, XLA, many steps per execution, the data on the device;
``--gpu-path`` forces them on a CPU, to test that path.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import statistics
import sys
import tempfile
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results.json"
MODELS = ("mnist_mlp", "cifar10_cnn", "modern_cnn")
PAIRED_MODELS = ("mnist_mlp", "cifar10_cnn")  # the original course code against the lesson pipeline
PIPELINES = ("original", "lesson")

# What each model trains on and the validation accuracy it must reach.
TASKS = {
    "mnist_mlp": {"dataset": "mnist", "target": 0.98, "n_val": 12_000},  # validation_split=0.2
    "cifar10_cnn": {"dataset": "cifar10", "target": 0.68, "n_val": 5_000},  # first 5,000 held out
}

# The original course code: float32 arrays scaled to [0, 1], one-hot labels,
# RMSprop at its default learning rate, the best epoch checkpointed.
ORIGINAL = {
    "mnist_mlp": {"batch_size": 128, "optimizer": "rmsprop", "learning_rate": 0.001},
    "cifar10_cnn": {"batch_size": 32, "optimizer": "rmsprop", "learning_rate": 0.001},
}

# The lesson pipeline on a CPU, as the notebooks run it (chosen by measurement,
# see benchmarks/README.md): large batches with larger learning rates (the MLP's
# decaying to 0 over its 10 epochs), bfloat16 mixed precision where
# precision_policy("auto") picks it for the lesson's model (measured on a batch,
# the verdict cached; unmeasured in a quick run), one-hot labels as the lessons teach.
# The MLP scales a float32 copy of the images before training, as the MNIST
# lesson shows; the CNN keeps uint8 images and scales them in its first layer.
LESSON_CPU = {
    "mnist_mlp": {
        "batch_size": 1024,
        "optimizer": "rmsprop",
        "learning_rate": 0.003,
        "schedule": "cosine",
        "schedule_epochs": 10,
        "inputs": "float32",
        "scaling": None,
        "steps_per_execution": 1,
        "bf16": True,
    },
    "cifar10_cnn": {
        "batch_size": 512,
        "optimizer": "adam",
        "learning_rate": 0.004,
        "inputs": "uint8",
        "scaling": "centred",
        "steps_per_execution": 1,
        "bf16": True,
    },
}

# The lesson pipeline on a GPU: the data stays on the device, mixed_float16,
# XLA, many steps per execution.
LESSON_GPU = {
    model: {k: v for k, v in dict(settings, steps_per_execution=32).items() if k != "bf16"}
    for model, settings in LESSON_CPU.items()
}
LESSON_GPU["cifar10_cnn"]["batch_size"] = 1024

# The paired throughput measurement: images per chunk (a multiple of both
# batch sizes) and rounds.
PAIRED_CHUNK = {"mnist_mlp": 24_576, "cifar10_cnn": 12_288}
PAIRED_ROUNDS = 6

QUICK_TRAIN, QUICK_VAL = 256, 64


class UsageError(Exception):
    """A problem with the command line or its files; printed as one line."""


# --------------------------------------------------------------------------
# Data


def _read_npz(path, dataset):
    """Read Keras-layout arrays (x_train, y_train, x_test, y_test) from an .npz.

    MNIST goes through the data layer's checks (``cnn_course.data.load_mnist``);
    CIFAR-10, which the data layer reads only as pickles or JPEGs, is checked
    here the same way: uint8 images of (N, 32, 32, 3), one integer label 0-9
    per image, in both splits.
    Returns ((x_train, y_train), (x_test, y_test)), x uint8, y flattened.
    Raises UsageError when the file does not exist, DataError (from
    cnn_course.data) when it is not a readable .npz in that layout."""
    from cnn_course import data

    path = Path(path).expanduser()
    if not path.exists():
        raise UsageError(f"no such file: {path}")
    if not path.is_file():
        raise UsageError(f"{path}: not a regular file (a folder, FIFO, socket or device)")
    if not zipfile.is_zipfile(path):  # else NumPy tries it as a pickle and says so
        raise data.DataError(f"{path}: not an .npz file (an .npz is a zip archive of arrays)")
    if dataset == "mnist":
        return data.load_mnist(path=path, download=False)
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in keys if k not in f.files]
            if missing:
                raise data.DataError(f"{path}: not an .npz with {', '.join(keys)} (missing {', '.join(missing)})")
            arrays = {k: f[k] for k in keys}
    except data.DataError:
        raise
    except ValueError as e:
        if "allow_pickle" not in str(e):
            raise data.DataError(f"{path}: not a readable .npz file ({' '.join(str(e).split())})") from None
        raise data.DataError(
            f"{path}: holds object arrays (pickled Python objects), which are not loaded: they could run code"
        ) from None
    except Exception as e:  # BadZipFile, zlib.error, EOFError, a single .npy (no .files)
        raise data.DataError(
            f"{path}: not a readable .npz file, truncated or corrupt ({type(e).__name__}: {' '.join(str(e).split())})"
        ) from None
    splits = []
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"].reshape(-1)
        if x.dtype != np.uint8 or x.shape[1:] != (32, 32, 3) or len(x) != len(y) or not len(x):
            raise data.DataError(
                f"{path}: x_{split} must be uint8 of shape (N, 32, 32, 3) with one label "
                f"per image; found {x.dtype} {x.shape} and {len(y)} labels"
            )
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() > 9:
            raise data.DataError(
                f"{path}: y_{split} must hold integer labels 0-9; found {y.dtype} from {y.min()} to {y.max()}"
            )
        splits.append((x, y))
    return tuple(splits)


def _standin(dataset, n):
    """A labelled stand-in of ``n`` images shaped like the real dataset
    (cnn_course.data's digits resized to 28x28, repeated, or its generated
    CIFAR-like images). Returns (x uint8, y uint8, description)."""
    from cnn_course import data

    if dataset == "mnist":
        (x, y), (xt, yt) = data.load_digits28()
        x, y = np.concatenate([x, xt]), np.concatenate([y, yt])
        idx = np.arange(n) % len(x)
        return (
            x[idx],
            y[idx],
            (
                f"STAND-IN for MNIST: scikit-learn digits resized to 28x28, "
                f"repeated to {n} images (real MNIST not found)"
            ),
        )
    chunks = [data.make_cifar10_standin(n_train=min(5000, n - i), n_test=10, seed=i)[0] for i in range(0, n, 5000)]
    x = np.concatenate([c[0] for c in chunks])
    y = np.concatenate([c[1] for c in chunks])
    return x, y, (f"STAND-IN for CIFAR-10: {n} generated 32x32 colour-and-stripe images (real CIFAR-10 not found)")


def load_split(model, npz=None, quick=False, standin=False):
    """Load the data ``model`` trains on and split off its validation set as
    the original course did (MNIST: the last 20% of the training images;
    CIFAR-10: the first 5,000).

    Real data comes from ``npz`` when given, else from cnn_course.data without
    downloading; when none is found (or ``standin``), a labelled stand-in.
    ``quick`` keeps 256 training and 64 validation images.

    Returns dict(x_train, y_train, x_val, y_val, description, real). Raises
    UsageError for a missing ``npz``; DataError for an unusable one and
    from the data layer."""
    task = TASKS[model]
    dataset = task["dataset"]
    real, x = False, None
    if npz is not None and not standin:
        (x, y), _ = _read_npz(npz, dataset)
        description, real = f"{'MNIST' if dataset == 'mnist' else 'CIFAR-10'} (real, {len(x)} train, from {npz})", True
    elif not standin:
        from cnn_course import data

        loader = data.load_mnist if dataset == "mnist" else data.load_cifar10
        try:
            (x, y), _ = loader(download=False)
            title = "MNIST" if dataset == "mnist" else "CIFAR-10"
            description, real = f"{title} (real, {len(x)} train images, via cnn_course.data)", True
        except data.DatasetNotFound:
            x = None
    if x is None:
        n = 60_000 if dataset == "mnist" else 50_000
        if quick:
            n = QUICK_TRAIN + QUICK_VAL
        x, y, description = _standin(dataset, n)
    y = y.astype(np.int32)
    if dataset == "mnist":
        n_val = task["n_val"] if len(x) >= 60_000 else max(1, len(x) // 5)
        x_tr, y_tr, x_va, y_va = x[:-n_val], y[:-n_val], x[-n_val:], y[-n_val:]
    else:
        n_val = min(task["n_val"], len(x) // 10)
        x_tr, y_tr, x_va, y_va = x[n_val:], y[n_val:], x[:n_val], y[:n_val]
    if quick:
        x_tr, y_tr, x_va, y_va = x_tr[:QUICK_TRAIN], y_tr[:QUICK_TRAIN], x_va[:QUICK_VAL], y_va[:QUICK_VAL]
        description += f"; quick: {len(x_tr)} train / {len(x_va)} validation"
    return {
        "x_train": np.ascontiguousarray(x_tr),
        "y_train": y_tr,
        "x_val": np.ascontiguousarray(x_va),
        "y_val": y_va,
        "description": description,
        "real": real,
    }


# --------------------------------------------------------------------------
# Models


def build_model(model, settings, adapt_on=None):
    """Build the lesson's model: the MNIST MLP (669,706 trainable parameters)
    or the CIFAR-10 CNN (528,054). With ``settings["inputs"] == "uint8"``
    the model scales its input itself, by ``settings["scaling"]``:
    "rescale" (Rescaling(1/255)), "centred" (Rescaling(1/127.5, offset=-1))
    or "normalization" (a Normalization layer adapted on ``adapt_on``);
    otherwise it takes float32 images already in [0, 1]. Under mixed
    precision the softmax layer stays float32.

    Returns an uncompiled keras.Sequential, built under the current global
    dtype policy. Raises KeyError for an unknown scaling."""
    import keras
    from keras import layers

    shape = (28, 28) if model == "mnist_mlp" else (32, 32, 3)
    uint8 = settings["inputs"] == "uint8"
    stack = [keras.Input(shape, dtype="uint8" if uint8 else "float32")]
    if uint8:
        scaling = settings["scaling"]
        if scaling == "normalization":
            norm = layers.Normalization()
            norm.adapt(adapt_on)
            stack.append(norm)
        elif scaling == "rescale":
            stack.append(layers.Rescaling(1 / 255))
        elif scaling == "centred":
            stack.append(layers.Rescaling(1 / 127.5, offset=-1))
        else:
            raise KeyError(f"unknown scaling {scaling!r}")
    if model == "mnist_mlp":
        stack += [
            layers.Flatten(),
            layers.Dense(512, activation="relu"),
            layers.Dropout(0.2),
            layers.Dense(512, activation="relu"),
            layers.Dropout(0.2),
        ]
    else:
        for filters in (16, 32, 64):
            stack += [
                layers.Conv2D(filters, kernel_size=2, padding="same", activation="relu"),
                layers.MaxPooling2D(pool_size=2),
            ]
        stack += [layers.Dropout(0.3), layers.Flatten(), layers.Dense(500, activation="relu"), layers.Dropout(0.4)]
    float32_out = bool(settings.get("mixed_precision"))
    stack.append(layers.Dense(10, activation="softmax", dtype="float32" if float32_out else None))
    return keras.Sequential(stack, name=model)


def make_optimizer(settings, steps_per_epoch):
    """Return the optimizer ``settings`` name (rmsprop or adam) at its
    learning_rate; with schedule "cosine" the rate decays to 0 over
    ``schedule_epochs`` epochs of ``steps_per_epoch`` steps. Raises KeyError
    for an unknown optimizer name."""
    import keras

    lr = settings["learning_rate"]
    if settings.get("schedule") == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=settings["schedule_epochs"] * steps_per_epoch)
    return {"rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam}[settings["optimizer"]](lr)


def _whole(v):
    """Return True if v is an int (not a bool) of at least 1."""
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _rate(v):
    """Return True if v is a finite number (not a bool) above 0."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


# What --lesson may set: key -> (check, what the value must be).
OVERRIDES = {
    "batch_size": (_whole, "a whole number, at least 1"),
    "optimizer": (lambda v: v in ("rmsprop", "adam"), "rmsprop or adam"),
    "learning_rate": (_rate, "a number above 0"),
    "schedule": (lambda v: v in (None, "cosine"), "cosine or null"),
    "schedule_epochs": (_whole, "a whole number, at least 1"),
    "inputs": (lambda v: v in ("float32", "uint8"), "float32 or uint8"),
    "scaling": (
        lambda v: v in (None, "rescale", "centred", "normalization"),
        "rescale, centred, normalization or null",
    ),
    "normalize_on": (lambda v: v is None or _whole(v), "a whole number of images, or null"),
    "steps_per_execution": (_whole, "a whole number, at least 1"),
    "mixed_precision": (
        lambda v: v in (None, "float32", "mixed_float16", "mixed_bfloat16"),
        "mixed_float16, mixed_bfloat16, float32 or null",
    ),
    "jit_compile": (lambda v: v is True or v is False or v == "auto", "true, false or auto"),
}


def parse_overrides(text):
    """Parse ``key=value,key=value`` (values as JSON where they parse, else
    strings) into a dict and check each against OVERRIDES. Raises UsageError
    for an item without '=', an unknown key or a value it cannot take."""
    out = {}
    for item in filter(None, (t.strip() for t in (text or "").split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise UsageError(f"--lesson takes key=value items, not {item!r}")
        if key not in OVERRIDES:
            raise UsageError(f"--lesson {item}: unknown setting {key!r}; known: {', '.join(OVERRIDES)}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value.strip()
        check, what = OVERRIDES[key]
        if not check(out[key]):
            raise UsageError(f"--lesson {item}: {key} must be {what}")
    return out


def _device_batches(x, y, batch_size, shuffle, seed):
    """Wrap arrays in a keras.utils.PyDataset whose batches are slices of
    tensors kept on the accelerator (reshuffled on the device each epoch),
    so no image crosses the host-device link after the first copy.

    Returns the PyDataset. Raises nothing of its own."""
    import keras
    from keras import ops

    class DeviceBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.x, self.y = ops.convert_to_tensor(x), ops.convert_to_tensor(y)
            self.rng = np.random.default_rng(seed)
            self.order_x, self.order_y = self.x, self.y
            self.on_epoch_end()

        def __len__(self):
            return math.ceil(len(x) / batch_size)

        def __getitem__(self, i):
            s = slice(i * batch_size, (i + 1) * batch_size)
            return self.order_x[s], self.order_y[s]

        def on_epoch_end(self):
            if shuffle:
                perm = ops.convert_to_tensor(self.rng.permutation(len(x)).astype("int32"))
                self.order_x = ops.take(self.x, perm, axis=0)
                self.order_y = ops.take(self.y, perm, axis=0)

    return DeviceBatches()


# --------------------------------------------------------------------------
# One training (runs in a subprocess)


def lesson_precision(model, settings, quick):
    """Return the dtype policy precision_policy("auto") picks on this CPU for
    the lesson's ``model`` with ``settings``, as the notebooks call it: given
    the model's builder and a batch, measured once and cached; unmeasured
    (and without importing Keras) when ``quick``.

    Returns "mixed_bfloat16" or None (float32). Raises what Keras raises."""
    from cnn_course.backends import keras_backend
    from cnn_course.speed import choose_precision, unmeasured_cpu_precision

    if quick:
        policy = unmeasured_cpu_precision(keras_backend())[0]
    else:
        import keras

        shape = (28, 28) if model == "mnist_mlp" else (32, 32, 3)
        bs = settings["batch_size"]
        x = np.zeros((bs, *shape), "float32" if settings["inputs"] == "float32" else "uint8")
        y = keras.utils.to_categorical(np.arange(bs) % 10, 10)
        # the notebooks' softmax layer computes in float32 whatever the policy; a
        # Normalization layer (adapted on data) is timed as the Rescaling it replaces
        built = dict(
            settings,
            mixed_precision="mixed_bfloat16",
            scaling="centred" if settings["scaling"] == "normalization" else settings["scaling"],
        )
        policy, _ = choose_precision(model=lambda: build_model(model, built), data=(x, y), quick=False)
    return "mixed_bfloat16" if policy == "mixed_bfloat16" else None


def pipeline_settings(model, pipeline, on_gpu=False, overrides=None, quick=True):
    """Return the settings of one pipeline: the original's, or the lesson's
    for a CPU or (``on_gpu``) a GPU, with ``overrides`` applied to the lesson.
    The lesson's precision on a CPU is `lesson_precision`'s (not measured
    with ``quick``, nor when ``overrides`` name mixed_precision).

    The dict holds batch_size, optimizer, learning_rate (and schedule),
    inputs ("float32": scaled to [0, 1] before training; "uint8": scaled by
    the model's first layer), scaling (that layer), mixed_precision,
    jit_compile, steps_per_execution and a readable ``data`` line.
    Raises UsageError for overrides naming an unknown input or scaling."""
    if pipeline == "original":
        return dict(
            ORIGINAL[model],
            inputs="float32",
            scaling=None,
            mixed_precision=None,
            jit_compile="auto",
            steps_per_execution=1,
            data="float32 arrays in [0, 1], one-hot labels",
        )
    if on_gpu:
        settings, bf16 = dict(LESSON_GPU[model], mixed_precision="mixed_float16", jit_compile=True), False
    else:
        settings = dict(LESSON_CPU[model])
        bf16 = settings.pop("bf16")
        settings.update(mixed_precision=None, jit_compile="auto")
    settings.update(overrides or {})
    if settings.get("normalize_on"):
        settings.update(inputs="uint8", scaling="normalization")
    if settings["inputs"] not in ("float32", "uint8") or (
        settings["inputs"] == "uint8" and settings["scaling"] not in ("rescale", "centred", "normalization")
    ):
        raise UsageError(
            "--lesson takes inputs=float32, or inputs=uint8 with scaling=rescale or scaling=centred (or normalize_on=N)"
        )
    if not on_gpu and bf16 and "mixed_precision" not in (overrides or {}):
        # as precision_policy("auto") decides in the notebooks, per backend and model
        settings["mixed_precision"] = lesson_precision(model, settings, quick)
    if settings["inputs"] == "float32":
        data = "float32 arrays in [0, 1]"
    else:
        layer = {
            "rescale": "Rescaling(1/255)",
            "centred": "Rescaling(1/127.5, offset=-1)",
            "normalization": f"Normalization (adapted on {settings.get('normalize_on')} images)",
        }
        data = f"uint8 arrays, {layer[settings['scaling']]} in the model"
    if on_gpu:
        data = data.replace("arrays", "on the device (PyDataset)")
    settings["data"] = data + ", one-hot labels"
    return settings


def prepare(model, pipeline, settings, d, on_gpu=False, seed=0):
    """Build and compile one pipeline's model and its training arrays, as the
    course code (original) or the lesson notebook (lesson) does it.

    Returns dict(net, fit (the keyword arguments of net.fit), x, y (the
    training arrays as handed to fit), data_bytes). The mixed-precision
    policy is set only while the model is built. Raises nothing of its own."""
    import keras

    keras.utils.set_random_seed(seed)
    x, x_val = d["x_train"], d["x_val"]
    if settings["inputs"] == "float32":
        # As the course wrote it: scale a float32 copy of every image.
        x, x_val = x.astype("float32") / 255, x_val.astype("float32") / 255
    # One-hot labels, categorical cross-entropy: what the course and the notebooks teach.
    y = keras.utils.to_categorical(d["y_train"], 10)
    y_val = keras.utils.to_categorical(d["y_val"], 10)
    bs = settings["batch_size"]
    if on_gpu:
        fit = dict(
            x=_device_batches(x, y, bs, True, seed), validation_data=_device_batches(x_val, y_val, 1024, False, 0)
        )
    else:
        fit = dict(x=x, y=y, batch_size=bs, shuffle=True, validation_data=(x_val, y_val))
        if pipeline == "lesson":
            fit["validation_batch_size"] = 1024
    keras.mixed_precision.set_global_policy(settings["mixed_precision"] or "float32")
    try:
        adapt_on = d["x_train"][: settings["normalize_on"]] if settings.get("normalize_on") else None
        net = build_model(model, settings, adapt_on=adapt_on)
        net.compile(
            optimizer=make_optimizer(settings, math.ceil(len(x) / bs)),
            loss="categorical_crossentropy",
            metrics=["accuracy"],
            jit_compile=settings["jit_compile"],
            steps_per_execution=settings["steps_per_execution"],
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return {"net": net, "fit": fit, "x": x, "y": y, "data_bytes": int(x.nbytes + y.nbytes)}


def train_once(spec):
    """Train one pipeline as ``spec`` says (model, pipeline, npz, quick,
    standin, max_epochs, seed, gpu_path, lesson_overrides) and measure it.

    Returns a dict of settings, per-epoch records and the figures (images/s,
    time and epochs to target, peak RSS). Raises UsageError, DataError."""
    d = load_split(spec["model"], spec.get("npz"), spec["quick"], spec["standin"])
    import keras

    from cnn_course.speed import describe_machine, gpu_name
    from cnn_course.timing import target_clock

    model, pipeline = spec["model"], spec["pipeline"]
    gpu, machine = gpu_name(), describe_machine()
    on_gpu = pipeline == "lesson" and (gpu is not None or spec.get("gpu_path", False))
    settings = pipeline_settings(model, pipeline, on_gpu, spec.get("lesson_overrides"), spec["quick"])
    target = TASKS[model]["target"]
    stop = d["real"] and not spec["quick"]
    epochs = spec["max_epochs"]
    if settings.get("schedule") and settings.get("schedule_epochs") and not spec["quick"]:
        epochs = min(epochs, settings["schedule_epochs"])  # the rate is 0 after that

    t0 = time.perf_counter()
    p = prepare(model, pipeline, settings, d, on_gpu, spec["seed"])
    net = p["net"]
    clock = target_clock(target, verbose=False, start=t0, stop=stop)
    with tempfile.TemporaryDirectory() as tmp:
        best = keras.callbacks.ModelCheckpoint(str(Path(tmp) / "best.keras"), save_best_only=True)
        net.fit(**p["fit"], epochs=epochs, verbose=0, callbacks=[clock, best])
    total_s = time.perf_counter() - t0

    rec = [
        {
            "train_s": e["train_s"],
            "epoch_s": e["epoch_s"],
            "since_start_s": e["seconds"],
            "val_accuracy": e["val_accuracy"],
        }
        for e in clock.epochs
    ]
    reached = [i for i, e in enumerate(rec) if e["val_accuracy"] >= target]
    steady = rec[1:] if len(rec) > 1 else rec  # the first epoch also compiles
    train_s = statistics.median(e["train_s"] for e in steady)
    n_train = len(d["x_train"])
    result = {
        "model": model,
        "pipeline": pipeline,
        "settings": settings,
        "params": sum(int(np.prod(w.shape)) for w in net.trainable_weights),
        "data": d["description"],
        "real_data": d["real"],
        "n_train": n_train,
        "n_val": len(d["x_val"]),
        "device": machine["where"],
        "versions": machine["versions"],
        "epochs": rec,
        "total_s": total_s,
        "data_bytes": p["data_bytes"],
        "images_per_s": n_train / train_s,
        "epoch_train_s": train_s,
        "epoch_s": statistics.median(e["epoch_s"] for e in steady),
        "first_epoch_s": rec[0]["epoch_s"],
        "target_val_accuracy": target,
        "epochs_to_target": reached[0] + 1 if reached and stop else None,
        "time_to_target_s": rec[reached[0]]["since_start_s"] if reached and stop else None,
        "best_val_accuracy": max(e["val_accuracy"] for e in rec),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if gpu and keras.backend.backend() == "jax":
        import jax

        stats = jax.devices()[0].memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            result["device_peak_mb"] = stats["peak_bytes_in_use"] / 2**20
    return result


def paired_throughput(spec):
    """Measure both pipelines' training throughput in one process, in
    alternating chunks of ``spec["chunk_images"]`` images (ABBA order, after
    one warm-up chunk each), so that both meet the same load on a shared
    machine. A chunk's images/s counts its batches after the first step
    (which pays the chunk's start-up), or the whole fit when it has fewer
    than three steps.

    Returns dict(rounds, chunk_images, original and lesson images/s per
    round, ratio per round, their medians). Raises UsageError, DataError."""
    from cnn_course.speed import gpu_name
    from cnn_course.timing import compare, images_per_second

    gpu = gpu_name()
    if gpu or spec.get("gpu_path"):
        return {"skipped": f"the lesson uses its GPU pipeline ({gpu or '--gpu-path'}); see the full runs"}
    d = load_split(spec["model"], spec.get("npz"), spec["quick"], spec["standin"])
    model = spec["model"]
    prepared = {}
    for pipeline in PIPELINES:
        settings = pipeline_settings(model, pipeline, False, spec.get("lesson_overrides"), spec["quick"])
        prepared[pipeline] = (settings["batch_size"], prepare(model, pipeline, settings, d, False, spec["seed"]))
    lcm = math.lcm(*(bs for bs, _ in prepared.values()))
    n = min(len(d["x_train"]), spec["chunk_images"])
    n = n // lcm * lcm or n
    # a quick run's chunk can be less than a batch: then it is one smaller batch, as fit would make it
    chunks = {
        pipeline: (lambda bs=bs, p=p: images_per_second(p["net"], p["x"], p["y"], min(bs, n), n))
        for pipeline, (bs, p) in prepared.items()
    }
    measured = compare(chunks["original"], chunks["lesson"], spec["rounds"])
    return {
        "rounds": spec["rounds"],
        "chunk_images": n,
        "original_images_per_s": measured["plain_rates"],
        "lesson_images_per_s": measured["lever_rates"],
        "ratios": measured["ratios"],
        "median_ratio": measured["ratio"],
        "original_median": measured["plain"],
        "lesson_median": measured["lever"],
    }


def _child_main(spec_json):
    """Entry point of a measuring subprocess: print one RESULT line."""
    spec = json.loads(spec_json)
    try:
        result = paired_throughput(spec) if spec["pipeline"] == "paired" else train_once(spec)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from cnn_course.timing import RESULT_TAG

    print(RESULT_TAG + json.dumps(result), flush=True)
    return 0


# --------------------------------------------------------------------------
# The benchmark (parent process)


def run_child(spec):
    """Run one training in a fresh Python process.

    Returns its result dict. Raises RuntimeError with the child's last error
    line when it fails."""
    from cnn_course.timing import run_child as run

    return run([str(Path(__file__).resolve()), "--child", json.dumps(spec)], f"{spec['model']} {spec['pipeline']} run")


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _ratio(a, b):
    return a / b if a is not None and b else None


def summarize(model, runs, paired=None):
    """Combine the runs of one model into its figures: medians over repeats
    per pipeline (peak RSS: the largest), and the ratios. With ``paired``
    (the result of paired_throughput) ``speedup_throughput`` is its median
    ratio, and the full runs' ratio is kept as ``speedup_throughput_full_runs``.

    Returns the model's entry of results.json."""
    entry = {
        "data": runs[0]["data"],
        "real_data": runs[0]["real_data"],
        "n_train": runs[0]["n_train"],
        "n_val": runs[0]["n_val"],
        "target_val_accuracy": TASKS[model]["target"],
    }
    for p in PIPELINES:
        mine = [r for r in runs if r["pipeline"] == p]
        entry[p] = {
            "settings": mine[0]["settings"],
            **{
                key: _median(r[key] for r in mine)
                for key in ("images_per_s", "epoch_train_s", "epoch_s", "time_to_target_s", "epochs_to_target")
            },
            "reached_target": f"{sum(r['epochs_to_target'] is not None for r in mine)}/{len(mine)}",
            "peak_rss_mb": max(r["peak_rss_mb"] for r in mine),
            "data_mb": mine[0]["data_bytes"] / 2**20,
            "runs": mine,
        }
        if any("device_peak_mb" in r for r in mine):
            entry[p]["device_peak_mb"] = max(r.get("device_peak_mb", 0) for r in mine)
    o, les = entry["original"], entry["lesson"]
    entry["speedup_throughput_full_runs"] = _ratio(les["images_per_s"], o["images_per_s"])
    entry["speedup_throughput"] = entry["speedup_throughput_full_runs"]
    if paired:
        entry["paired"] = paired
        if not paired.get("skipped"):
            entry["speedup_throughput"] = paired["median_ratio"]
    entry["speedup_time_to_target"] = _ratio(o["time_to_target_s"], les["time_to_target_s"])
    original_missed = [r for r in o["runs"] if r["time_to_target_s"] is None]
    if entry["real_data"] and les["time_to_target_s"] and original_missed and len(original_missed) == len(o["runs"]):
        # The original never got there: it trained this long without reaching the
        # target, so the speed-up is at least this much (a lower bound, not nothing).
        trained_s = _median(r["epochs"][-1]["since_start_s"] for r in original_missed)
        entry["original_trained_without_target_s"] = trained_s
        entry["speedup_time_to_target_at_least"] = trained_s / les["time_to_target_s"]
    entry["speedup_epoch_time"] = _ratio(o["epoch_s"], les["epoch_s"])
    entry["ratio_epochs_to_target"] = _ratio(les["epochs_to_target"], o["epochs_to_target"])
    entry["ratio_peak_rss"] = _ratio(les["peak_rss_mb"], o["peak_rss_mb"])
    if not entry["real_data"]:
        entry["note"] = "stand-in data: throughput only, no time to target"
    return entry


def _fmt(v, spec="{:,.0f}", none="-"):
    return none if v is None else spec.format(v)


def table(results):
    """Return the printable table of a results dict."""
    from cnn_course.reports import text_table

    rows = []
    for model, e in results["models"].items():
        if model not in PAIRED_MODELS:
            continue
        for p in PIPELINES:
            f = e[p]
            rows.append(
                [
                    model,
                    p,
                    _fmt(f["images_per_s"]),
                    _fmt(f["epoch_s"], "{:.2f}"),
                    _fmt(f["epoch_train_s"], "{:.3f}"),
                    _fmt(f["time_to_target_s"], "{:.1f} s"),
                    _fmt(f["epochs_to_target"], "{:g}"),
                    f["reached_target"],
                    _fmt(f["peak_rss_mb"]),
                ]
            )
        rows.append(
            [
                model,
                "ratio",
                *(
                    _fmt(e[k], "{:.2f}x") if k else ""
                    for k in (
                        "speedup_throughput_full_runs",
                        "speedup_epoch_time",
                        None,
                        "speedup_time_to_target",
                        "ratio_epochs_to_target",
                        None,
                        "ratio_peak_rss",
                    )
                ),
            ]
        )
        if e.get("speedup_time_to_target_at_least"):
            rows.append(
                [
                    model,
                    "ratio",
                    (
                        f"time to target at least {e['speedup_time_to_target_at_least']:.2f}x: "
                        f"the original trained {e['original_trained_without_target_s']:.0f} s without reaching it"
                    ),
                ]
            )
        pr = e.get("paired")
        if pr and not pr.get("skipped"):
            rows.append(
                [
                    model,
                    "paired",
                    (
                        f"original {pr['original_median']:,.0f} images/s, lesson "
                        f"{pr['lesson_median']:,.0f} images/s: {pr['median_ratio']:.2f}x (median of "
                        f"{pr['rounds']} alternating chunks of {pr['chunk_images']:,} images; "
                        f"{min(pr['ratios']):.2f}x-{max(pr['ratios']):.2f}x)"
                    ),
                ]
            )
    paired_models = [m for m in results["models"] if m in PAIRED_MODELS]
    head = [
        "model".ljust(12),
        "pipeline".ljust(9),
        *(
            name.rjust(w)
            for name, w in (
                ("images/s", 9),
                ("epoch s", 8),
                ("train s", 8),
                ("to target", 10),
                ("epochs", 6),
                ("reached", 7),
                ("peak RSS MB", 11),
            )
        ),
    ]
    lines = [text_table(head, rows, right=set(range(2, 9)), sep=" ")] if paired_models else []
    if paired_models:
        lines.append(
            "ratios: images/s and times are lesson/original speed-ups; epochs and peak RSS are "
            "lesson/original. Medians over the runs that reached the target (reached: runs/all)."
        )
        lines.append(
            "paired: both pipelines trained in one process in alternating chunks, so both meet the "
            "same load; this is speedup_throughput in the JSON."
        )
    if "modern_cnn" in results["models"]:
        lines.append(modern_line(results["models"]["modern_cnn"]))
    for model, e in results["models"].items():
        lines.append(f"{model}: data: {e['data']}")
        if e.get("note"):
            lines.append(f"{model}: {e['note']}")
    lines.append(f"device: {results['device']} ({results['versions']})")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# The modern CNN: its lesson notebook, run as the runner runs it

_MODERN_EPOCH = re.compile(
    r"^epoch (\d+): training accuracy ([\d.]+)%, test accuracy ([\d.]+)%, "
    r"([\d,]+) images/s, ([\d.]+) min since the start$",
    re.MULTILINE,
)
_MODERN_REACHED = re.compile(
    r"^Reached (\d+)% test accuracy at epoch (\d+), ([\d.]+) min after the start$", re.MULTILINE
)


def parse_modern(text):
    """Read what the modern-CNN lesson printed.

    Returns dict(epochs: list of {epoch, train_accuracy, test_accuracy,
    images_per_s, minutes}, images_per_s: the median over the epochs after
    the first (which also compiles; the first when there is only one),
    minutes_to: {"85": minutes or None, "90": ...}). Raises RuntimeError when
    no epoch line is found (the notebook and this parser disagree)."""
    epochs = [
        {
            "epoch": int(e),
            "train_accuracy": float(a) / 100,
            "test_accuracy": float(t) / 100,
            "images_per_s": float(speed.replace(",", "")),
            "minutes": float(m),
        }
        for e, a, t, speed, m in _MODERN_EPOCH.findall(text)
    ]
    if not epochs:
        raise RuntimeError("modern_cnn: the lesson printed no epoch line this benchmark can read")
    reached = {target: float(minutes) for target, _, minutes in _MODERN_REACHED.findall(text)}
    steady = epochs[1:] or epochs
    return {
        "epochs": epochs,
        "images_per_s": statistics.median(e["images_per_s"] for e in steady),
        "minutes_to": {target: reached.get(target) for target in ("85", "90")},
    }


def run_modern(quick):
    """Run training-speed/modern_cnn.ipynb headless (quick sizes with ``quick``) and measure it.

    The executed copy and the model are written to a temporary folder, removed
    afterwards. Returns the ``modern_cnn`` entry of results.json: data,
    real_data, test_accuracy (6 test views averaged, fraction), wall_s (the whole
    notebook), and what `parse_modern` reads. Raises RuntimeError when the
    lesson fails, KeyboardInterrupt on Ctrl-C."""
    from cnn_course.lessons import lesson_parameters
    from cnn_course.runner import LESSONS, execute_notebook

    with tempfile.TemporaryDirectory(prefix="train-speed-modern-") as tmp:
        parameters = lesson_parameters(
            "modern-cnn", quick, {"VERBOSE": 0, "CHECKPOINT": str(Path(tmp) / "modern_cnn.keras")}
        )
        result = execute_notebook(REPO / LESSONS["modern-cnn"], parameters, tmp, quick=quick)
    if result["status"] != "passed":
        raise RuntimeError(f"modern_cnn: the lesson failed: {result['error']}")
    accuracy = result["test_accuracy"]
    return {
        "data": result["data"],
        "real_data": "STAND-IN" not in (result["data"] or "STAND-IN"),
        "test_accuracy": None if accuracy is None else accuracy / 100,
        "wall_s": result["wall_time_s"],
        **parse_modern(result["text"]),
    }


def modern_line(e):
    """Return the table's line for the modern CNN's entry `e`."""
    reached = ", ".join(
        f"{t}% at {e['minutes_to'][t]:.1f} min" if e["minutes_to"][t] is not None else f"{t}% not reached"
        for t in ("85", "90")
    )
    accuracy = "-" if e["test_accuracy"] is None else f"{100 * e['test_accuracy']:.2f}%"
    return (
        f"modern_cnn   test accuracy {accuracy} (6 views averaged) after {len(e['epochs'])} epochs; {reached} "
        f"(test accuracy after each epoch, clock from the notebook's imports cell); "
        f"{e['images_per_s']:,.0f} images/s; whole notebook {e['wall_s'] / 60:.1f} min"
    )


# numpy's global seed, which keras.utils.set_random_seed sets, takes 0 to 2**32 - 1.
MAX_SEED = 2**32 - 1


def seed_value(text):
    """argparse type of --seed: returns the int; raises ArgumentTypeError
    unless it is a whole number from 0 to MAX_SEED."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(
            f"{text!r}: must be a whole number from 0 to {MAX_SEED:,} (what numpy's random seed accepts)"
        )
    return value


def parse_args(argv=None):
    """Parse the command line. Returns argparse.Namespace; exits with a usage
    message on bad arguments."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--models", default=",".join(MODELS), help=f"comma-separated, from {', '.join(MODELS)} (default: all)"
    )
    p.add_argument(
        "--max-epochs",
        type=int,
        default=None,
        help="epochs at most; training stops at the target (default: 20 on real data, "
        "3 on stand-in data, 2 with --quick)",
    )
    p.add_argument("--repeats", type=int, default=1, help="runs of each pipeline, alternating (default 1)")
    p.add_argument(
        "--paired-rounds",
        type=int,
        default=None,
        help=f"rounds of the paired throughput measurement, 0 to skip it (default {PAIRED_ROUNDS}, 2 with --quick)",
    )
    p.add_argument("--quick", action="store_true", help="smoke run: 256 training images, 2 epochs")
    p.add_argument("--standin", action="store_true", help="use the labelled stand-ins even if real data exists")
    p.add_argument("--mnist-npz", help="read MNIST from this Keras-layout .npz")
    p.add_argument("--cifar-npz", help="read CIFAR-10 from an .npz with x_train, y_train, x_test, y_test")
    p.add_argument(
        "--gpu-path", action="store_true", help="use the lesson's GPU settings even without a GPU (to test that path)"
    )
    p.add_argument(
        "--lesson",
        default="",
        metavar="KEY=VALUE,...",
        help="override lesson settings for an experiment, e.g. "
        "batch_size=256,learning_rate=0.003,schedule=cosine,schedule_epochs=6,mixed_precision=null",
    )
    p.add_argument(
        "--backend",
        default=None,
        help="the Keras backend to train on: tensorflow, jax or torch (default: $KERAS_BACKEND, else tensorflow)",
    )
    p.add_argument(
        "--seed",
        type=seed_value,
        default=42,
        help=f"random seed of the first repeat, the next get +1 (0 to {MAX_SEED:,}; default 42)",
    )
    p.add_argument("--out", default=str(DEFAULT_OUT), help=f"JSON file to write (default {DEFAULT_OUT})")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in MODELS]
    if unknown or not args.models:
        p.error(f"unknown model {', '.join(unknown) or '(none)'}; choose from {', '.join(MODELS)}")
    if args.repeats < 1 or (args.max_epochs is not None and args.max_epochs < 1):
        p.error("--repeats and --max-epochs must be at least 1")
    if args.seed + args.repeats - 1 > MAX_SEED:
        p.error(f"--seed {args.seed} with --repeats {args.repeats}: the last repeat's seed would be over {MAX_SEED:,}")
    if args.paired_rounds is None:
        args.paired_rounds = 2 if args.quick else PAIRED_ROUNDS
    elif args.paired_rounds < 0:
        p.error("--paired-rounds must be 0 or more")
    return args


def check_out(path):
    """Return `path` as an absolute Path if the results file can be written there.

    Creates its folder when missing (and writes and removes a probe file in
    it). Raises UsageError when `path` is a folder, lies inside a file, or its
    folder cannot be written: checked before anything trains."""
    from cnn_course.reports import check_out_dir

    out = Path(path).expanduser().absolute()
    if out.is_dir():
        raise UsageError(f"--out {path}: is a folder; give a file name, e.g. {out / 'results.json'}")
    try:
        check_out_dir(out.parent)
    except ValueError as e:
        raise UsageError(f"--out {path}: {e}") from None
    if out.exists() and not os.access(out, os.W_OK):
        raise UsageError(f"--out {path}: the file cannot be written (no permission)")
    return out


def write_results(results, out):
    """Write `results` as JSON to `out` whole or not at all: into a temporary
    file beside it, then renamed over it. Raises OSError (nothing is left)."""
    from cnn_course.reports import write_atomic

    write_atomic(out, json.dumps(results, indent=2) + "\n")


def main(argv=None):
    """Run the benchmark. Returns the exit status: 0, 1 on a failed run or a
    data error, 2 on a usage error, 130 on Ctrl-C. Everything is checked
    before anything trains; the table is printed before the file is written,
    and also, for the models that finished, when a later one fails."""
    args = parse_args(argv)
    if args.child:
        return _child_main(args.child)
    from cnn_course import data

    results = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name] + (sys.argv[1:] if argv is None else argv)),
        "quick": args.quick,
        "repeats": args.repeats,
        "models": {},
    }
    from cnn_course.backends import BackendError, check_backend, keras_backend

    try:
        out = check_out(args.out)
        # checked before any training; the training subprocesses inherit KERAS_BACKEND
        os.environ["KERAS_BACKEND"] = check_backend(keras_backend(args.backend))
        overrides = parse_overrides(args.lesson)
        if overrides:
            results["lesson_overrides"] = overrides
            for model in args.models:  # a bad combination fails here, before any training
                if model in PAIRED_MODELS:
                    pipeline_settings(model, "lesson", args.gpu_path, overrides)
        plan = []
        for model in args.models:
            if model not in PAIRED_MODELS:
                continue
            npz = args.mnist_npz if TASKS[model]["dataset"] == "mnist" else args.cifar_npz
            # Load once here: bad data fails before any training, and a first
            # decode (CIFAR-10 JPEGs) is cached before any timing.
            plan.append((model, npz, load_split(model, npz, args.quick, args.standin)["real"]))
    except (UsageError, BackendError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except data.DataError as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    status = 0
    try:
        for model, npz, real in plan:
            max_epochs = args.max_epochs or (2 if args.quick else 20 if real else 3)
            print(
                f"{model}: {'real data' if real else 'STAND-IN data (throughput only)'}, "
                f"up to {max_epochs} epochs, {args.repeats} repeat(s)",
                flush=True,
            )
            runs = []
            for r in range(args.repeats):
                order = PIPELINES if r % 2 == 0 else PIPELINES[::-1]
                for pipeline in order:
                    spec = {
                        "model": model,
                        "pipeline": pipeline,
                        "npz": npz,
                        "quick": args.quick,
                        "standin": args.standin,
                        "max_epochs": max_epochs,
                        "seed": args.seed + r,
                        "gpu_path": args.gpu_path,
                        "lesson_overrides": overrides,
                    }
                    res = run_child(spec)
                    runs.append(res)
                    last = res["epochs"][-1]
                    print(
                        f"  {pipeline:<8} run {r + 1}: {len(res['epochs'])} epochs, "
                        f"{res['images_per_s']:,.0f} images/s, epoch {res['epoch_s']:.2f} s "
                        f"(training {res['epoch_train_s']:.3f} s, first {res['first_epoch_s']:.1f} s), "
                        f"val acc {last['val_accuracy']:.4f}, "
                        f"to target {_fmt(res['time_to_target_s'], '{:.1f} s')}, "
                        f"peak RSS {res['peak_rss_mb']:,.0f} MB",
                        flush=True,
                    )
            paired = None
            if args.paired_rounds:
                paired = run_child(
                    {
                        "model": model,
                        "pipeline": "paired",
                        "npz": npz,
                        "quick": args.quick,
                        "standin": args.standin,
                        "seed": args.seed,
                        "gpu_path": args.gpu_path,
                        "lesson_overrides": overrides,
                        "rounds": args.paired_rounds,
                        "chunk_images": PAIRED_CHUNK[model],
                    }
                )
                if not paired.get("skipped"):
                    print(
                        f"  paired   {paired['rounds']} rounds of {paired['chunk_images']:,} images: original "
                        f"{paired['original_median']:,.0f} images/s, lesson {paired['lesson_median']:,.0f} "
                        f"images/s, ratio {paired['median_ratio']:.2f}x",
                        flush=True,
                    )
            results["models"][model] = summarize(model, runs, paired)
            results["device"], results["versions"] = runs[0]["device"], runs[0]["versions"]
        if "modern_cnn" in args.models:
            print(
                f"modern_cnn: running training-speed/modern_cnn.ipynb{' (quick sizes)' if args.quick else ''}",
                flush=True,
            )
            results["models"]["modern_cnn"] = entry = run_modern(args.quick)
            print(modern_line(entry), flush=True)
            if "device" not in results:
                from cnn_course.speed import describe_machine

                machine = describe_machine()
                results["device"], results["versions"] = machine["where"], machine["versions"]
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        status = 130
    if results["models"]:
        print()
        print(table(results), flush=True)  # before writing: a failed write loses no figure
    if status:
        if results["models"]:
            print(
                f"{out} not written: the run did not finish (the table above has the models that did)", file=sys.stderr
            )
        return status
    try:
        write_results(results, out)
    except OSError as e:
        print(
            f"error: {out} could not be written ({e.strerror or e}); the table above has the figures", file=sys.stderr
        )
        return 1
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # while checking the data; main() handles it during training
        print("interrupted", file=sys.stderr)
        sys.exit(130)
