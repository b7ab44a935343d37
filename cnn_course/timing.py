"""Timing training fairly on a shared machine: the training-speed lesson's plumbing and the course's ABBA loop.

`alternate` calls the settings to compare in turns (plain, lever, lever,
plain, ...), so that all meet the same machine load; the lessons, `speed`,
`devices` and the benchmarks all time through it. `images_per_second` times
one chunk of training, `compare` a lever against the plain setting,
`target_clock` the time to a validation accuracy, `thread_rates` thread counts
(fixed when TensorFlow starts: a fresh subprocess each, through `run_child`,
and this module is that subprocess's entry point). The rest says what was
measured: ratios, lower bounds, verdicts, the table and the chart.
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

# A ratio within this distance of 1 is reported as "about the same": closer
# than that, the noise of a shared machine decides the order.
NOISE = 0.05


# --------------------------------------------------------------------------
# Measuring


def alternate(runs, rounds, budget_s=None):
    """Call each function of ``runs`` once per round, alternating their order: the course's one ABBA loop.

    ``runs`` maps a name to a function of no arguments that returns a number
    (a chunk's images/s, a step's seconds). Even rounds call them in the given
    order, odd rounds in reverse (A B, B A, A B, ...), so that a drift in the
    machine's speed falls on both alike. With ``budget_s`` it stops after the
    round during which that many seconds had passed (two rounds at least).

    Returns a dict: name -> list of the values, in call order.
    Raises ValueError when ``rounds`` is not a whole number of at least 1 or
    ``runs`` has fewer than two entries; whatever the functions raise.
    """
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
    """Train ``model`` (compiled) for one pass over the first ``images`` of ``x``, ``y``; return images/s.

    ``images`` is rounded down to whole batches. The rate counts the images
    after the first step, which also pays the start of ``fit``; with fewer
    than three steps (large ``steps_per_execution``) it is the whole pass's.
    Raises ValueError when ``images`` is less than one batch or more than
    ``x`` holds; whatever ``fit`` raises.
    """
    if batch_size < 1 or images < batch_size or images > len(x):
        raise ValueError(
            f"a timed chunk needs at least one batch ({batch_size}) and at most the {len(x)} images given; got {images}"
        )
    import keras

    n, marks = images // batch_size * batch_size, []
    clock = keras.callbacks.LambdaCallback(  # (batches done, time) at the start and after every step
        on_train_begin=lambda logs: marks.append((0, time.perf_counter())),
        on_train_batch_end=lambda batch, logs: marks.append((batch + 1, time.perf_counter())),
    )
    model.fit(x[:n], y[:n], batch_size=batch_size, epochs=1, shuffle=False, verbose=0, callbacks=[clock])
    if len(marks) >= 4:  # the start, then three steps or more
        (b1, t1), (b2, t2) = marks[1], marks[-1]
        return (min(b2 * batch_size, n) - b1 * batch_size) / (t2 - t1)
    return n / (marks[-1][1] - marks[0][1])


def compare(plain, lever, rounds):
    """Measure a lever against the plain setting, alternating, after one warm-up call of each.

    ``plain`` and ``lever`` are functions of no arguments returning a chunk's
    images/s (e.g. ``lambda: images_per_second(model, x, y, 32, 8192)``).
    The warm-up (compiling the training step) is not counted.

    Returns dict(plain, lever: median images/s, ratio: median of the
    per-round lever/plain ratios, ratios: all of them). Raises what
    `alternate` raises.
    """
    plain(), lever()  # warm-up: builds and compiles the training steps
    values = alternate({"plain": plain, "lever": lever}, rounds)
    return paired_ratio(values["plain"], values["lever"])


def paired_ratio(plain, lever):
    """Summarise rates measured in alternating rounds: the speed-up is the median of the per-round ratios.

    ``plain`` and ``lever`` are the rates (e.g. images/s) of the same rounds,
    in the same order: round i's ratio is ``lever[i] / plain[i]``, two chunks
    that ran side by side under the same load. The median of these ratios is
    fairer than the ratio of the two medians when the load changes between
    rounds. The training-speed and data-parallel lessons both use it.

    Returns dict(plain, lever: median rates, ratio: median of the per-round
    ratios, ratios: all of them, in round order, plain_rates and lever_rates:
    the rates given). Raises ValueError when the
    lists are empty or of different lengths, or a plain rate is not positive.
    """
    if not plain or len(plain) != len(lever):
        raise ValueError(f"need the same number of rounds (at least 1) for both, got {len(plain)} and {len(lever)}")
    if min(plain) <= 0:
        raise ValueError(f"a plain rate must be positive to divide by, got {min(plain)}")
    ratios = [b / a for a, b in zip(plain, lever)]
    return {
        "plain": statistics.median(plain),
        "lever": statistics.median(lever),
        "ratio": statistics.median(ratios),
        "ratios": ratios,
        "plain_rates": list(plain),
        "lever_rates": list(lever),
    }


def target_clock(target, verbose=True, start=None, stop=True):
    """Return a Keras callback that times training to a validation accuracy and stops it there.

    Its ``epochs`` list holds, per epoch, dict(epoch, seconds: since ``fit``
    began, or since the ``time.perf_counter()`` value ``start``, val_accuracy,
    train_s: the epoch's training up to its validation, epoch_s: the whole
    epoch); its ``reached_s`` is the seconds at the first epoch whose
    ``val_accuracy`` is at least ``target`` (None until then), when, with
    ``stop``, it sets ``model.stop_training``. With ``verbose`` it prints one
    line per epoch. Raises ValueError when ``target`` is not between 0 and 1.
    """
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


# --------------------------------------------------------------------------
# Threads: one fresh process per setting


def run_child(argv, what):
    """Run ``argv`` (a Python command) as a subprocess that prints one ``RESULT_TAG`` JSON line; return that dict.

    The child gets this package on its PYTHONPATH and TensorFlow's C++ log
    quietened. Used by `thread_rates` and the benchmarks. Raises RuntimeError,
    "<what> failed (exit N): <the child's last error line>", when no result came.
    """
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
    """Run `thread_rates`'s subprocess for ``spec``; return its result dict. Raises RuntimeError."""
    return run_child(
        ["-m", "cnn_course.timing", json.dumps(spec)], f"the timing subprocess for {spec.get('threads')} thread(s)"
    )


def thread_rates(model, x, y, batch_size, images, threads, rounds=2, chunks=2):
    """Measure training images/s with each number of TensorFlow threads, one fresh process per run.

    ``model`` is a compiled Keras model; it is saved once to a temporary
    file, with the first ``images`` of ``x``, ``y``, and each subprocess
    sets TensorFlow's thread pools (``tf.config.threading``) before anything
    else, loads the model, trains one warm-up chunk and then ``chunks`` timed
    chunks of ``images`` images (`images_per_second`), and reports their
    median. The settings alternate over ``rounds`` rounds (`alternate`).
    Nothing is left in the temporary folder.

    Returns a dict: thread count -> list of images/s, one per round.
    Raises ValueError for a thread count below 1, or when the backend is not
    TensorFlow (the others have no such setting); RuntimeError when a
    subprocess fails.
    """
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
        runs = {
            t: (
                lambda t=t: _run_child(
                    {
                        "threads": t,
                        "model": str(model_path),
                        "data": str(data_path),
                        "batch_size": batch_size,
                        "chunks": chunks,
                    }
                )["images_per_s"]
            )
            for t in threads
        }
        if len(runs) == 1:
            return {t: [f() for _ in range(rounds)] for t, f in runs.items()}
        return alternate(runs, rounds)


def _child_main(spec):
    """The subprocess of `thread_rates`: set the threads, train, print one result line. Returns 0."""
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


# --------------------------------------------------------------------------
# Saying what was measured


def verdict(name, ratio, baseline):
    """Return one sentence on a measured speed ratio, e.g.
    "on this machine, mixed_bfloat16 trained at 0.80x float32's speed: slower".

    Within NOISE of 1 it says "about the same". Raises ValueError for a ratio
    that is not a positive finite number.
    """
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not math.isfinite(ratio) or ratio <= 0:
        raise ValueError(f"a speed ratio must be a positive number, not {ratio!r}")
    shown = round(ratio, 2)  # the word follows the figure printed: 1.0496 reads "1.05x: faster"
    word = (
        "faster"
        if shown >= 1 + NOISE
        else "slower"
        if shown <= 1 - NOISE
        else f"about the same (within {NOISE:.0%}, the noise of a shared machine)"
    )
    return f"on this machine, {name} trained at {ratio:.2f}x {baseline}'s speed: {word}"


def time_text(seconds, cap_s, cap_epochs):
    """Return a time to target for people: "41.3 s", or, when it was not
    reached (``seconds`` None), "more than 150 s (not reached in 12 epochs)"
    with ``cap_s`` the seconds the capped run took. Raises nothing."""
    if seconds is not None:
        return f"{seconds:.1f} s"
    return f"more than {cap_s:.0f} s (not reached in {cap_epochs} epochs)"


def speedup_text(plain_s, plain_cap_s, fast_s):
    """Return how many times sooner ``fast_s`` reached the target than plain did.

    "3.21x" when both reached it; "at least 2.50x" when plain did not
    (``plain_s`` None: the ratio to ``plain_cap_s``, the seconds its capped
    run took, is then a lower bound); "not reached" when ``fast_s`` is None.
    Raises ValueError for a time that is not positive.
    """
    for value in (plain_s, plain_cap_s, fast_s):
        if value is not None and not value > 0:
            raise ValueError(f"times must be positive seconds, not {value!r}")
    if fast_s is None:
        return "not reached"
    if plain_s is None:
        return f"at least {plain_cap_s / fast_s:.2f}x"
    return f"{plain_s / fast_s:.2f}x"


def lever_row(lever, setting, measured):
    """Return one row of the lesson's table from what `compare` returned.

    A dict: lever, setting, plain and images_per_s (median images/s), ratio
    (median lever/plain), ratios (per round). Raises KeyError when
    ``measured`` lacks those keys.
    """
    return {
        "lever": lever,
        "setting": setting,
        "plain": measured["plain"],
        "images_per_s": measured["lever"],
        "ratio": measured["ratio"],
        "ratios": measured["ratios"],
    }


def skipped_row(lever, setting, reason):
    """Return a table row for a lever that was not measured, with the reason. Raises nothing."""
    return {"lever": lever, "setting": setting, "skipped": reason}


def thread_rows(rates, default):
    """Return one table row per thread count of `thread_rates`'s result,
    measured against ``default`` threads (which must be among them), per round.

    Raises ValueError when ``default`` was not measured.
    """
    if default not in rates:
        raise ValueError(f"the default of {default} threads was not measured: {sorted(rates)}")
    return [
        lever_row("threads", f"{threads} (against {default})", paired_ratio(rates[default], values))
        for threads, values in rates.items()
        if threads != default
    ]


def table(rows, plain_name="plain"):
    """Return the printable table of lever rows.

    Each row is a dict with ``lever``, ``setting`` and either ``plain``,
    ``images_per_s``, ``ratio``, ``ratios`` (as `compare` returns them), or
    ``skipped`` (the reason). Raises KeyError for a row missing those keys.
    """
    lines = [
        [row["lever"], row["setting"], f"skipped: {row['skipped']}"]
        if row.get("skipped")
        else [
            row["lever"],
            row["setting"],
            f"{row['plain']:,.0f}",
            f"{row['images_per_s']:,.0f}",
            f"{row['ratio']:.2f}x",
            f"{min(row['ratios']):.2f}-{max(row['ratios']):.2f}x",
        ]
        for row in rows
    ]
    return text_table(
        ["lever", "setting", f"{plain_name} img/s", "lever img/s", "ratio", "range"], lines, right={2, 3, 4}
    )


def plot_levers(rows, times=None, target=None):
    """Draw the lesson's chart: a bar of each lever's speed as a ratio to plain
    (1 = as fast), and, with ``times`` (a dict: setting -> dict(seconds: to
    the target, None when not reached; run_s: how long its run took) and
    ``target`` the accuracy), the time to the target, a grey bar "more than"
    where it was not reached.

    Returns the matplotlib Figure. Skipped rows are left out. Raises nothing
    of its own.
    """
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
        ax = axes[0][1]
        names = list(times)[::-1]
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
