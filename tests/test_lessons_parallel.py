"""The data-parallel lesson runs top to bottom on virtual CPU devices.

Through the quick-mode contract (`runner.run_lesson(..., quick=True)`),
offline, with empty data and Keras folders, on each Keras backend that has a
data-parallel distribution (JAX, TensorFlow). The run asks for 3 virtual CPU
devices, not the default 2, so the checks show that the parameter decides the
replicas. The checks are what the lesson promises: the devices and replicas,
the global batch as per-replica batch x replicas and the learning rate that
goes with it, the batches that split evenly, both throughput figures and the
speed-up, and the accuracy line on the labelled stand-in.
"""

import re
import statistics
from pathlib import Path

import pytest

from cnn_course import lessons, runner
from lesson_checks import check_committed, check_executed, offline_home, parameters_cell

REPO = Path(__file__).resolve().parents[1]
ON_EVERY_BACKEND = True  # each backend has its own distribution API (conftest.py)
LESSON = REPO / runner.LESSONS["data-parallel"]
STRATEGY = {"jax": "DataParallel", "tensorflow": "MirroredStrategy"}


@pytest.fixture(scope="module")
def offline(tmp_path_factory, keras_backend):
    """Empty data and Keras folders for the notebook kernel (on each backend); downloads refused."""
    if keras_backend not in STRATEGY:
        pytest.skip(f"Keras has no data-parallel distribution for {keras_backend}")
    with offline_home(tmp_path_factory, f"data-parallel-{keras_backend}") as home:
        yield home


@pytest.fixture(scope="module")
def quick_run(offline):
    result = runner.run_lesson("data-parallel", {"CPU_DEVICES": 3}, offline / "run", timeout=900, quick=True)
    return result, check_executed(result)


def test_quick_run_trains_one_replica_per_requested_device(quick_run, keras_backend):
    result, text = quick_run
    quick = lessons.QUICK_PARAMETERS["data-parallel"]
    per_replica = quick["BATCH_SIZE"]
    assert f"Keras backend: {keras_backend}" in text
    assert "Devices: 3 (cpu:0, cpu:1, cpu:2)" in text
    assert f"Replicas: 3 (cpu:0, cpu:1, cpu:2), {STRATEGY[keras_backend]}" in text
    assert f"Global batch: {per_replica} per replica x 3 replicas = {3 * per_replica} images per step" in text
    assert f"Learning rate: 0.05 x {3 * per_replica} / 128 = {0.05 * 3 * per_replica / 128:g}" in text
    # every batch splits evenly: whole global batches to train on, a multiple of 3 test images
    steps = quick["N_TRAIN"] // (3 * per_replica)
    assert f"training: {steps * 3 * per_replica:,} images = {steps} steps of {3 * per_replica}" in text
    assert "test:     999 images" in text  # the stand-in's 1,000, cut to a multiple of 3
    assert result["epochs"] == quick["EPOCHS"]
    assert result["test_accuracy"] is not None and 0 <= result["test_accuracy"] <= 100
    assert "STAND-IN for CIFAR-10" in (result["data"] or "")
    assert "STAND-IN data: this number says nothing about CIFAR-10" in text


def test_quick_run_measures_one_device_against_all_and_says_what_the_speed_up_means(quick_run):
    _, text = quick_run
    one = re.search(r"^One device \(cpu:0\): (\d+) images/s$", text, re.MULTILINE)
    every = re.search(r"^All 3 devices \(cpu:0, cpu:1, cpu:2\): (\d+) images/s$", text, re.MULTILINE)
    speedup = re.search(
        r"^Speed-up: (\d+\.\d\d)x on 3 devices \(cpu:0, cpu:1, cpu:2\) over one \(cpu:0\)$", text, re.MULTILINE
    )
    assert one and every and speedup, text
    assert int(one.group(1)) > 0 and int(every.group(1)) > 0
    # the printed speed-up is the median of the per-round ratios, as in the training-speed lesson
    ratios = re.search(r"^Ratios per round: ([\d., ]+)$", text, re.MULTILINE)
    assert ratios, text
    per_round = [float(r) for r in ratios.group(1).split(", ")]
    assert float(speedup.group(1)) == pytest.approx(statistics.median(per_round), abs=0.011)
    assert "These 3 device(s) are virtual CPU devices sharing the processor's" in text


def test_committed_notebook_is_a_lesson():
    nb = check_committed(LESSON, "data-parallel")
    defaults = {}
    exec(parameters_cell(nb).source, {}, defaults)  # noqa: S102 - the notebook's own literals
    assert defaults["CPU_DEVICES"] == 2 and defaults["N_TRAIN"] == 10000
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    # the distribution code the lesson teaches stays visible
    for visible in (
        "keras.distribution.DataParallel(devices=devices)",
        "keras.distribution.set_distribution(",
        "tf.distribute.MirroredStrategy(devices)",
        "with strategy.scope():",
        "split_cpu(CPU_DEVICES)",
    ):
        assert visible in source, visible
