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
    env.update(
        CNN_COURSE_OFFLINE="1",
        CNN_COURSE_DATA=str(tmp_path / "data"),
        KERAS_HOME=str(tmp_path / "keras"),
        KERAS_BACKEND="tensorflow",
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONPATH=str(REPO),
    )
    return env


def _run(args, env, timeout=600):
    # The timeout only guards against a hang: a quick run takes minutes on a busy shared machine.
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_quick_run_on_standin_writes_both_paired_models(tmp_path):
    # modern_cnn runs the lesson notebook; tests/test_lessons_modern.py checks that
    # parse_modern reads that notebook's real output, so it is not run twice here
    out = tmp_path / "results.json"
    proc = _run(["--quick", "--models", "mnist_mlp,cifar10_cnn", "--out", str(out)], _offline_env(tmp_path))
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
    proc = _run(
        [
            "--quick",
            "--models",
            "cifar10_cnn",
            "--cifar-npz",
            str(tmp_path / "missing.npz"),
            "--out",
            str(tmp_path / "r.json"),
        ],
        _offline_env(tmp_path),
        timeout=60,
    )
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
    np.savez(
        c,
        x_train=rng.integers(0, 255, (6000, 32, 32, 3), dtype=np.uint8),
        y_train=y.reshape(-1, 1),
        x_test=np.zeros((10, 32, 32, 3), np.uint8),
        y_test=np.zeros(10, np.uint8),
    )
    d = train_speed.load_split("cifar10_cnn", npz=c)
    assert d["real"] and len(d["x_val"]) == 600 and len(d["x_train"]) == 5400
    assert d["y_train"].ndim == 1 and d["x_train"].dtype == np.uint8
    np.testing.assert_array_equal(d["y_val"], y[:600])

    m = tmp_path / "m.npz"
    np.savez(
        m,
        x_train=np.zeros((100, 28, 28), np.uint8),
        y_train=np.arange(100) % 10,
        x_test=np.zeros((10, 28, 28), np.uint8),
        y_test=np.arange(10, dtype=np.uint8),
    )
    d = train_speed.load_split("mnist_mlp", npz=m)
    assert len(d["x_train"]) == 80 and len(d["x_val"]) == 20
    np.testing.assert_array_equal(d["y_val"], np.arange(80, 100) % 10)

    from cnn_course.data import DataError

    with pytest.raises(DataError, match=r"expected \(N, 28, 28\)"):
        train_speed.load_split("mnist_mlp", npz=c)
    with pytest.raises(DataError, match=r"uint8 of shape \(N, 32, 32, 3\)"):
        train_speed.load_split("cifar10_cnn", npz=m)


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


@pytest.mark.parametrize(
    "lesson, message",
    [
        ("scaling=zscore", '--lesson scaling=zscore: scaling must be one of null, "rescale", "centred"'),
        ("batchsize=256", "--lesson batchsize=256: unknown setting 'batchsize'; known: batch_size, optimizer"),
        ("batch_size=abc", "--lesson batch_size=abc: batch_size must be a whole number, at least 1"),
        ("inputs=uint8,scaling=null", "--lesson takes inputs=float32, or inputs=uint8 with scaling=rescale"),
    ],
)
def test_bad_overrides_are_one_error_line_before_training(tmp_path, lesson, message):
    proc = _run(
        [
            "--quick",
            "--models",
            "cifar10_cnn",
            "--lesson",
            lesson,
            "--paired-rounds",
            "0",
            "--out",
            str(tmp_path / "r.json"),
        ],
        _offline_env(tmp_path),
        timeout=120,
    )
    assert proc.returncode == 2 and "run 1" not in proc.stdout  # refused before any training
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: " + message), proc.stderr
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("batch_size=256,learning_rate=0.003", {"batch_size": 256, "learning_rate": 0.003}),
        (
            "schedule=cosine, schedule_epochs=6, mixed_precision=null",
            {"schedule": "cosine", "schedule_epochs": 6, "mixed_precision": None},
        ),
        (
            "jit_compile=auto,steps_per_execution=8,optimizer=adam",
            {"jit_compile": "auto", "steps_per_execution": 8, "optimizer": "adam"},
        ),
        ("", {}),
    ],
)
def test_good_overrides_parse(text, expected):
    assert train_speed.parse_overrides(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "batch_size=0",
        "batch_size=true",
        "batch_size=2.5",
        "learning_rate=-1",
        "learning_rate=NaN",
        "optimizer=sgd",
        "jit_compile=1",
        "normalize_on=abc",
    ],
)
def test_bad_override_values_are_refused(text):
    with pytest.raises(train_speed.UsageError, match=f"--lesson {text}: "):
        train_speed.parse_overrides(text)


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


@pytest.mark.parametrize(
    "model, notebooks",
    [
        ("mnist_mlp", ["mnist-mlp/mnist_mlp.ipynb"]),
        (
            "cifar10_cnn",
            ["cifar10-classification/cifar10_cnn.ipynb", "cifar10-augmentation/cifar10_augmentation.ipynb"],
        ),
    ],
)
def test_lesson_pipeline_is_what_the_notebooks_run(model, notebooks):
    """The benchmark's CPU lesson settings must not drift from the notebooks' (lessons 1 and 3; the
    augmentation lesson trains the same CNN the same way, over its own number of epochs)."""
    lesson = train_speed.LESSON_CPU[model]
    for notebook in notebooks:
        params, text = _parameters(notebook)
        assert params["BATCH_SIZE"] == lesson["batch_size"], notebook
        assert params["LEARNING_RATE"] == lesson["learning_rate"], notebook
        # no PRECISION parameter: precision_policy measures the lesson's model, as the benchmark does
        assert "PRECISION" not in params and lesson["mixed_precision"] == "auto", notebook
        assert "precision_policy(model=build_model, data=(x_train[:BATCH_SIZE], y_train_onehot[:BATCH_SIZE]))" in text
        assert text.index("precision_policy(model=build_model") < text.index("model = build_model()"), notebook
        assert params.get("STEPS_PER_EXECUTION", 1) == lesson["steps_per_execution"], notebook
        if "STEPS_PER_EXECUTION" in params:
            assert "steps_per_execution=STEPS_PER_EXECUTION" in text, notebook
        assert f"keras.optimizers.{ {'adam': 'Adam', 'rmsprop': 'RMSprop'}[lesson['optimizer']] }(" in text
        # a schedule in the notebook is one in the benchmark, and the other way round
        cosine = "CosineDecay(LEARNING_RATE, decay_steps=EPOCHS * steps_per_epoch)" in text
        assert cosine == (lesson.get("schedule") == "cosine"), notebook
        if cosine and "augmentation" not in notebook:
            assert params["EPOCHS"] == lesson["schedule_epochs"], notebook
        scaling = {
            "centred": "keras.layers.Rescaling(1 / 127.5, offset=-1)",
            "rescale": "keras.layers.Rescaling(1 / 255)",
        }.get(lesson["scaling"])
        if lesson["inputs"] == "uint8":
            assert scaling in text, notebook
        else:
            assert 'x_train.astype("float32") / 255' in text and "Rescaling" not in text, notebook


# --------------------------------------------------------------------------
# Checked before training; nothing measured is lost


@pytest.mark.parametrize("measured, expected", [("mixed_bfloat16", "mixed_bfloat16"), ("float32", None)])
def test_lesson_precision_is_chosen_on_the_lessons_model_as_in_the_notebooks(monkeypatch, measured, expected):
    """The lesson pipeline's precision is what precision_policy measures for the notebook's model
    and batch (issue 25: the unmeasured rule left the AMD EPYC in float32); a quick run does not measure."""
    from cnn_course import speed

    calls = []

    def choose(model=None, data=None, cache=None, cpuinfo="/proc/cpuinfo", quick=None):
        net = model()
        calls.append((net.name, net.layers[-1].dtype_policy.name, data[0].shape, data[1].shape))
        return measured, "fake"

    monkeypatch.setattr(speed, "choose_precision", choose)
    settings = train_speed.pipeline_settings("mnist_mlp", "lesson", quick=False)
    assert settings["mixed_precision"] == expected
    assert calls == [("mnist_mlp", "float32", (1024, 28, 28), (1024, 10))]
    cnn = train_speed.pipeline_settings("cifar10_cnn", "lesson", quick=False)
    assert cnn["mixed_precision"] == expected and calls[-1][0] == "cifar10_cnn" and calls[-1][2] == (512, 32, 32, 3)
    assert (
        train_speed.pipeline_settings("mnist_mlp", "lesson", overrides={"mixed_precision": None}, quick=False)[
            "mixed_precision"
        ]
        is None
    )
    train_speed.pipeline_settings("mnist_mlp", "lesson", quick=True)
    assert len(calls) == 2


def test_out_that_cannot_be_written_is_refused_before_training(tmp_path):
    env = _offline_env(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("mine\n")
    for out, message in [
        (tmp_path, f"error: --out {tmp_path}: is a folder; give a file name"),
        (blocker / "r.json", f"error: --out {blocker / 'r.json'}: {blocker} is a file, not a folder"),
    ]:
        proc = _run(["--quick", "--models", "mnist_mlp", "--out", str(out)], env, timeout=60)
        assert proc.returncode == 2 and "run 1" not in proc.stdout, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(message), proc.stderr
    assert blocker.read_text() == "mine\n"


def _corrupt_files(folder):
    """name -> path of an .npz-named file that is not a usable Keras-layout .npz."""
    good = folder / "good.npz"
    np.savez_compressed(
        good,
        x_train=np.zeros((50, 32, 32, 3), np.uint8),
        y_train=np.arange(50) % 10,
        x_test=np.zeros((10, 32, 32, 3), np.uint8),
        y_test=np.arange(10),
    )
    whole = good.read_bytes()
    middle = len(whole) // 3  # inside the compressed x_train: the zip's directory is intact
    files = {
        "truncated": whole[:700],
        "garbage": b"not a zip file at all\n" * 10,
        "damaged": whole[:middle] + bytes(64) + whole[middle + 64 :],
    }
    for name, data in files.items():
        (folder / f"{name}.npz").write_bytes(data)
    np.save(folder / "single.npy", np.zeros((3, 3)))
    (folder / "single.npy").rename(folder / "single.npz")
    np.savez(
        folder / "objects.npz",
        x_train=np.array([None, 1], dtype=object),
        y_train=np.zeros(2),
        x_test=np.zeros(1),
        y_test=np.zeros(1),
    )
    np.savez(
        folder / "labels.npz",
        x_train=np.zeros((20, 32, 32, 3), np.uint8),
        y_train=np.arange(20),
        x_test=np.zeros((10, 32, 32, 3), np.uint8),
        y_test=np.arange(10),
    )
    return {name: folder / f"{name}.npz" for name in ("truncated", "garbage", "damaged", "single", "objects", "labels")}


@pytest.mark.parametrize("option, model", [("--cifar-npz", "cifar10_cnn"), ("--mnist-npz", "mnist_mlp")])
def test_corrupt_npz_is_one_line_data_error(tmp_path, monkeypatch, capsys, option, model):
    monkeypatch.setattr(train_speed, "run_child", lambda spec: pytest.fail("trained on a corrupt file"))
    for name, path in _corrupt_files(tmp_path).items():
        code = train_speed.main(["--quick", "--models", model, option, str(path), "--out", str(tmp_path / "r.json")])
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert code == 1, (name, captured.err)
        assert len(lines) == 1 and lines[0].startswith(f"error: {path}"), (name, captured.err)
        if name == "garbage":  # NumPy's guess for a file that is not a zip: a pickle
            assert lines[0] == f"error: {path}: not an .npz file (an .npz is a zip archive of arrays)"
    assert not (tmp_path / "r.json").exists()


def _fake_run(spec):
    """What a measuring subprocess returns, without training anything."""
    if spec["pipeline"] == "paired":
        return {"skipped": "not measured here"}
    epochs = [{"train_s": 1.0, "epoch_s": 1.2, "since_start_s": 1.5, "val_accuracy": 0.5}]
    return {
        "model": spec["model"],
        "pipeline": spec["pipeline"],
        "settings": {"optimizer": "rmsprop"},
        "data": "STAND-IN",
        "real_data": False,
        "n_train": 256,
        "n_val": 64,
        "device": "CPU: test",
        "versions": "Keras test",
        "epochs": epochs,
        "data_bytes": 1000,
        "images_per_s": 2560.0,
        "epoch_train_s": 1.0,
        "epoch_s": 1.2,
        "first_epoch_s": 1.2,
        "epochs_to_target": None,
        "time_to_target_s": None,
        "peak_rss_mb": 300.0,
    }


def test_a_failed_write_keeps_the_table(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(train_speed, "run_child", _fake_run)

    def disk_full(results, out):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(train_speed, "write_results", disk_full)
    out = tmp_path / "r.json"
    code = train_speed.main(["--quick", "--standin", "--models", "mnist_mlp", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1
    assert "mnist_mlp    original      2,560" in captured.out  # the figures were printed first
    assert captured.err.strip().splitlines() == [
        f"error: {out} could not be written (No space left on device); the table above has the figures"
    ]


def test_a_later_failure_keeps_the_finished_models(tmp_path, monkeypatch, capsys):
    def second_fails(spec):
        if spec["model"] == "cifar10_cnn":
            raise RuntimeError("cifar10_cnn original run failed (exit 1): MemoryError")
        return _fake_run(spec)

    monkeypatch.setattr(train_speed, "run_child", second_fails)
    out = tmp_path / "r.json"
    out.write_text("the previous results\n")
    code = train_speed.main(["--quick", "--standin", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1
    assert "mnist_mlp    original      2,560" in captured.out
    assert "error: cifar10_cnn original run failed (exit 1): MemoryError" in captured.err
    assert out.read_text() == "the previous results\n"  # an unfinished run replaces nothing


def test_write_results_replaces_the_file_whole(tmp_path):
    out = tmp_path / "r.json"
    out.write_text("old\n")
    train_speed.write_results({"models": {}}, out)
    assert json.loads(out.read_text()) == {"models": {}}
    with pytest.raises(TypeError):
        train_speed.write_results({"models": object()}, out)
    assert json.loads(out.read_text()) == {"models": {}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]  # no temporary left


MODERN_TEXT = """epoch 1: training accuracy 47.70%, test accuracy 59.04%, 412 images/s, 2.1 min since the start
epoch 2: training accuracy 80.00%, test accuracy 86.10%, 520 images/s, 3.9 min since the start
Reached 85% test accuracy at epoch 2, 3.9 min after the start
epoch 3: training accuracy 88.00%, test accuracy 89.50%, 1,530 images/s, 4.4 min since the start
90% test accuracy was not reached in 3 epochs
"""


def test_parse_modern_reads_the_lessons_lines():
    parsed = train_speed.parse_modern(MODERN_TEXT)
    assert [e["epoch"] for e in parsed["epochs"]] == [1, 2, 3]
    assert parsed["epochs"][2]["images_per_s"] == 1530 and parsed["epochs"][0]["test_accuracy"] == 0.5904
    assert parsed["images_per_s"] == 1025  # median of the epochs after the first, which also compiles
    assert parsed["minutes_to"] == {"85": 3.9, "90": None}
    entry = {**parsed, "test_accuracy": 0.8973, "wall_s": 300, "data": "CIFAR-10 (real)"}
    line = train_speed.modern_line(entry)
    assert "89.73%" in line and "85% at 3.9 min" in line and "90% not reached" in line
    text = train_speed.table({"models": {"modern_cnn": entry}, "device": "CPU", "versions": "Keras"})
    assert line in text and "pipeline" not in text  # no empty table of the paired pipelines
    with pytest.raises(RuntimeError, match="no epoch line"):
        train_speed.parse_modern("Test accuracy: 10.00%")


def _run_record(pipeline, reached_s, last_s):
    epochs = [{"train_s": 1.0, "epoch_s": 1.0, "since_start_s": last_s, "val_accuracy": 0.5}]
    return {
        "pipeline": pipeline,
        "settings": {},
        "images_per_s": 100.0,
        "epoch_train_s": 1.0,
        "epoch_s": 1.0,
        "time_to_target_s": reached_s,
        "epochs_to_target": None if reached_s is None else 3,
        "peak_rss_mb": 1.0,
        "data_bytes": 1,
        "epochs": epochs,
        "data": "CIFAR-10 (real)",
        "real_data": True,
        "n_train": 10,
        "n_val": 5,
    }


def test_a_target_the_original_never_reached_gives_a_lower_bound():
    runs = [_run_record("original", None, 600.0), _run_record("lesson", 50.0, 80.0)]
    entry = train_speed.summarize("cifar10_cnn", runs)
    assert entry["speedup_time_to_target"] is None
    assert entry["speedup_time_to_target_at_least"] == pytest.approx(12.0)  # 600 s without the target / 50 s
    text = train_speed.table({"models": {"cifar10_cnn": entry}, "device": "CPU", "versions": "Keras"})
    assert "time to target at least 12.00x: the original trained 600 s without reaching it" in text

    runs = [_run_record("original", 200.0, 600.0), _run_record("lesson", 50.0, 80.0)]
    entry = train_speed.summarize("cifar10_cnn", runs)  # both reached: a plain ratio, no bound
    assert entry["speedup_time_to_target"] == pytest.approx(4.0)
    assert "speedup_time_to_target_at_least" not in entry


def test_run_modern_runs_the_lesson_notebook_and_reads_it(monkeypatch):
    from cnn_course import lessons, runner

    calls = []

    def fake_execute(path, parameters, out_dir, quick=False):
        calls.append((Path(path), parameters, quick))
        return {
            "status": "passed",
            "error": None,
            "data": "STAND-IN for CIFAR-10: ...",
            "test_accuracy": 89.73,
            "wall_time_s": 300.0,
            "text": MODERN_TEXT,
        }

    monkeypatch.setattr(runner, "execute_notebook", fake_execute)
    entry = train_speed.run_modern(quick=True)
    path, parameters, quick = calls[0]
    assert path == REPO / "training-speed" / "modern_cnn.ipynb" and quick is True
    assert parameters["VERBOSE"] == 0 and parameters["EPOCHS"] == lessons.QUICK_PARAMETERS["modern-cnn"]["EPOCHS"]
    assert not Path(parameters["CHECKPOINT"]).exists()  # written to a temporary folder, removed afterwards
    assert entry["test_accuracy"] == pytest.approx(0.8973) and entry["real_data"] is False
    assert entry["minutes_to"] == {"85": 3.9, "90": None} and entry["wall_s"] == 300.0

    monkeypatch.setattr(runner, "execute_notebook", lambda *a, **k: {"status": "failed", "error": "ValueError: x"})
    with pytest.raises(RuntimeError, match="modern_cnn: the lesson failed: ValueError: x"):
        train_speed.run_modern(quick=True)
