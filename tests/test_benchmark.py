"""benchmarks/train_speed.py: the quick run on stand-in data writes a complete
results file; bad arguments give one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "train_speed.py"
sys.path.insert(0, str(REPO / "benchmarks"))

import train_speed  # noqa: E402


def _offline_env(tmp_path):
    """The environment of a hermetic run: no real data anywhere, no downloads."""
    env = dict(os.environ)
    for name in ("data", "keras"):
        (tmp_path / name).mkdir(exist_ok=True)
    env.update(CNN_COURSE_OFFLINE="1", CNN_COURSE_DATA=str(tmp_path / "data"),
               KERAS_HOME=str(tmp_path / "keras"), KERAS_BACKEND="tensorflow",
               TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO))
    return env


def _run(args, env, timeout=240):
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_quick_run_on_standin_writes_both_models(tmp_path):
    out = tmp_path / "results.json"
    proc = _run(["--quick", "--out", str(out)], _offline_env(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(out.read_text())
    assert set(results["models"]) == {"mnist_mlp", "cifar10_cnn"}
    for model, entry in results["models"].items():
        assert isinstance(entry["speedup_throughput"], float) and entry["speedup_throughput"] > 0, model
        assert "speedup_time_to_target" in entry and entry["speedup_time_to_target"] is None, model
        assert entry["real_data"] is False and "STAND-IN" in entry["data"], model
        assert entry["original"]["settings"]["optimizer"] == "rmsprop"
        assert entry["original"]["peak_rss_mb"] > 0 and entry["lesson"]["peak_rss_mb"] > 0
        if model == "cifar10_cnn":  # the original holds float32 images (4 bytes a pixel), the lesson uint8
            assert entry["original"]["data_mb"] > 3 * entry["lesson"]["data_mb"]
        else:  # the MNIST lesson makes one float32 copy, as the course did
            assert entry["original"]["data_mb"] == entry["lesson"]["data_mb"]
    assert results["models"]["mnist_mlp"]["original"]["runs"][0]["params"] == 669_706
    assert results["models"]["cifar10_cnn"]["original"]["runs"][0]["params"] == 528_054
    assert "STAND-IN" in proc.stdout and "ratio" in proc.stdout


def test_gpu_settings_run_on_cpu(tmp_path):
    """The lesson's GPU path (device-resident PyDataset, mixed_float16, XLA,
    steps_per_execution) trains when forced on a CPU."""
    out = tmp_path / "gpu.json"
    proc = _run(["--quick", "--gpu-path", "--models", "cifar10_cnn", "--out", str(out)], _offline_env(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    lesson = json.loads(out.read_text())["models"]["cifar10_cnn"]["lesson"]
    assert lesson["settings"]["mixed_precision"] == "mixed_float16"
    assert lesson["settings"]["jit_compile"] is True
    assert lesson["images_per_s"] > 0


def test_bad_npz_is_one_line_error(tmp_path):
    proc = _run(["--quick", "--models", "cifar10_cnn", "--cifar-npz", str(tmp_path / "missing.npz"),
                 "--out", str(tmp_path / "r.json")], _offline_env(tmp_path), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: no such file: {tmp_path / 'missing.npz'}"]
    assert not (tmp_path / "r.json").exists()


def test_unknown_model_is_a_usage_error(tmp_path):
    proc = _run(["--models", "resnet"], _offline_env(tmp_path), timeout=60)
    assert proc.returncode == 2 and "unknown model resnet" in proc.stderr


def test_npz_split_follows_the_original_course(tmp_path):
    """CIFAR-10 holds out the first 5,000 training images, MNIST the last 20%."""
    rng = np.random.default_rng(0)
    c = tmp_path / "c.npz"
    y = np.arange(6000) % 10
    np.savez(c, x_train=rng.integers(0, 255, (6000, 32, 32, 3), dtype=np.uint8), y_train=y.reshape(-1, 1),
             x_test=np.zeros((10, 32, 32, 3), np.uint8), y_test=np.zeros(10, np.uint8))
    d = train_speed.load_split("cifar10_cnn", npz=c)
    assert d["real"] and len(d["x_val"]) == 600 and len(d["x_train"]) == 5400
    assert d["y_train"].ndim == 1 and d["x_train"].dtype == np.uint8
    np.testing.assert_array_equal(d["y_val"], y[:600])

    m = tmp_path / "m.npz"
    np.savez(m, x_train=np.zeros((100, 28, 28), np.uint8), y_train=np.arange(100) % 10,
             x_test=np.zeros((10, 28, 28), np.uint8), y_test=np.zeros(10, np.uint8))
    d = train_speed.load_split("mnist_mlp", npz=m)
    assert len(d["x_train"]) == 80 and len(d["x_val"]) == 20
    np.testing.assert_array_equal(d["y_val"], np.arange(80, 100) % 10)

    with pytest.raises(train_speed.UsageError, match="uint8 of shape"):
        train_speed.load_split("mnist_mlp", npz=c)


def test_paired_measurement_gives_the_throughput_ratio(tmp_path):
    """The paired run alternates both pipelines in one process; its median
    ratio is speedup_throughput, and --paired-rounds 0 falls back to the
    full runs' ratio."""
    env = _offline_env(tmp_path)
    out = tmp_path / "paired.json"
    proc = _run(["--quick", "--models", "mnist_mlp", "--paired-rounds", "3", "--out", str(out)], env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    entry = json.loads(out.read_text())["models"]["mnist_mlp"]
    paired = entry["paired"]
    assert paired["rounds"] == 3 and len(paired["ratios"]) == 3
    assert all(v > 0 for v in paired["original_images_per_s"] + paired["lesson_images_per_s"])
    assert entry["speedup_throughput"] == paired["median_ratio"]
    assert paired["median_ratio"] == sorted(paired["ratios"])[1]
    assert "paired" in proc.stdout

    out0 = tmp_path / "unpaired.json"
    proc = _run(["--quick", "--models", "mnist_mlp", "--paired-rounds", "0", "--out", str(out0)], env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    entry = json.loads(out0.read_text())["models"]["mnist_mlp"]
    assert "paired" not in entry
    assert entry["speedup_throughput"] == entry["speedup_throughput_full_runs"]


def test_unknown_scaling_override_is_one_error_line(tmp_path):
    proc = _run(["--quick", "--models", "cifar10_cnn", "--lesson", "scaling=zscore", "--paired-rounds", "0",
                 "--out", str(tmp_path / "r.json")], _offline_env(tmp_path), timeout=120)
    assert proc.returncode == 2 and "run 1" not in proc.stdout  # refused before any training
    assert proc.stderr.strip().splitlines() == [
        "error: --lesson takes inputs=float32, or inputs=uint8 with scaling=rescale or scaling=centred "
        "(or normalize_on=N)"]
    assert not (tmp_path / "r.json").exists()


def test_negative_paired_rounds_is_a_usage_error(tmp_path):
    proc = _run(["--paired-rounds", "-1"], _offline_env(tmp_path), timeout=60)
    assert proc.returncode == 2 and "--paired-rounds must be 0 or more" in proc.stderr


def _parameters(notebook):
    """The assignments of a notebook's parameters cell, as a dict."""
    import ast

    nb = json.loads((REPO / notebook).read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    values = {}
    for node in ast.parse("".join(cell["source"])).body:
        if isinstance(node, ast.Assign):
            values[node.targets[0].id] = ast.literal_eval(node.value)
    return values, "".join("".join(c["source"]) for c in nb["cells"])


@pytest.mark.parametrize("model, notebooks", [
    ("mnist_mlp", ["mnist-mlp/mnist_mlp.ipynb"]),
    ("cifar10_cnn", ["cifar10-classification/cifar10_cnn.ipynb",
                     "cifar10-augmentation/cifar10_augmentation.ipynb"]),
])
def test_lesson_pipeline_is_what_the_notebooks_run(model, notebooks):
    """The benchmark's CPU lesson settings must not drift from the notebooks'."""
    lesson = train_speed.LESSON_CPU[model]
    for notebook in notebooks:
        params, text = _parameters(notebook)
        assert params["BATCH_SIZE"] == lesson["batch_size"], notebook
        assert params["LEARNING_RATE"] == lesson["learning_rate"], notebook
        assert params["PRECISION"] == "auto" and lesson["bf16"], notebook
        assert params.get("STEPS_PER_EXECUTION", 1) == lesson["steps_per_execution"], notebook
        if "STEPS_PER_EXECUTION" in params:
            assert "steps_per_execution=STEPS_PER_EXECUTION" in text, notebook
        assert f"keras.optimizers.{ {'adam': 'Adam', 'rmsprop': 'RMSprop'}[lesson['optimizer']] }(" in text
        if lesson.get("schedule") == "cosine":
            assert "CosineDecay(LEARNING_RATE, decay_steps=EPOCHS * steps_per_epoch)" in text
            assert params["EPOCHS"] == lesson["schedule_epochs"], notebook
        scaling = {"centred": "keras.layers.Rescaling(1 / 127.5, offset=-1)",
                   "rescale": "keras.layers.Rescaling(1 / 255)"}.get(lesson["scaling"])
        if lesson["inputs"] == "uint8":
            assert scaling in text, notebook
        else:
            assert 'x_train.astype("float32") / 255' in text and "Rescaling" not in text, notebook
