#!/usr/bin/env python
"""Training speed of the lesson pipeline on each Keras backend, alternating.

    python benchmarks/backend_speed.py                           # tensorflow vs jax, both models
    python benchmarks/backend_speed.py --models cifar10_cnn --max-epochs 3 --repeats 2

Trains ``train_speed.py``'s lesson pipeline once per backend and repeat, each in a fresh process, the
backends taking turns (`cnn_course.timing.alternate`); prints per run the images/s, the first epoch, the
time to the target and the load average; writes ``benchmarks/backend_results.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import train_speed  # noqa: E402


def run(model, epochs, backend, runs):
    """Train ``model`` on ``backend`` in a fresh process; print it and add it to ``runs``.
    Raises RuntimeError, naming the backend, when the run fails."""
    os.environ["KERAS_BACKEND"] = backend
    load_before = os.getloadavg()[0]
    spec = dict(model=model, pipeline="lesson", npz=None, quick=False, standin=False, max_epochs=epochs, seed=42)
    try:
        res = train_speed.run_child(dict(spec, gpu_path=False, lesson_overrides={}))
    except RuntimeError as e:
        raise RuntimeError(f"{backend}: {e}") from None
    res.update(backend=backend, load_before=load_before, load_after=os.getloadavg()[0])
    to_target = f"not in {len(res['epochs'])} epochs ({res['epochs'][-1]['since_start_s']:.0f} s)"
    if res["time_to_target_s"] is not None:
        to_target = f"{res['time_to_target_s']:.1f} s ({res['epochs_to_target']} epochs)"
    print(
        f"  {backend:<10} run {sum(r['backend'] == backend for r in runs) + 1}: {res['images_per_s']:,.0f} images/s, "
        f"first epoch {res['first_epoch_s']:.1f} s, to target {to_target}, best val acc "
        f"{res['best_val_accuracy']:.4f}, precision {res['settings']['mixed_precision'] or 'float32'}, load "
        f"{load_before:.1f}->{res['load_after']:.1f} ({res['versions']})",
        flush=True,
    )
    runs.append(res)


def main(argv=None):
    """Run the comparison; return the exit status (0; 2 for a usage error; 1 when a run fails)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backends", default="tensorflow,jax", help="comma-separated (default: tensorflow,jax)")
    p.add_argument("--models", default=",".join(train_speed.PAIRED_MODELS))
    p.add_argument("--repeats", type=int, default=2, help="runs per backend, alternating ABBA (default 2)")
    p.add_argument(
        "--max-epochs", type=int, help="epochs at most per run (default 20, stand-in 3); stops at the target"
    )
    p.add_argument("--max-epochs-cnn", type=int, help="a lower limit for the CIFAR-10 CNN")
    p.add_argument("--out", default=str(HERE / "backend_results.json"))
    args = p.parse_args(argv)
    from cnn_course.backends import BackendError, check_backend
    from cnn_course.reports import write_atomic
    from cnn_course.timing import alternate

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    try:
        for b in backends:
            check_backend(b)
        if not backends or any(m not in train_speed.PAIRED_MODELS for m in models) or args.repeats < 1:
            choices = ", ".join(train_speed.PAIRED_MODELS)
            raise BackendError(f"choose models from {choices}, at least one backend, --repeats 1 or more")
    except BackendError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    command = " ".join([Path(sys.argv[0]).name] + (sys.argv[1:] if argv is None else argv))
    results = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": command, "models": {}}
    for model in models:
        real = train_speed.load_split(model)["real"]  # decoded once (CIFAR-10 JPEGs are cached) before any timing
        epochs = min(args.max_epochs or (20 if real else 3), (model == "cifar10_cnn" and args.max_epochs_cnn) or 999)
        print(f"{model}: {'real data' if real else 'STAND-IN data'}, up to {epochs} epochs", flush=True)
        runs = []
        try:  # the backends take turns (ABBA), so that all meet the same load
            turns = {b: functools.partial(run, model, epochs, b, runs) for b in backends}
            if len(backends) > 1:
                alternate(turns, args.repeats)
            else:
                for _ in range(args.repeats):
                    turns[backends[0]]()
        except RuntimeError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        mine = {b: [r for r in runs if r["backend"] == b] for b in backends}
        speeds = {b: statistics.median(r["images_per_s"] for r in rs) for b, rs in mine.items()}
        results["models"][model] = {b: {"images_per_s": speeds[b], "runs": rs} for b, rs in mine.items()}
        results["device"] = runs[0]["device"]
    out = write_atomic(args.out, json.dumps(results, indent=2) + "\n")
    print(f"device: {results['device']}\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
