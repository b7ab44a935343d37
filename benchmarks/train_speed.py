#!/usr/bin/env python
"""Training speed: the original course code against the lesson's pipeline.

    python benchmarks/train_speed.py                      # both models, real data when found
    python benchmarks/train_speed.py --models cifar10_cnn --repeats 2
    python benchmarks/train_speed.py --quick              # smoke run: 256 images, 2 epochs

For the MNIST MLP and the CIFAR-10 CNN each pipeline trains in a process of its own (its peak RSS its
own), the two taking turns; then one process trains both in alternating chunks, so that both meet the
same load: their ratio is ``speedup_throughput``. ``modern_cnn`` runs its lesson notebook and reads what
it prints. Writes ``benchmarks/results.json``; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import functools
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
SHAPES = {"mnist_mlp": (28, 28), "cifar10_cnn": (32, 32, 3)}
# The data, the validation split of the original course, the target validation accuracy.
TASKS = {
    "mnist_mlp": {"dataset": "mnist", "target": 0.98, "n_val": 12_000},  # the last 20% (validation_split=0.2)
    "cifar10_cnn": {"dataset": "cifar10", "target": 0.68, "n_val": 5_000},  # the first 5,000
}
# The original course code: float32 arrays in [0, 1], one-hot labels, RMSprop at its default rate.
ORIGINAL = {
    "mnist_mlp": {"batch_size": 128, "optimizer": "rmsprop", "learning_rate": 0.001},
    "cifar10_cnn": {"batch_size": 32, "optimizer": "rmsprop", "learning_rate": 0.001},
}
# The lesson pipeline on a CPU, as lessons 1 and 3 run it (tests/test_benchmark.py compares their
# parameters and training cells): the rate falls to 0 over the lesson's epochs; the precision is what
# precision_policy picks for the lesson's model ("auto": measured, cached; unmeasured with --quick).
# The MLP trains on a float32 copy in [0, 1]; the CNN on uint8 images, scaled by its first layer.
LESSON_CPU = {
    "mnist_mlp": {
        **{"batch_size": 1024, "optimizer": "rmsprop", "learning_rate": 0.003, "schedule": "cosine"},
        **{"schedule_epochs": 10, "inputs": "float32", "scaling": None, "steps_per_execution": 1},
        "mixed_precision": "auto",
    },
    "cifar10_cnn": {
        **{"batch_size": 512, "optimizer": "adam", "learning_rate": 0.004, "schedule": "cosine"},
        **{"schedule_epochs": 15, "inputs": "uint8", "scaling": "centred", "steps_per_execution": 1},
        "mixed_precision": "auto",
    },
}
# On a GPU: the data stays on the device, mixed_float16, XLA, many steps per execution.
GPU = {"steps_per_execution": 32, "mixed_precision": "mixed_float16", "jit_compile": True}
LESSON_GPU = {"mnist_mlp": GPU, "cifar10_cnn": dict(GPU, batch_size=1024)}
# What --lesson may set: "whole" (numbers from 1), "rate" (above 0) or the values it takes.
OVERRIDES = {
    **{"batch_size": "whole", "optimizer": ("rmsprop", "adam"), "learning_rate": "rate"},
    **{"schedule": (None, "cosine"), "schedule_epochs": "whole", "inputs": ("float32", "uint8")},
    **{"scaling": (None, "rescale", "centred"), "steps_per_execution": "whole"},
    **{"mixed_precision": (None, "float32", "mixed_float16", "mixed_bfloat16"), "jit_compile": (True, False, "auto")},
}
PAIRED_CHUNK = {"mnist_mlp": 24_576, "cifar10_cnn": 12_288}  # images per paired chunk: a multiple of both batches
PAIRED_ROUNDS = 6
QUICK_TRAIN, QUICK_VAL = 256, 64
_err = lambda text: print(text, file=sys.stderr)
MAX_SEED = 2**32 - 1  # numpy's global seed, which keras.utils.set_random_seed sets, takes 0 to 2**32 - 1


class UsageError(Exception):
    """A problem with the command line or its files; printed as one line."""


# --------------------------------------------------------------------------
# Data


def _read_npz(path, dataset):
    """Return ((x_train, y_train), (x_test, y_test)) from a Keras-layout .npz (MNIST: load_mnist's checks), y flat.
    Raises UsageError when the file is missing or not a regular file, DataError when it is not a usable .npz."""
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
    try:
        with np.load(path, allow_pickle=False) as f:
            splits = tuple((f[f"x_{s}"], f[f"y_{s}"].reshape(-1)) for s in ("train", "test"))
    except Exception as e:  # a missing array, object arrays, BadZipFile, zlib.error, EOFError, a single .npy
        reason = f"{type(e).__name__}: {' '.join(str(e).split())}"
        raise data.DataError(f"{path}: not a readable .npz of x_train, y_train, x_test, y_test ({reason})") from None
    for split, (x, y) in zip(("train", "test"), splits):
        labels_ok = len(y) and np.issubdtype(y.dtype, np.integer) and 0 <= y.min() and y.max() <= 9
        if x.dtype != np.uint8 or x.shape[1:] != (32, 32, 3) or len(x) != len(y) or not labels_ok:
            raise data.DataError(
                f"{path}: x_{split} must be uint8 of shape (N, 32, 32, 3) with one integer label 0-9 "
                f"per image in y_{split}; found {x.dtype} {x.shape} and {len(y)} labels of {y.dtype}"
            )
    return splits


def load_split(model, npz=None, quick=False, standin=False):
    """Return dict(x_train, y_train, x_val, y_val, description, real), split as the original course did, from
    ``npz``, else cnn_course.data (no download), else (or with ``standin``) a labelled stand-in; ``quick``: 256 + 64
    images. Raises UsageError for a missing ``npz``, DataError for an unusable one."""
    from cnn_course import data

    mnist = TASKS[model]["dataset"] == "mnist"
    title, x = "MNIST" if mnist else "CIFAR-10", None
    if npz is not None and not standin:
        (x, y), _ = _read_npz(npz, TASKS[model]["dataset"])
        description = f"{title} (real, {len(x)} train, from {npz})"
    elif not standin:
        try:
            (x, y), _ = (data.load_mnist if mnist else data.load_cifar10)(download=False)
            description = f"{title} (real, {len(x)} train images, via cnn_course.data)"
        except data.DatasetNotFound:
            pass
    real = x is not None
    if not real and mnist:  # scikit-learn's digits at 28x28, repeated
        n = QUICK_TRAIN + QUICK_VAL if quick else 60_000
        (x, y), (xt, yt) = data.load_digits28()
        x, y = (np.concatenate(a)[np.arange(n) % (len(x) + len(xt))] for a in ((x, xt), (y, yt)))
        description = f"STAND-IN for MNIST: scikit-learn digits resized to 28x28, repeated to {n} images"
    elif not real:
        n = QUICK_TRAIN + QUICK_VAL if quick else 50_000
        parts = [data.make_cifar10_standin(n_train=min(5000, n - i), n_test=10, seed=i)[0] for i in range(0, n, 5000)]
        x, y = (np.concatenate([p[i] for p in parts]) for i in (0, 1))
        description = f"STAND-IN for CIFAR-10: {n} generated 32x32 colour-and-stripe images"
    description += "" if real else f" (real {title} not found)"
    y = y.astype(np.int32)
    n_val = min(TASKS[model]["n_val"], len(x) // (5 if mnist else 10)) or 1
    val = slice(-n_val, None) if mnist else slice(None, n_val)
    train = slice(None, -n_val) if mnist else slice(n_val, None)
    d = {"x_train": x[train], "y_train": y[train], "x_val": x[val], "y_val": y[val], "real": real}
    if quick:
        d.update({k: v[: QUICK_VAL if k.endswith("val") else QUICK_TRAIN] for k, v in d.items() if k != "real"})
        description += f"; quick: {len(d['x_train'])} train / {len(d['x_val'])} validation"
    d.update((k, np.ascontiguousarray(d[k])) for k in ("x_train", "x_val"))
    return dict(d, description=description)


# --------------------------------------------------------------------------
# Models and settings


def build_model(model, settings):
    """Return the lesson's ``model`` (MLP: 669,706 parameters, CNN: 528,054), uncompiled, under the current dtype
    policy; with uint8 ``inputs`` its first layer scales them ("rescale": to [0, 1], "centred": to [-1, 1])."""
    import keras
    from keras import layers

    uint8 = settings["inputs"] == "uint8"
    stack = [keras.Input(SHAPES[model], dtype="uint8" if uint8 else "float32")]
    if uint8:
        stack.append(layers.Rescaling(1 / 255) if settings["scaling"] == "rescale" else layers.Rescaling(1 / 127.5, -1))
    if model == "mnist_mlp":
        stack.append(layers.Flatten())
        for _ in range(2):
            stack += [layers.Dense(512, activation="relu"), layers.Dropout(0.2)]
    else:
        for filters in (16, 32, 64):
            stack += [layers.Conv2D(filters, 2, padding="same", activation="relu"), layers.MaxPooling2D(2)]
        stack += [layers.Dropout(0.3), layers.Flatten(), layers.Dense(500, activation="relu"), layers.Dropout(0.4)]
    stack.append(layers.Dense(10, activation="softmax", dtype="float32"))
    return keras.Sequential(stack, name=model)


def parse_overrides(text):
    """Return ``key=value,...`` (values as JSON where they parse, else strings) as a dict.
    Raises UsageError for an item without '=', an unknown key or a value it cannot take."""
    out = {}
    for item in filter(None, (t.strip() for t in (text or "").split(","))):
        key, sep, value = (t.strip() for t in item.partition("="))
        if not sep:
            raise UsageError(f"--lesson takes key=value items, not {item!r}")
        if key not in OVERRIDES:
            raise UsageError(f"--lesson {item}: unknown setting {key!r}; known: {', '.join(OVERRIDES)}")
        try:
            v = out[key] = json.loads(value)
        except json.JSONDecodeError:
            v = out[key] = value
        kind, number = OVERRIDES[key], isinstance(v, (int, float)) and not isinstance(v, bool)
        if kind == "whole" and not (number and isinstance(v, int) and v >= 1):
            raise UsageError(f"--lesson {item}: {key} must be a whole number, at least 1")
        if kind == "rate" and not (number and math.isfinite(v) and v > 0):
            raise UsageError(f"--lesson {item}: {key} must be a number above 0")
        if isinstance(kind, tuple) and not any(v is w or (isinstance(v, str) and v == w) for w in kind):
            raise UsageError(f"--lesson {item}: {key} must be one of {', '.join(json.dumps(w) for w in kind)}")
    return out


def pipeline_settings(model, pipeline, on_gpu=False, overrides=None, quick=True):
    """Return one pipeline's settings (the lesson's on a CPU or GPU, with ``overrides``) and a readable ``data``
    line. Raises UsageError for uint8 inputs without a scaling."""
    if pipeline == "original":
        fixed = dict(inputs="float32", scaling=None, mixed_precision=None, jit_compile="auto", steps_per_execution=1)
        return dict(ORIGINAL[model], **fixed, data="float32 arrays in [0, 1], one-hot labels")
    s = {**LESSON_CPU[model], "jit_compile": "auto", **(LESSON_GPU[model] if on_gpu else {}), **(overrides or {})}
    if s["inputs"] == "uint8" and s["scaling"] not in ("rescale", "centred"):
        raise UsageError("--lesson takes inputs=float32, or inputs=uint8 with scaling=rescale or scaling=centred")
    if s["mixed_precision"] == "auto":  # as precision_policy decides in the notebooks: measured on a batch, cached
        from cnn_course.backends import keras_backend
        from cnn_course.speed import choose_precision, unmeasured_cpu_precision

        if quick:  # the rule without a model
            policy = unmeasured_cpu_precision(keras_backend())[0]
        else:
            import keras

            bs = s["batch_size"]
            data = (np.zeros((bs, *SHAPES[model]), s["inputs"]), keras.utils.to_categorical(np.arange(bs) % 10, 10))
            policy, _ = choose_precision(model=lambda: build_model(model, s), data=data, quick=False)
        s["mixed_precision"] = "mixed_bfloat16" if policy == "mixed_bfloat16" else None
    scaled = "[0, 1]" if s["inputs"] == "float32" or s["scaling"] == "rescale" else "[-1, 1]"
    scaled += "" if s["inputs"] == "float32" else " by the model's first layer"
    s["data"] = f"{s['inputs']} {'on the device (PyDataset)' if on_gpu else 'arrays'}, {scaled}, one-hot labels"
    return s


def _on_device(x, y, batch_size, shuffle, seed):
    """Return a keras.utils.PyDataset of batches sliced from tensors kept on the accelerator
    (reshuffled there each epoch): no image crosses the host-device link after the first copy."""
    import keras
    from keras import ops

    class DeviceBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.x, self.y, self.rng = ops.convert_to_tensor(x), ops.convert_to_tensor(y), np.random.default_rng(seed)
            self.order = (self.x, self.y)
            self.on_epoch_end()

        def __len__(self):
            return math.ceil(len(x) / batch_size)

        def __getitem__(self, i):
            return tuple(a[i * batch_size : (i + 1) * batch_size] for a in self.order)

        def on_epoch_end(self):
            if shuffle:
                perm = ops.convert_to_tensor(self.rng.permutation(len(x)).astype("int32"))
                self.order = (ops.take(self.x, perm, axis=0), ops.take(self.y, perm, axis=0))

    return DeviceBatches()


# --------------------------------------------------------------------------
# Measuring, in a subprocess


def prepare(model, settings, d, on_gpu=False, seed=0):
    """Build and compile one pipeline's model on its training data as the course code or the
    lesson does. Returns dict(net, fit: net.fit's keyword arguments, x, y, data_bytes)."""
    import keras

    keras.utils.set_random_seed(seed)
    x, x_val = d["x_train"], d["x_val"]
    if settings["inputs"] == "float32":  # as the course and lesson 1 do: a float32 copy of every image, scaled
        x, x_val = x.astype("float32") / 255, x_val.astype("float32") / 255
    y, y_val = (keras.utils.to_categorical(d[k], 10) for k in ("y_train", "y_val"))
    bs = settings["batch_size"]
    fit = dict(x=x, y=y, batch_size=bs, shuffle=True, validation_data=(x_val, y_val))  # validated at bs, as lessons
    if on_gpu:
        fit = dict(x=_on_device(x, y, bs, True, seed), validation_data=_on_device(x_val, y_val, 1024, False, 0))
    lr = settings["learning_rate"]
    if settings.get("schedule") == "cosine":
        steps = settings["schedule_epochs"] * math.ceil(len(x) / bs)
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=steps)
    optimizer = {"rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam}[settings["optimizer"]](lr)
    keras.mixed_precision.set_global_policy(settings["mixed_precision"] or "float32")
    compiled = {k: settings[k] for k in ("jit_compile", "steps_per_execution")}
    try:  # the policy holds only while the model is built and compiled
        net = build_model(model, settings)
        net.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"], **compiled)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return {"net": net, "fit": fit, "x": x, "y": y, "data_bytes": int(x.nbytes + y.nbytes)}


def train_once(spec):
    """Train one pipeline as ``spec`` says to its target or its last epoch. Returns its settings, per-epoch
    records and figures (images/s, time and epochs to target, peak RSS). Raises UsageError, DataError."""
    d = load_split(spec["model"], spec.get("npz"), spec["quick"], spec["standin"])
    import keras

    from cnn_course.speed import describe_machine, gpu_name
    from cnn_course.timing import target_clock

    model, pipeline, gpu, machine = spec["model"], spec["pipeline"], gpu_name(), describe_machine()
    on_gpu = pipeline == "lesson" and (gpu is not None or spec.get("gpu_path", False))
    settings = pipeline_settings(model, pipeline, on_gpu, spec.get("lesson_overrides"), spec["quick"])
    target, stop, epochs = TASKS[model]["target"], d["real"] and not spec["quick"], spec["max_epochs"]
    if settings.get("schedule") and not spec["quick"]:
        epochs = min(epochs, settings["schedule_epochs"])  # the rate is 0 after that

    t0 = time.perf_counter()
    p = prepare(model, settings, d, on_gpu, spec["seed"])
    clock = target_clock(target, verbose=False, start=t0, stop=stop)
    with tempfile.TemporaryDirectory() as tmp:  # the lessons keep their best validation accuracy, the course its loss
        monitor = "val_accuracy" if pipeline == "lesson" else "val_loss"
        best = keras.callbacks.ModelCheckpoint(str(Path(tmp) / "best.keras"), monitor=monitor, save_best_only=True)
        p["net"].fit(**p["fit"], epochs=epochs, verbose=0, callbacks=[clock, best])
    rec = [dict(e, since_start_s=e.pop("seconds")) for e in clock.epochs]  # epoch, train_s, epoch_s, val_accuracy
    reached = next((i for i, e in enumerate(rec) if e["val_accuracy"] >= target), None) if stop else None
    steady = rec[1:] or rec  # the first epoch also compiles
    train_s, n = statistics.median(e["train_s"] for e in steady), len(d["x_train"])
    result = dict(model=model, pipeline=pipeline, settings=settings, params=p["net"].count_params(), epochs=rec)
    result.update(data=d["description"], real_data=d["real"], n_train=n, n_val=len(d["x_val"]))
    result.update(device=machine["where"], versions=machine["versions"], total_s=time.perf_counter() - t0)
    result.update(data_bytes=p["data_bytes"], images_per_s=n / train_s, epoch_train_s=train_s)
    result.update(epoch_s=statistics.median(e["epoch_s"] for e in steady), first_epoch_s=rec[0]["epoch_s"])
    result.update(target_val_accuracy=target, best_val_accuracy=max(e["val_accuracy"] for e in rec))
    result.update(epochs_to_target=None if reached is None else reached + 1)
    result.update(time_to_target_s=None if reached is None else rec[reached]["since_start_s"])
    result.update(peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if gpu and keras.backend.backend() == "jax":
        import jax

        stats = jax.devices()[0].memory_stats() or {}
        result.update({"device_peak_mb": stats["peak_bytes_in_use"] / 2**20} if "peak_bytes_in_use" in stats else {})
    return result


def paired_throughput(spec):
    """Measure both pipelines' images/s in one process, in alternating chunks (`cnn_course.timing.compare`),
    so that both meet the same load. Returns the rates and lesson/original ratios per round, their medians."""
    from cnn_course.speed import gpu_name
    from cnn_course.timing import compare, images_per_second

    gpu, model = gpu_name(), spec["model"]
    if gpu or spec.get("gpu_path"):
        return {"skipped": f"the lesson uses its GPU pipeline ({gpu or '--gpu-path'}); see the full runs"}
    d = load_split(model, spec.get("npz"), spec["quick"], spec["standin"])
    s = {p: pipeline_settings(model, p, False, spec.get("lesson_overrides"), spec["quick"]) for p in PIPELINES}
    prepared = {p: prepare(model, s[p], d, False, spec["seed"]) for p in PIPELINES}
    lcm, n = math.lcm(*(v["batch_size"] for v in s.values())), min(len(d["x_train"]), spec["chunk_images"])
    n = n // lcm * lcm or n  # a quick run's chunk can be less than a batch: then it is one smaller batch, as in fit

    def chunk(p):
        return images_per_second(prepared[p]["net"], prepared[p]["x"], prepared[p]["y"], min(s[p]["batch_size"], n), n)

    m = compare(functools.partial(chunk, "original"), functools.partial(chunk, "lesson"), spec["rounds"])
    out = dict(rounds=spec["rounds"], chunk_images=n, ratios=m["ratios"], median_ratio=m["ratio"])
    out.update(original_images_per_s=m["plain_rates"], lesson_images_per_s=m["lever_rates"])
    return dict(out, original_median=m["plain"], lesson_median=m["lever"])


def run_child(spec):
    """Return the result of one measurement in a fresh Python process; RuntimeError when it fails."""
    from cnn_course.timing import run_child as run

    return run([str(Path(__file__).resolve()), "--child", json.dumps(spec)], f"{spec['model']} {spec['pipeline']} run")


# --------------------------------------------------------------------------
# Summary and table


_median = lambda values: statistics.median(v) if (v := [x for x in values if x is not None]) else None
_ratio = lambda a, b: a / b if a is not None and b else None
_fmt = lambda v, spec="{:,.0f}": "-" if v is None else spec.format(v)


def summarize(model, runs, paired=None):
    """Return the model's entry of results.json: per pipeline the medians over its runs (peak RSS: the largest),
    the lesson/original ratios; ``speedup_throughput`` is the paired one where measured, else the full runs'."""
    entry = {k: runs[0][k] for k in ("data", "real_data", "n_train", "n_val")}
    entry["target_val_accuracy"] = TASKS[model]["target"]
    for p in PIPELINES:
        mine = [r for r in runs if r["pipeline"] == p]
        keys = ("images_per_s", "epoch_train_s", "epoch_s", "time_to_target_s", "epochs_to_target")
        e = entry[p] = {"settings": mine[0]["settings"], **{k: _median(r[k] for r in mine) for k in keys}}
        e["reached_target"] = f"{sum(r['epochs_to_target'] is not None for r in mine)}/{len(mine)}"
        e.update(peak_rss_mb=max(r["peak_rss_mb"] for r in mine), data_mb=mine[0]["data_bytes"] / 2**20, runs=mine)
        if any("device_peak_mb" in r for r in mine):
            e["device_peak_mb"] = max(r.get("device_peak_mb", 0) for r in mine)
    o, les = entry["original"], entry["lesson"]
    entry["speedup_throughput"] = entry["speedup_throughput_full_runs"] = _ratio(les["images_per_s"], o["images_per_s"])
    if paired:
        entry["paired"] = paired
        entry["speedup_throughput"] = paired.get("median_ratio", entry["speedup_throughput"])
    entry["speedup_time_to_target"] = _ratio(o["time_to_target_s"], les["time_to_target_s"])
    if entry["real_data"] and les["time_to_target_s"] and all(r["time_to_target_s"] is None for r in o["runs"]):
        # the original trained this long without reaching the target: a lower bound of the speed-up
        trained_s = _median(r["epochs"][-1]["since_start_s"] for r in o["runs"])
        entry["original_trained_without_target_s"] = trained_s
        entry["speedup_time_to_target_at_least"] = trained_s / les["time_to_target_s"]
    entry["speedup_epoch_time"] = _ratio(o["epoch_s"], les["epoch_s"])
    entry["ratio_epochs_to_target"] = _ratio(les["epochs_to_target"], o["epochs_to_target"])
    entry["ratio_peak_rss"] = _ratio(les["peak_rss_mb"], o["peak_rss_mb"])
    if not entry["real_data"]:
        entry["note"] = "stand-in data: throughput only, no time to target"
    return entry


COLUMNS = (  # header, width, the key of a pipeline's figure, its format, the key of the ratio row's figure
    ("images/s", 9, "images_per_s", "{:,.0f}", "speedup_throughput_full_runs"),
    ("epoch s", 8, "epoch_s", "{:.2f}", "speedup_epoch_time"),
    ("train s", 8, "epoch_train_s", "{:.3f}", None),
    ("to target", 10, "time_to_target_s", "{:.1f} s", "speedup_time_to_target"),
    ("epochs", 6, "epochs_to_target", "{:g}", "ratio_epochs_to_target"),
    ("reached", 7, "reached_target", "{}", None),
    ("peak RSS MB", 11, "peak_rss_mb", "{:,.0f}", "ratio_peak_rss"),
)
TABLE_NOTES = (
    "ratios: images/s and times are lesson/original speed-ups; epochs and peak RSS are lesson/original. Medians "
    "over the runs that reached the target (reached: runs/all).\npaired: both pipelines trained in one process in "
    "alternating chunks, so both meet the same load; this is speedup_throughput in the JSON."
)


def table(results):
    """Return the printable table of a results dict."""
    from cnn_course.reports import text_table

    rows, lines, models = [], [], results["models"]
    for model, e in ((m, e) for m, e in models.items() if m in PAIRED_MODELS):
        rows += [[model, p, *(_fmt(e[p][key], f) for _, _, key, f, _ in COLUMNS)] for p in PIPELINES]
        rows.append([model, "ratio", *(_fmt(e[r], "{:.2f}x") if r else "" for *_, r in COLUMNS)])
        if e.get("speedup_time_to_target_at_least"):
            bound, trained = e["speedup_time_to_target_at_least"], e["original_trained_without_target_s"]
            note = f"time to target at least {bound:.2f}x: the original trained {trained:.0f} s without reaching it"
            rows.append([model, "ratio", note])
        pr = e.get("paired") or {"skipped": True}
        if not pr.get("skipped"):
            rates = f"original {pr['original_median']:,.0f} images/s, lesson {pr['lesson_median']:,.0f} images/s"
            rounds = f"median of {pr['rounds']} alternating chunks of {pr['chunk_images']:,} images"
            spread = f"{min(pr['ratios']):.2f}x-{max(pr['ratios']):.2f}x"
            rows.append([model, "paired", f"{rates}: {pr['median_ratio']:.2f}x ({rounds}; {spread})"])
    if rows:
        head = ["model".ljust(12), "pipeline".ljust(9), *(name.rjust(w) for name, w, *_ in COLUMNS)]
        lines = [text_table(head, rows, right=set(range(2, 9)), sep=" "), TABLE_NOTES]
    lines += [modern_line(models["modern_cnn"])] if "modern_cnn" in models else []
    for model, e in models.items():
        lines += [f"{model}: data: {e['data']}"] + ([f"{model}: {e['note']}"] if e.get("note") else [])
    return "\n".join(lines + [f"device: {results['device']} ({results['versions']})"])


# --------------------------------------------------------------------------
# The modern CNN: its lesson notebook, run as the runner runs it

_MODERN_EPOCH = re.compile(
    r"^epoch (\d+): training accuracy ([\d.]+)%, test accuracy ([\d.]+)%, ([\d,]+) images/s, ([\d.]+) min since",
    re.M,
)
_MODERN_REACHED = re.compile(r"^Reached (\d+)% test accuracy at epoch (\d+), ([\d.]+) min after the start$", re.M)


def parse_modern(text):
    """Return what the modern-CNN lesson printed: dict(epochs, images_per_s: the median after the first epoch,
    minutes_to: {"85": minutes or None, "90": ...}). Raises RuntimeError when it printed no epoch line."""
    keys = ("epoch", "train_accuracy", "test_accuracy", "images_per_s", "minutes")
    epochs = [
        dict(zip(keys, (int(e), float(a) / 100, float(t) / 100, float(speed.replace(",", "")), float(m))))
        for e, a, t, speed, m in _MODERN_EPOCH.findall(text)
    ]
    if not epochs:
        raise RuntimeError("modern_cnn: the lesson printed no epoch line this benchmark can read")
    reached = {target: float(minutes) for target, _, minutes in _MODERN_REACHED.findall(text)}
    speed = statistics.median(e["images_per_s"] for e in epochs[1:] or epochs)
    return {"epochs": epochs, "images_per_s": speed, "minutes_to": {t: reached.get(t) for t in ("85", "90")}}


def run_modern(quick):
    """Run training-speed/modern_cnn.ipynb as the runner does (its outputs in a temporary folder); return its
    entry: data, test_accuracy (6 views), wall_s, what `parse_modern` reads; RuntimeError if it fails."""
    from cnn_course.lessons import LESSONS, lesson_parameters
    from cnn_course.runner import execute_notebook

    with tempfile.TemporaryDirectory(prefix="train-speed-modern-") as tmp:
        own = {"VERBOSE": 0, "CHECKPOINT": str(Path(tmp) / "modern_cnn.keras")}
        parameters = lesson_parameters("modern-cnn", quick, own)
        result = execute_notebook(REPO / LESSONS["modern-cnn"], parameters, tmp, quick=quick)
    if result["status"] != "passed":
        raise RuntimeError(f"modern_cnn: the lesson failed: {result['error']}")
    accuracy = result["test_accuracy"]
    entry = {"data": result["data"], "real_data": "STAND-IN" not in (result["data"] or "STAND-IN")}
    entry.update(test_accuracy=None if accuracy is None else accuracy / 100, wall_s=result["wall_time_s"])
    return dict(entry, **parse_modern(result["text"]))


def modern_line(e):
    """Return the table's line for the modern CNN's entry ``e``."""
    to, accuracy = e["minutes_to"], e["test_accuracy"]
    reached = ", ".join(f"{t}% at {to[t]:.1f} min" if to[t] is not None else f"{t}% not reached" for t in ("85", "90"))
    return (
        f"modern_cnn   test accuracy {_fmt(accuracy and 100 * accuracy, '{:.2f}%')} (6 views averaged) after "
        f"{len(e['epochs'])} epochs; {reached} (test accuracy after each epoch, clock from the notebook's imports "
        f"cell); {e['images_per_s']:,.0f} images/s; whole notebook {e['wall_s'] / 60:.1f} min"
    )


# --------------------------------------------------------------------------
# The command line


def seed_value(text):
    """argparse type of --seed: the int; ArgumentTypeError unless it is a whole number from 0 to MAX_SEED."""
    if not re.fullmatch(r"\s*\d+\s*", text) or int(text) > MAX_SEED:
        accepts = f"must be a whole number from 0 to {MAX_SEED:,} (what numpy's random seed accepts)"
        raise argparse.ArgumentTypeError(f"{text!r}: {accepts}")
    return int(text)


def parse_args(argv=None):
    """Return the parsed command line (argparse.Namespace); exit with a usage message on bad arguments."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = p.add_argument
    add("--models", default=",".join(MODELS), help=f"comma-separated, from {', '.join(MODELS)} (default: all)")
    add("--max-epochs", type=int, help="epochs at most, stopping at the target (default 20; stand-in 3; --quick 2)")
    add("--repeats", type=int, default=1, help="runs of each pipeline, alternating (default 1)")
    add("--paired-rounds", type=int, help=f"paired rounds, 0 to skip (default {PAIRED_ROUNDS}; 2 with --quick)")
    add("--quick", action="store_true", help="smoke run: 256 training images, 2 epochs")
    add("--standin", action="store_true", help="the labelled stand-ins even where real data exists")
    add("--mnist-npz", help="MNIST from this Keras-layout .npz")
    add("--cifar-npz", help="CIFAR-10 from an .npz with x_train, y_train, x_test, y_test")
    add("--gpu-path", action="store_true", help="the lesson's GPU settings even without a GPU")
    add("--lesson", default="", metavar="KEY=VALUE,...", help="lesson settings to try, e.g. batch_size=256")
    add("--backend", help="tensorflow, jax or torch (default: $KERAS_BACKEND, else tensorflow)")
    add("--seed", type=seed_value, default=42, help="random seed of the first repeat, +1 for each next (default 42)")
    add("--out", default=str(DEFAULT_OUT), help=f"JSON file to write (default {DEFAULT_OUT})")
    add("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in MODELS]
    if unknown or not args.models:
        p.error(f"unknown model {', '.join(unknown) or '(none)'}; choose from {', '.join(MODELS)}")
    if args.repeats < 1 or (args.max_epochs is not None and args.max_epochs < 1) or (args.paired_rounds or 0) < 0:
        p.error("--repeats and --max-epochs must be at least 1; --paired-rounds must be 0 or more")
    if args.seed + args.repeats - 1 > MAX_SEED:
        p.error(f"--seed {args.seed} with --repeats {args.repeats}: the last repeat's seed would be over {MAX_SEED:,}")
    args.paired_rounds = (2 if args.quick else PAIRED_ROUNDS) if args.paired_rounds is None else args.paired_rounds
    return args


def check_out(path):
    """Return ``path`` as an absolute Path if a file can be written there (its folder created); else UsageError."""
    from cnn_course.reports import check_out_dir

    out = Path(path).expanduser().absolute()
    if out.is_dir():
        raise UsageError(f"--out {path}: is a folder; give a file name, e.g. {out / 'results.json'}")
    try:
        check_out_dir(out.parent)
    except ValueError as e:
        raise UsageError(f"--out {path}: {e}") from None
    return out


def write_results(results, out):
    """Write ``results`` as JSON to ``out`` whole or not at all. Raises OSError, leaving the old file."""
    from cnn_course.reports import write_atomic

    write_atomic(out, json.dumps(results, indent=2) + "\n")


def _full_run(spec, runs, pipeline):
    """Train ``pipeline`` once more in its own process (the next repeat's seed), print it, add it to ``runs``."""
    r = sum(x["pipeline"] == pipeline for x in runs)
    res = run_child(dict(spec, pipeline=pipeline, seed=spec["seed"] + r))
    runs.append(res)
    print(
        f"  {pipeline:<8} run {r + 1}: {len(res['epochs'])} epochs, {res['images_per_s']:,.0f} images/s, "
        f"epoch {res['epoch_s']:.2f} s (training {res['epoch_train_s']:.3f} s, first {res['first_epoch_s']:.1f} s), "
        f"val acc {res['epochs'][-1]['val_accuracy']:.4f}, to target {_fmt(res['time_to_target_s'], '{:.1f} s')}, "
        f"peak RSS {res['peak_rss_mb']:,.0f} MB",
        flush=True,
    )
    return res["images_per_s"]


def _measure(args, model, npz, real, overrides):
    """Train ``model``'s pipelines in turns (ABBA), then the paired run; return its entry of results.json."""
    from cnn_course.timing import alternate

    max_epochs = args.max_epochs or (2 if args.quick else 20 if real else 3)
    what = "real data" if real else "STAND-IN data (throughput only)"
    print(f"{model}: {what}, up to {max_epochs} epochs, {args.repeats} repeat(s)", flush=True)
    spec = dict(model=model, npz=npz, quick=args.quick, standin=args.standin, seed=args.seed)
    spec.update(gpu_path=args.gpu_path, lesson_overrides=overrides)
    runs, full = [], dict(spec, max_epochs=max_epochs)
    alternate({p: functools.partial(_full_run, full, runs, p) for p in PIPELINES}, args.repeats)
    paired = None
    if args.paired_rounds:
        paired = run_child(dict(spec, pipeline="paired", rounds=args.paired_rounds, chunk_images=PAIRED_CHUNK[model]))
        if not paired.get("skipped"):
            rates = f"original {paired['original_median']:,.0f}, lesson {paired['lesson_median']:,.0f} images/s"
            chunks = f"{paired['rounds']} rounds of {paired['chunk_images']:,} images"
            print(f"  paired   {chunks}: {rates}, ratio {paired['median_ratio']:.2f}x", flush=True)
    return summarize(model, runs, paired)


def main(argv=None):
    """Run the benchmark; return 0, 1 (a failed run, a data error), 2 (a usage error) or 130 (Ctrl-C). Everything
    is checked before anything trains; the table of what finished is printed before the file is written."""
    args = parse_args(argv)
    if args.child:  # a measuring subprocess: one RESULT line
        from cnn_course.timing import RESULT_TAG

        spec = json.loads(args.child)
        try:
            result = paired_throughput(spec) if spec["pipeline"] == "paired" else train_once(spec)
        except UsageError as e:
            _err(f"error: {e}")
            return 2
        print(RESULT_TAG + json.dumps(result), flush=True)
        return 0
    from cnn_course import data
    from cnn_course.backends import BackendError, check_backend, keras_backend

    command = " ".join([Path(sys.argv[0]).name] + (sys.argv[1:] if argv is None else argv))
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    results = {"created": created, "command": command, "quick": args.quick, "repeats": args.repeats, "models": {}}
    try:
        out = check_out(args.out)
        os.environ["KERAS_BACKEND"] = check_backend(keras_backend(args.backend))  # the subprocesses inherit it
        overrides = parse_overrides(args.lesson)
        results.update({"lesson_overrides": overrides} if overrides else {})
        plan = []
        for model in (m for m in args.models if m in PAIRED_MODELS):
            if overrides:  # a bad combination fails here, before any training
                pipeline_settings(model, "lesson", args.gpu_path, overrides)
            npz = args.mnist_npz if TASKS[model]["dataset"] == "mnist" else args.cifar_npz
            # loaded here: bad data fails before any training, and CIFAR-10's first decode is cached before timing
            plan.append((model, npz, load_split(model, npz, args.quick, args.standin)["real"]))
    except (UsageError, BackendError) as e:
        _err(f"error: {e}")
        return 2
    except data.DataError as e:
        _err(f"error: {' '.join(str(e).split())}")
        return 1
    status = 0
    try:
        for model, npz, real in plan:
            results["models"][model] = entry = _measure(args, model, npz, real, overrides)
            first = entry["original"]["runs"][0]
            results["device"], results["versions"] = first["device"], first["versions"]
        if "modern_cnn" in args.models:
            print(f"modern_cnn: running training-speed/modern_cnn.ipynb{' (quick sizes)' * args.quick}", flush=True)
            results["models"]["modern_cnn"] = entry = run_modern(args.quick)
            print(modern_line(entry), flush=True)
            if "device" not in results:
                from cnn_course.speed import describe_machine

                machine = describe_machine()
                results["device"], results["versions"] = machine["where"], machine["versions"]
    except RuntimeError as e:
        _err(f"error: {e}")
        status = 1
    except KeyboardInterrupt:
        _err("interrupted")
        status = 130
    if results["models"]:
        print("\n" + table(results), flush=True)  # before writing: a failed write loses no figure
    if status:
        if results["models"]:
            _err(f"{out} not written: the run did not finish (the table above has the models that did)")
        return status
    try:
        write_results(results, out)
    except OSError as e:
        _err(f"error: {out} could not be written ({e.strerror or e}); the table above has the figures")
        return 1
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # while checking the data; main() handles it during training
        _err("interrupted")
        sys.exit(130)
