"""training-speed/data_parallel_processes.py: one model trained by several processes.

Two processes on 127.0.0.1, one CPU device each, train the data-parallel
lesson's model on JAX with keras.distribution: they must end with the same
weights, each having fed half of every global batch, and with the losses of
one process training on the whole global batches.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cnn_course import backends

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "training-speed" / "data_parallel_processes.py"
NOTEBOOK = REPO / "training-speed" / "data_parallel.ipynb"
SMALL = ["--n-train", "128", "--epochs", "2"]  # 2 steps of 64 images an epoch

needs_jax = pytest.mark.skipif("jax" not in backends.installed_backends(), reason="JAX is not installed")


def _run(*args, backend="jax", timeout=600):
    # conftest points http_proxy at a closed port: the script must reach 127.0.0.1 directly anyway
    env = dict(os.environ, KERAS_BACKEND=backend, CNN_COURSE_QUICK="1", TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=SCRIPT.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _losses(text):
    return {
        int(p): [float(v) for v in losses.split(", ")]
        for p, losses in re.findall(r"Process (\d+): loss per epoch ([0-9., ]+?)(?=Process|\n|$)", text)
    }


@pytest.fixture(scope="module")
def two_processes():
    if "jax" not in backends.installed_backends():
        pytest.skip("JAX is not installed")
    return _run("--launch", "2", "--batch-size", "32", *SMALL)


@needs_jax
def test_two_processes_train_one_model_in_step(two_processes):
    out = two_processes.stdout
    assert two_processes.returncode == 0, two_processes.stderr[-2000:]
    digests = re.findall(r"Process (\d+): weights ([0-9a-f]{16}) after 2 epoch", out)
    assert sorted(p for p, _ in digests) == ["0", "1"]
    assert len({d for _, d in digests}) == 1  # the same weights in both processes
    for p in (0, 1):  # each feeds its half of every global batch of 2 x 32
        assert f"Process {p} of 2: 1 local device(s) of 2" in out
        assert (
            f"Process {p}: global batch 64 = 2 processes x 32 images; this process trains on 64 of 128 images"
        ) in out
    assert "STAND-IN" in out  # quick mode, labelled
    losses = _losses(out)
    assert losses[0] == losses[1] and losses[0][1] < losses[0][0]


@needs_jax
def test_the_global_batch_is_split_between_the_processes(two_processes):
    """One process training on whole global batches of 64 sees the same losses."""
    one = _run("--launch", "1", "--batch-size", "64", *SMALL)
    assert one.returncode == 0, one.stderr[-2000:]
    assert "Process 0: global batch 64 = 1 processes x 64 images; this process trains on 128 of 128" in one.stdout
    alone, together = _losses(one.stdout)[0], _losses(two_processes.stdout)[0]
    assert alone == pytest.approx(together, abs=2e-3)


@needs_jax
def test_a_failing_process_fails_the_launch_in_one_line():
    result = _run("--launch", "2", "--batch-size", "32", "--n-train", "10")
    assert result.returncode == 1
    assert "make no global batch of 64" in result.stderr and "Traceback" not in result.stderr
    assert re.search(r"error: process \d exited with status 2; the others were stopped", result.stderr)


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "give --coordinator, --processes and --process-id"),
        (["--coordinator", "127.0.0.1:1234", "--processes", "2", "--process-id", "2"], "must be from 0 to 1"),
        (["--coordinator", "nohost", "--processes", "2", "--process-id", "0"], "expected HOST:PORT"),
        (["--launch", "2", "--process-id", "0"], "--launch starts its own processes"),
        (["--launch", "0"], "must be a whole number above 0"),
    ],
)
def test_usage_errors_are_one_line(args, message):
    result = _run(*args, timeout=60)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_tensorflow_is_refused_in_one_line():
    result = _run(
        "--coordinator", "127.0.0.1:1", "--processes", "1", "--process-id", "0", backend="tensorflow", timeout=120
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "needs KERAS_BACKEND=jax" in result.stderr


def test_the_script_trains_the_lessons_model():
    """The script's build_model is the notebook's, layer for layer."""
    import keras

    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    source = next(
        "".join(c["source"]) for c in cells if c["cell_type"] == "code" and "def build_model" in "".join(c["source"])
    )
    lesson = {"keras": keras, "layers": keras.layers}
    exec(source, lesson)
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import data_parallel_processes as script
    finally:
        sys.path.remove(str(SCRIPT.parent))

    def layout(model):
        return [
            (type(layer).__name__, {k: v for k, v in layer.get_config().items() if k != "name"})
            for layer in model.layers
        ]

    ours, theirs = script.build_model(), lesson["build_model"]()
    assert layout(ours) == layout(theirs) and ours.count_params() == theirs.count_params()
