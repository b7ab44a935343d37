"""The Keras backend: chosen by `run --backend` or KERAS_BACKEND, checked before anything runs.

The lessons themselves run on every installed backend in their own test
modules (the `keras_backend` fixture of conftest.py); here are the runner's
choice of backend, its refusal of a backend that is not installed, the report
naming the backend, and `data status` being the same on each backend.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnn_course import __main__ as cli
from cnn_course import backends, runner

REPO = Path(__file__).resolve().parents[1]
FAKE_ENV = {"python": "3.11.7", "keras": "3.15.1", "backend": "jax", "backend_version": "0.10.2", "device": "CPU"}


@pytest.fixture
def clean_backend(monkeypatch, tmp_path):
    """No KERAS_BACKEND and an empty Keras home; the variable is restored afterwards."""
    monkeypatch.setenv("KERAS_BACKEND", "placeholder")  # so that monkeypatch restores the original
    monkeypatch.delenv("KERAS_BACKEND")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return tmp_path / "keras"


def test_backend_is_the_choice_then_the_variable_then_keras_json_then_tensorflow(clean_backend, monkeypatch):
    assert backends.keras_backend() == "tensorflow"
    clean_backend.mkdir()
    (clean_backend / "keras.json").write_text(json.dumps({"backend": "torch"}))
    assert backends.keras_backend() == "torch"
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert backends.keras_backend() == "jax"
    assert backends.keras_backend("tensorflow") == "tensorflow"


def test_a_keras_json_that_is_not_json_is_refused(clean_backend):
    # Keras would silently ignore every setting in it (test_run_arguments.py has the other cases)
    clean_backend.mkdir()
    (clean_backend / "keras.json").write_text("{not json")
    with pytest.raises(backends.BackendError, match="keras.json is not JSON"):
        backends.keras_backend()


def test_installed_backends_include_the_two_the_course_requires():
    assert {"tensorflow", "jax"} <= set(backends.installed_backends())


def test_check_backend_refuses_unknown_and_missing_backends(monkeypatch):
    assert backends.check_backend("jax") == "jax"
    with pytest.raises(
        backends.BackendError,
        match="'jx' is not a Keras backend the lessons train on; choose one of tensorflow, jax, torch",
    ):
        backends.check_backend("jx")
    monkeypatch.setattr(backends, "installed_backends", lambda: ("tensorflow",))
    with pytest.raises(backends.BackendError, match=r"the Keras backend 'jax' is not installed.*jax\[cpu\]"):
        backends.check_backend("jax")


def _registry(tmp_path):
    """A one-script lesson registry; the script prints the backend it was given."""
    script = tmp_path / "which_backend.py"
    script.write_text("import os\nprint('backend seen:', os.environ.get('KERAS_BACKEND'))\n")
    return {"which-backend": str(script)}


@pytest.mark.parametrize("how", ["option", "variable"])
def test_run_passes_the_backend_to_the_lessons(tmp_path, monkeypatch, capsys, clean_backend, how):
    monkeypatch.setattr(runner, "LESSONS", _registry(tmp_path))
    monkeypatch.setattr(backends, "environment_info", lambda: dict(FAKE_ENV))
    argv = ["run", "--out", str(tmp_path / "out")]
    if how == "option":
        argv += ["--backend", "jax"]
    else:
        monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert cli.main(argv) == 0
    assert (tmp_path / "out" / "which_backend.txt").read_text() == "backend seen: jax\n"
    out = capsys.readouterr().out
    assert "Device: CPU; Keras 3.15.1 on jax 0.10.2" in out
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    assert report["environment"]["backend"] == "jax" and report["environment"]["backend_version"] == "0.10.2"


@pytest.mark.parametrize("argv_backend, variable", [("torch", None), (None, "torch"), (None, "jx")])
def test_missing_backend_is_one_line_exit_2_before_anything_runs(
    tmp_path, monkeypatch, capsys, clean_backend, argv_backend, variable
):
    monkeypatch.setattr(backends, "installed_backends", lambda: ("tensorflow", "jax"))
    monkeypatch.setattr(runner, "LESSONS", _registry(tmp_path))

    def must_not_run(*args, **kwargs):
        raise AssertionError("ran although the backend is missing")

    monkeypatch.setattr(backends, "environment_info", must_not_run)
    monkeypatch.setattr(runner, "run_lesson", must_not_run)
    if variable:
        monkeypatch.setenv("KERAS_BACKEND", variable)
    argv = ["run", "--out", str(tmp_path / "out")] + (["--backend", argv_backend] if argv_backend else [])
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert ("'torch' is not installed" in lines[0]) if variable != "jx" else ("'jx' is not a Keras backend" in lines[0])
    assert not (tmp_path / "out").exists()


def test_unknown_backend_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", "--backend", "theano"])
    assert exit_.value.code == 2
    assert "invalid choice: 'theano'" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_environment_probe_names_the_backend_and_its_version(monkeypatch, backend):
    module = pytest.importorskip(backend)
    monkeypatch.setenv("KERAS_BACKEND", backend)
    info = backends.environment_info()
    assert "error" not in info, info.get("error")
    assert (info["backend"], info["backend_version"], info["device"]) == (backend, module.__version__, "CPU")


def test_data_status_is_the_same_on_each_backend(tmp_path):
    outputs = {}
    for backend in ("tensorflow", "jax"):
        env = dict(
            os.environ,
            KERAS_BACKEND=backend,
            PYTHONPATH=str(REPO),
            CNN_COURSE_DATA=str(tmp_path / "data"),
            KERAS_HOME=str(tmp_path / "keras"),
        )
        done = subprocess.run(
            [sys.executable, "-m", "cnn_course", "data", "status"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        outputs[backend] = done.stdout
    assert outputs["tensorflow"] == outputs["jax"]
    assert "MNIST" in outputs["jax"] or "mnist" in outputs["jax"]


# --------------------------------------------------------------------------
# The benchmarks take a backend too

sys.path.insert(0, str(REPO / "benchmarks"))
import backend_speed  # noqa: E402
import train_speed  # noqa: E402


def test_train_speed_refuses_a_missing_backend_before_training(monkeypatch, capsys, clean_backend, tmp_path):
    monkeypatch.setattr(backends, "installed_backends", lambda: ("tensorflow", "jax"))

    def must_not_train(spec):
        raise AssertionError("trained although the backend is missing")

    monkeypatch.setattr(train_speed, "run_child", must_not_train)
    monkeypatch.setattr(train_speed, "load_split", must_not_train)
    assert train_speed.main(["--backend", "torch", "--quick", "--out", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'torch' is not installed" in err[0]
    assert not (tmp_path / "r.json").exists()


def test_train_speed_lesson_precision_follows_the_backend(monkeypatch):
    import cnn_course.speed

    monkeypatch.setattr(
        cnn_course.speed,
        "unmeasured_cpu_precision",
        lambda backend, cpuinfo=None: ("mixed_bfloat16" if backend == "tensorflow" else "float32", ""),
    )
    for backend, expected in (("tensorflow", "mixed_bfloat16"), ("jax", None)):
        monkeypatch.setenv("KERAS_BACKEND", backend)
        for model in train_speed.PAIRED_MODELS:
            assert train_speed.pipeline_settings(model, "lesson")["mixed_precision"] == expected


def test_backend_speed_refuses_a_missing_backend(monkeypatch, capsys):
    monkeypatch.setattr(backends, "installed_backends", lambda: ("tensorflow",))
    monkeypatch.setattr(train_speed, "run_child", lambda spec: pytest.fail("trained"))
    assert backend_speed.main(["--backends", "tensorflow,jax"]) == 2
    assert "'jax' is not installed" in capsys.readouterr().err
