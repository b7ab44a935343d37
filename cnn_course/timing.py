"""Timing training fairly on a shared machine: the course's ABBA loop and the training-speed lesson's plumbing.

`alternate` calls the settings to compare in turns (A B, B A, ...) so that all meet the same machine
load; the lessons, `speed`, `devices` and the benchmarks all time through it. `thread_rates` runs each
thread count in a fresh process (`run_child`; this module is that process's entry point). The rest
says what was measured: ratios, verdicts, the table and the chart.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cnn_course.reports import text_table

RESULT_TAG = "RESULT "
NOISE = 0.05  # a ratio this close to 1 is "about the same": the noise of a shared machine decides the order


def alternate(runs, rounds, budget_s=None):
    """Call each of ``runs`` ({name: function returning a number}) once per round, in ABBA order,
    stopping after the round that passed ``budget_s`` (two rounds at least).
    Returns {name: values in call order}; raises ValueError for rounds < 1 or fewer than two runs."""
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be a whole number of at least 1, not {rounds!r}")
    if len(runs) < 2:
        raise ValueError(f"alternate needs at least two settings to compare, got {len(runs)}")
    names, started = list(runs), time.perf_counter()
    values = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            values[name].append(runs[name]())
        if budget_s is not None and r >= 1 and time.perf_counter() - started > budget_s:
            break
    return values


def images_per_second(model, x, y, batch_size, images):
    """Train compiled ``model`` one pass over the first ``images`` (whole batches) of x, y; return
    images/s after the first step. Raises ValueError for less than a batch or more than x holds."""
    if batch_size < 1 or images < batch_size or images > len(x):
        raise ValueError(
            f"a timed chunk needs at least one batch ({batch_size}) and at most the {len(x)} images given; got {images}"
        )
    import keras

    n, marks = images // batch_size * batch_size, []
    clock = keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: marks.append((0, time.perf_counter())),
        on_train_batch_end=lambda batch, logs: marks.append((batch + 1, time.perf_counter())),
    )
    model.fit(x[:n], y[:n], batch_size=batch_size, epochs=1, shuffle=False, verbose=0, callbacks=[clock])
    if len(marks) >= 4:  # the start, then three steps or more
        (b1, t1), (b2, t2) = marks[1], marks[-1]
        return (min(b2 * batch_size, n) - b1 * batch_size) / (t2 - t1)
    return n / (marks[-1][1] - marks[0][1])


def compare(plain, lever, rounds):
    """Time ``lever`` against ``plain`` (functions returning images/s) in turns after one warm-up
    call each; returns `paired_ratio`'s dict. Raises what `alternate` raises."""
    plain(), lever()
    values = alternate({"plain": plain, "lever": lever}, rounds)
    return paired_ratio(values["plain"], values["lever"])


def paired_ratio(plain, lever):
    """Return dict(plain, lever: median rates, ratio: median of the per-round lever/plain ratios,
    ratios, plain_rates, lever_rates). Raises ValueError for unequal or empty lists or a rate <= 0."""
    if not plain or len(plain) != len(lever):
        raise ValueError(f"need the same number of rounds (at least 1) for both, got {len(plain)} and {len(lever)}")
    if min(plain) <= 0:
        raise ValueError(f"a plain rate must be positive to divide by, got {min(plain)}")
    ratios = [b / a for a, b in zip(plain, lever)]
    median = statistics.median
    return {
        "plain": median(plain),
        "lever": median(lever),
        "ratio": median(ratios),
        "ratios": ratios,
        "plain_rates": list(plain),
        "lever_rates": list(lever),
    }


def target_clock(target, verbose=True, start=None, stop=True):
    """Return a Keras callback timing training to validation accuracy ``target``: ``epochs`` (dicts
    of epoch, seconds, val_accuracy, train_s, epoch_s) and ``reached_s``; with ``stop`` it stops
    training there. Raises ValueError unless 0 < target <= 1."""
    import keras

    if not 0 < target <= 1:
        raise ValueError(f"the target accuracy must be a fraction between 0 and 1, not {target!r}")

    class TargetClock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs, self.reached_s = [], None

        def on_train_begin(self, logs=None):
            self.start = time.perf_counter() if start is None else start
            self.on_epoch_begin(0)

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_start = self.train_end = time.perf_counter()

        def on_test_begin(self, logs=None):
            keras.ops.convert_to_numpy(self.model.trainable_weights[-1])  # JAX and GPUs run ahead: wait
            self.train_end = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            now = time.perf_counter()
            seconds, accuracy = now - self.start, float((logs or {}).get("val_accuracy", float("nan")))
            self.epochs.append(
                {
                    "epoch": epoch + 1,
                    "seconds": seconds,
                    "val_accuracy": accuracy,
                    "train_s": self.train_end - self.epoch_start,
                    "epoch_s": now - self.epoch_start,
                }
            )
            if verbose:
                print(f"  epoch {epoch + 1}: validation accuracy {100 * accuracy:.2f}% at {seconds:.1f} s")
            if accuracy >= target:
                self.reached_s = seconds if self.reached_s is None else self.reached_s
                if stop:
                    self.model.stop_training = True

    return TargetClock()


def run_child(argv, what):
    """Run Python with ``argv`` (this package on its path) and return the dict of its ``RESULT_TAG``
    line. Raises RuntimeError "<what> failed (exit N): <its last error line>" when none came."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")) if p
    )
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :])
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    last = next((ln for ln in reversed(lines) if "Error" in ln or ln.startswith("error:")), lines[-1] if lines else "")
    raise RuntimeError(f"{what} failed (exit {proc.returncode}): {last or 'no output'}")


def _run_child(spec):
    what = f"the timing subprocess for {spec.get('threads')} thread(s)"
    return run_child(["-m", "cnn_course.timing", json.dumps(spec)], what)


def thread_rates(model, x, y, batch_size, images, threads, rounds=2, chunks=2):
    """Measure training images/s per TensorFlow thread count, each run in a fresh process (a warm-up
    chunk, then the median of ``chunks`` chunks), alternating over ``rounds``.
    Returns {threads: [images/s per round]}. Raises ValueError (bad counts, not TensorFlow), RuntimeError."""
    import keras
    import numpy as np

    if keras.backend.backend() != "tensorflow":
        raise ValueError(f"thread counts are a TensorFlow setting; the backend is {keras.backend.backend()}")
    if any(isinstance(t, bool) or not isinstance(t, int) or t < 1 for t in threads):
        raise ValueError(f"thread counts must be whole numbers of at least 1, not {threads!r}")
    if images > len(x):
        raise ValueError(f"a timed chunk of {images} images needs that many; {len(x)} were given")
    with tempfile.TemporaryDirectory(prefix="cnn-course-threads-") as tmp:
        model_path, data_path = Path(tmp) / "model.keras", Path(tmp) / "chunk.npz"
        model.save(model_path)
        np.savez(data_path, x=x[:images], y=y[:images])
        spec = {"model": str(model_path), "data": str(data_path), "batch_size": batch_size, "chunks": chunks}
        runs = {t: (lambda t=t: _run_child({"threads": t, **spec})["images_per_s"]) for t in threads}
        if len(runs) == 1:
            return {t: [f() for _ in range(rounds)] for t, f in runs.items()}
        return alternate(runs, rounds)


def _child_main(spec):
    import tensorflow as tf  # before Keras touches TensorFlow: the pools are made once, at start-up

    tf.config.threading.set_intra_op_parallelism_threads(spec["threads"])
    tf.config.threading.set_inter_op_parallelism_threads(spec["threads"])
    import keras
    import numpy as np

    model = keras.models.load_model(spec["model"])
    with np.load(spec["data"]) as f:
        x, y = f["x"], f["y"]
    images_per_second(model, x, y, spec["batch_size"], len(x))  # warm-up: compiles
    rates = [images_per_second(model, x, y, spec["batch_size"], len(x)) for _ in range(spec["chunks"])]
    print(RESULT_TAG + json.dumps({"threads": spec["threads"], "images_per_s": statistics.median(rates)}), flush=True)
    return 0


def verdict(name, ratio, baseline):
    """Return "on this machine, <name> trained at 0.80x <baseline>'s speed: slower" (or faster, or
    about the same within NOISE). Raises ValueError for a ratio that is not positive and finite."""
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not math.isfinite(ratio) or ratio <= 0:
        raise ValueError(f"a speed ratio must be a positive number, not {ratio!r}")
    shown = round(ratio, 2)  # the word follows the figure printed: 1.0496 reads "1.05x: faster"
    word = (
        "faster"
        if shown >= 1 + NOISE
        else "slower"
        if shown <= 1 - NOISE
        else (f"about the same (within {NOISE:.0%}, the noise of a shared machine)")
    )
    return f"on this machine, {name} trained at {ratio:.2f}x {baseline}'s speed: {word}"


def time_text(seconds, cap_s, cap_epochs):
    """Return "41.3 s", or "more than 150 s (not reached in 12 epochs)" for None."""
    return (
        f"{seconds:.1f} s" if seconds is not None else f"more than {cap_s:.0f} s (not reached in {cap_epochs} epochs)"
    )


def speedup_text(plain_s, plain_cap_s, fast_s):
    """Return "3.21x", "at least 2.50x" (plain never reached it) or "not reached".
    Raises ValueError for a time that is not positive."""
    for value in (plain_s, plain_cap_s, fast_s):
        if value is not None and not value > 0:
            raise ValueError(f"times must be positive seconds, not {value!r}")
    if fast_s is None:
        return "not reached"
    return f"at least {plain_cap_s / fast_s:.2f}x" if plain_s is None else f"{plain_s / fast_s:.2f}x"


def lever_row(lever, setting, measured):
    """Return one table row from what `compare` returned. Raises KeyError for a missing key."""
    return {
        "lever": lever,
        "setting": setting,
        "plain": measured["plain"],
        "images_per_s": measured["lever"],
        "ratio": measured["ratio"],
        "ratios": measured["ratios"],
    }


def skipped_row(lever, setting, reason):
    """Return a table row for a lever that was not measured."""
    return {"lever": lever, "setting": setting, "skipped": reason}


def thread_rows(rates, default):
    """Return a row per thread count of `thread_rates`'s result against ``default`` threads.
    Raises ValueError when ``default`` was not measured."""
    if default not in rates:
        raise ValueError(f"the default of {default} threads was not measured: {sorted(rates)}")
    return [
        lever_row("threads", f"{t} (against {default})", paired_ratio(rates[default], values))
        for t, values in rates.items()
        if t != default
    ]


def table(rows, plain_name="plain"):
    """Return the printable table of lever rows. Raises KeyError for a row missing its keys."""
    lines = [
        [r["lever"], r["setting"], f"skipped: {r['skipped']}"]
        if r.get("skipped")
        else [
            r["lever"],
            r["setting"],
            f"{r['plain']:,.0f}",
            f"{r['images_per_s']:,.0f}",
            f"{r['ratio']:.2f}x",
            f"{min(r['ratios']):.2f}-{max(r['ratios']):.2f}x",
        ]
        for r in rows
    ]
    header = ["lever", "setting", f"{plain_name} img/s", "lever img/s", "ratio", "range"]
    return text_table(header, lines, right={2, 3, 4})


def plot_levers(rows, times=None, target=None):
    """Return the lesson's chart: each measured lever's speed ratio to plain, and with ``times``
    ({setting: dict(seconds or None, run_s)}) the time to ``target`` accuracy."""
    import matplotlib.pyplot as plt

    measured = [r for r in rows if not r.get("skipped")]
    ncols = 2 if times else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6.5 * ncols, 0.5 * len(measured) + 1.8), squeeze=False)
    ax = axes[0][0]
    labels = [f"{r['lever']}\n{r['setting']}" for r in measured][::-1]
    ratios = [r["ratio"] for r in measured][::-1]
    colours = ["tab:green" if v >= 1 + NOISE else "tab:red" if v <= 1 - NOISE else "tab:gray" for v in ratios]
    ax.barh(labels, ratios, color=colours)
    ax.axvline(1, color="black", linewidth=1)
    for i, v in enumerate(ratios):
        ax.text(v, i, f" {v:.2f}x", va="center")
    ax.set_xlabel("training images/s, as a ratio to the plain setting (measured alternately)")
    ax.set_xlim(0, max(ratios + [1]) * 1.25)
    if times:
        ax, names = axes[0][1], list(times)[::-1]
        lengths = [times[n]["seconds"] or times[n]["run_s"] for n in names]
        ax.barh(names, lengths, color=["tab:blue" if times[n]["seconds"] else "lightgray" for n in names])
        for i, n in enumerate(names):
            reached = times[n]["seconds"]
            ax.text(lengths[i], i, f" {reached:.0f} s" if reached else f" more than {lengths[i]:.0f} s", va="center")
        ax.set_xlabel(f"seconds to {target:.0%} validation accuracy" if target else "seconds to target")
        ax.set_xlim(0, max(lengths) * 1.45)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    sys.exit(_child_main(json.loads(sys.argv[1])))
