"""cnn_course.devices: virtual CPU devices, asked for before the backend starts, and the
alternating throughput measurement.

The device configuration is per process and fixed once the backend has
computed anything, so each check of `split_cpu` runs in a fresh Python (on
each Keras backend, through the `keras_backend` fixture).
"""

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cnn_course import devices

REPO = Path(__file__).resolve().parents[1]
ON_EVERY_BACKEND = True  # each backend splits the CPU its own way (conftest.py)


@pytest.mark.parametrize("count", [0, -1, devices.MAX_CPU_DEVICES + 1, 2.0, "2", True, None])
def test_a_bad_count_is_refused_before_anything_is_imported(count):
    with pytest.raises(ValueError, match="number of CPU devices"):
        devices.split_cpu(count, backend="tensorflow")


def test_a_good_count_passes():
    assert devices.check_count(1) == 1
    assert devices.check_count(devices.MAX_CPU_DEVICES) == devices.MAX_CPU_DEVICES


def test_another_backend_is_refused():
    with pytest.raises(ValueError, match="not 'torch'"):
        devices.split_cpu(2, backend="torch")


def fresh_python(code):
    """Run `code` in a new interpreter with this checkout's cnn_course; return what it printed last, as JSON."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env={**__import__("os").environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_split_before_the_backend_starts_gives_that_many_devices_and_is_idempotent(keras_backend):
    found = fresh_python("""
        import json, keras
        from cnn_course.devices import TooLate, split_cpu
        first = split_cpu(3)
        again_before = split_cpu(3)
        listed = keras.distribution.list_devices()
        keras.ops.convert_to_numpy(keras.ops.ones(2) + 1)  # the backend has started
        again_after = split_cpu(3)
        try:
            split_cpu(2)
            late = None
        except TooLate as exc:
            late = str(exc)
        print(json.dumps([first, again_before, listed, again_after, late]))
    """)
    first, again_before, listed, again_after, late = found
    assert first == again_before == again_after == 3
    assert listed == ["cpu:0", "cpu:1", "cpu:2"]
    assert late is not None and "already started with 3 CPU device(s)" in late and "restart the kernel" in late


def test_split_after_the_backend_started_says_it_is_too_late(keras_backend):
    found = fresh_python("""
        import json, keras
        from cnn_course.devices import TooLate, split_cpu
        keras.ops.convert_to_numpy(keras.ops.ones(2) + 1)  # the backend has started, with one CPU device
        try:
            split_cpu(2)
            late = None
        except TooLate as exc:
            late = str(exc)
        print(json.dumps([late, split_cpu(1), keras.distribution.list_devices()]))
    """)
    late, one, listed = found
    assert late is not None and "already started with 1 CPU device(s), so it cannot have 2 now" in late
    assert one == 1  # what it already has: nothing to change
    assert listed == ["cpu:0"]


def test_alternate_throughput_takes_turns_and_reports_images_per_second():
    calls = []

    def run(name, images):
        def train():
            calls.append(name)
            time.sleep(0.001)
            return images

        return train

    rates = devices.alternate_throughput({"a": run("a", 100), "b": run("b", 300)}, rounds=3, warmup=2)
    assert calls == ["a", "a", "b", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then ABBA
    assert set(rates) == {"a", "b"} and all(rate > 0 for rate in rates.values())
    with pytest.raises(ValueError):
        devices.alternate_throughput({}, rounds=1)
    with pytest.raises(ValueError):
        devices.alternate_throughput({"a": run("a", 1)}, rounds=0)


def test_alternate_throughput_per_round_gives_each_round_for_the_median_ratio():
    from cnn_course import timing

    images = {"one": iter([10] * 2 + [100, 100, 100]), "all": iter([10] * 2 + [200, 200, 200])}
    rates = devices.alternate_throughput(
        {name: (lambda it=it: next(it)) for name, it in images.items()}, rounds=3, warmup=2, per_round=True
    )
    assert set(rates) == {"one", "all"} and all(len(values) == 3 for values in rates.values())
    measured = timing.paired_ratio(rates["one"], rates["all"])
    assert measured["ratios"] == [a / o for o, a in zip(rates["one"], rates["all"])]
