"""The command line: python -m cnn_course run | data | strip.

Runs go through a fake lesson registry (the fixture notebooks and tiny
scripts), so these tests never execute the real lessons.
"""

import importlib.util
import io
import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

import cnn_course
from cnn_course import __main__ as cli
from cnn_course import runner

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REPO = Path(__file__).resolve().parents[1]
FAKE_ENV = {"python": "3.11.7", "keras": "3.15.1", "backend": "tensorflow",
            "backend_version": "2.21.0", "device": "CPU"}


@pytest.fixture
def fake_env(monkeypatch):
    """Skip the (slow) environment probe: the report gets FAKE_ENV."""
    monkeypatch.setattr(runner, "environment_info", lambda: dict(FAKE_ENV))


def _scripts(folder, names):
    """Write one tiny script per name; return the registry {name: path}."""
    registry = {}
    for name in names:
        path = folder / f"{name}.py"
        path.write_text(f"print('{name} ran')\n", encoding="utf-8")
        registry[name] = str(path)
    return registry


# --------------------------------------------------------------------------
# Arguments


@pytest.mark.parametrize(
    "text, expected",
    [
        ("EPOCHS=3", ("EPOCHS", 3)),
        ("LR=1e-3", ("LR", 0.001)),
        ("QUICK=False", ("QUICK", False)),
        ("DATA_PATH=None", ("DATA_PATH", None)),
        ("SIZE=(32, 32)", ("SIZE", (32, 32))),
        ("OPT='sgd'", ("OPT", "sgd")),
        ("OPT=adam", ("OPT", "adam")),  # not a literal: the raw string
        ("DATA_PATH=/data/cifar10.tar.gz", ("DATA_PATH", "/data/cifar10.tar.gz")),
        ("NOTE=a=b", ("NOTE", "a=b")),
        ("EMPTY=", ("EMPTY", "")),
    ],
)
def test_parse_parameter(text, expected):
    assert cli.parse_parameter(text) == expected


@pytest.mark.parametrize("text, message", [("EPOCHS", "expected NAME=VALUE"), ("2X=1", "not a valid Python name")])
def test_parse_parameter_refuses_malformed(text, message):
    with pytest.raises(ValueError, match=message):
        cli.parse_parameter(text)


def test_unknown_lesson_is_refused_with_the_valid_names(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", "mnist-mlp", "mnist-cnn"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "unknown lesson 'mnist-cnn'" in err
    assert all(name in err for name in runner.LESSONS)


def test_malformed_parameter_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", "conv-dims", "-p", "EPOCHS"])
    assert exit_.value.code == 2
    assert "expected NAME=VALUE" in capsys.readouterr().err


def test_help_lists_the_commands_and_lessons(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "run" in out and "data" in out and "strip" in out
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    out = capsys.readouterr().out
    assert "--quick" in out and "NAME=VALUE" in out and "conv-visualization" in out


def test_python_dash_m_entry_point():
    done = subprocess.run([sys.executable, "-m", "cnn_course", "run", "no-such-lesson"],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 2
    assert "valid names: mnist-mlp" in done.stderr and "Traceback" not in done.stderr


# --------------------------------------------------------------------------
# Runs (fake registry)


def test_run_continues_after_a_failure_and_writes_the_report(tmp_path, monkeypatch, capsys, fake_env):
    registry = {
        "broken": str(FIXTURES / "failing.ipynb"),
        "fixture": str(FIXTURES / "passing.ipynb"),
        **_scripts(tmp_path, ["dims"]),
    }
    monkeypatch.setattr(runner, "LESSONS", registry)
    out_dir = tmp_path / "build"
    code = cli.main(["run", "--quick", "-p", "EPOCHS=4", "--out", str(out_dir)])
    assert code == 1

    report = json.loads((out_dir / "results.json").read_text())
    assert report["mode"] == "quick"
    assert report["parameters"] == {"VERBOSE": 2, "EPOCHS": 4}
    assert report["environment"] == FAKE_ENV
    assert (report["passed"], report["failed"]) == (2, 1)
    broken, fixture, dims = report["lessons"]
    assert broken["status"] == "failed" and broken["error"] == "ValueError: fixture failure after 3 values"
    assert broken["failed_cell"]["first_line"] == "values = [1, 2, 3]"
    # the failure did not stop the next lessons; -p EPOCHS=4 reached the notebook
    # (the fixture has no quick sizes in runner.QUICK_PARAMETERS)
    assert fixture["status"] == "passed" and fixture["epochs"] == 4 and fixture["test_accuracy"] == 87.5
    assert dims["status"] == "passed" and dims["data"] is None
    for name in ("passing.ipynb", "passing.html", "failing.ipynb", "failing.html", "dims.txt", "results.md"):
        assert (out_dir / name).is_file(), name

    out = capsys.readouterr().out
    md = (out_dir / "results.md").read_text()
    table = md[md.index("| Lesson"):md.index("\n\n", md.index("| Lesson"))]
    assert table in out  # the same table is printed at the end
    assert "- **broken**: cell 3 `values = [1, 2, 3]`: ValueError: fixture failure after 3 values" in out
    # not a TTY: one plain line per cell start, and the compact epoch lines
    assert "[2/3] fixture  cell 1/7" in out and "[2/3] fixture  cell 7/7" in out
    assert "    epoch 4/4  0s - accuracy: 0.4000 - loss: 1.4000" in out
    assert "\r" not in out


def test_run_picks_lessons_in_course_order_and_passes(tmp_path, monkeypatch, capsys, fake_env):
    monkeypatch.setattr(runner, "LESSONS", _scripts(tmp_path, ["first", "second", "third"]))
    code = cli.main(["run", "third", "first", "third", "-p", "VERBOSE=0", "--out", str(tmp_path / "o")])
    assert code == 0
    report = json.loads((tmp_path / "o" / "results.json").read_text())
    assert [r["lesson"] for r in report["lessons"]] == ["first", "third"]
    assert report["mode"] == "full" and report["parameters"] == {"VERBOSE": 0}
    assert "2 passed, 0 failed" in capsys.readouterr().out


def test_tty_progress_redraws_one_line():
    stream = io.StringIO()
    progress, finish = cli.console_progress("[1/1] demo", stream, tty=True)
    progress({"event": "start", "total": 3})
    progress({"event": "cell", "done": 0, "total": 3, "first_line": "model.fit(x, y)"})
    progress({"event": "output", "name": "stdout", "text": "Epoch 1/3\n12/12 - 1"})
    progress({"event": "output", "name": "stdout", "text": "s - 80ms/step - accuracy: 0.5 - loss: 1.2\nother\n"})
    finish("[1/1] demo  passed")
    text = stream.getvalue()
    assert "\r\x1b[K[1/1] demo  cell 1/3  0:00  model.fit(x, y)" in text
    assert "    epoch 1/3  1s - accuracy: 0.5 - loss: 1.2\n" in text
    assert "other" not in text
    assert text.endswith("\r\x1b[K[1/1] demo  passed\n")


def test_single_epoch_fit_is_shown_without_a_header():
    stream = io.StringIO()
    progress, finish = cli.console_progress("[1/1] demo", stream, tty=False)
    progress({"event": "output", "name": "stdout",
              "text": "9/9 - 9s - 983ms/step - accuracy: 0.52 - val_accuracy: 0.79\n12/12 - 2s - 1ms/step - accuracy: 0.8\n"})
    finish("done")
    assert stream.getvalue() == "    epoch 1/1  9s - accuracy: 0.52 - val_accuracy: 0.79\ndone\n"


def test_compact_epoch_drops_the_step_counts():
    line = cli.compact_epoch("Epoch 3/10", "469/469 - 12s - 25ms/step - accuracy: 0.9712 - loss: 0.0931")
    assert line == "epoch 3/10  12s - accuracy: 0.9712 - loss: 0.0931"


# --------------------------------------------------------------------------
# strip


def test_strip_command_clears_a_notebook(tmp_path, capsys):
    nb = nbformat.read(FIXTURES / "passing.ipynb", as_version=4)
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
    nb.cells[2].execution_count = 7
    nb.cells[2].metadata["execution"] = {"iopub.status.busy": "2024-01-01T00:00:00"}
    dirty = tmp_path / "dirty.ipynb"
    nbformat.write(nb, dirty)
    clean = tmp_path / "clean.ipynb"
    shutil.copy(FIXTURES / "failing.ipynb", clean)

    assert cli.main(["strip", str(dirty), str(clean)]) == 0
    assert "stripped" in capsys.readouterr().out
    assert dirty.read_text() == (FIXTURES / "passing.ipynb").read_text()
    assert clean.read_text() == (FIXTURES / "failing.ipynb").read_text()


def test_strip_command_reports_a_bad_file(tmp_path, capsys):
    bad = tmp_path / "bad.ipynb"
    bad.write_text("not json")
    assert cli.main(["strip", str(bad), str(tmp_path / "missing.ipynb")]) == 1
    err = capsys.readouterr().err
    assert err.count("error:") == 2 and "Traceback" not in err


# --------------------------------------------------------------------------
# data commands, against a fake data module


class FakeDataError(ValueError):
    pass


class FakeNotFound(FileNotFoundError):
    pass


@pytest.fixture
def fake_data(monkeypatch, tmp_path):
    """Install a stand-in for cnn_course.data; returns it (calls are recorded in .calls)."""
    calls = []

    def fetch(name):
        calls.append(("fetch", name))
        if name == "dogs":
            raise FakeDataError("cannot download dog images: offline (CNN_COURSE_OFFLINE=1)")
        return tmp_path / f"{name}.npz"

    def import_dataset(name, src):
        calls.append(("import", name, src))
        if not Path(src).exists():
            raise FakeNotFound(f"no such file or folder: {src}")
        return tmp_path / name

    fake = types.SimpleNamespace(
        DATASETS={"mnist": None, "cifar10": None, "dogs": None, "vgg16": None},
        dataset_status=lambda: [
            {"name": "mnist", "found": True, "where": "/data/mnist.npz", "how": "python -m cnn_course data fetch mnist"},
            {"name": "dogs", "found": False, "where": None, "how": "python -m cnn_course data import dogs PATH"},
        ],
        fetch=fetch,
        import_dataset=import_dataset,
        DataError=FakeDataError,
        DatasetNotFound=FakeNotFound,
        calls=calls,
    )
    monkeypatch.setitem(sys.modules, "cnn_course.data", fake)
    monkeypatch.setattr(cnn_course, "data", fake, raising=False)
    return fake


def test_data_status_prints_a_table(fake_data, capsys):
    assert cli.main(["data", "status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["Dataset", "Status", "Where", "/", "how", "to", "get", "it"]
    assert lines[1].split() == ["mnist", "found", "/data/mnist.npz"]
    assert lines[2].split()[:2] == ["dogs", "MISSING"] and "data import dogs PATH" in lines[2]


def test_data_fetch_and_import(fake_data, tmp_path, capsys):
    assert cli.main(["data", "fetch", "mnist"]) == 0
    assert cli.main(["data", "import", "cifar10", str(tmp_path)]) == 0
    assert fake_data.calls == [("fetch", "mnist"), ("import", "cifar10", str(tmp_path))]
    out = capsys.readouterr().out
    assert str(tmp_path / "mnist.npz") in out and "imported" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["data", "fetch", "dogs"], "error: cannot download dog images: offline"),
        (["data", "import", "mnist", "/no/such/file.npz"], "error: no such file or folder"),
    ],
)
def test_data_errors_are_one_clear_line(fake_data, capsys, argv, message):
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(message) and len(err.strip().splitlines()) == 1


def test_data_unknown_name_is_a_usage_error(fake_data, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["data", "fetch", "imagenet"])
    assert exit_.value.code == 2
    assert "valid names: mnist, cifar10, dogs, vgg16" in capsys.readouterr().err
    assert fake_data.calls == []


# --------------------------------------------------------------------------
# data commands, against the real data module (once it exists)

needs_data_module = pytest.mark.skipif(
    importlib.util.find_spec("cnn_course.data") is None, reason="cnn_course.data is not written yet"
)


@pytest.fixture
def empty_home(monkeypatch, tmp_path):
    """Point every data location at empty folders and forbid downloads."""
    monkeypatch.setenv("CNN_COURSE_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("CNN_COURSE_OFFLINE", "1")
    (tmp_path / "data").mkdir()
    (tmp_path / "keras").mkdir()
    return tmp_path


@needs_data_module
def test_real_data_status_with_nothing_present(empty_home, capsys):
    assert cli.main(["data", "status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    from cnn_course import data

    assert len(lines) == 1 + len(data.DATASETS)  # header and one line per dataset
    assert all(" MISSING " in line for line in lines[1:]), lines


@needs_data_module
def test_real_data_fetch_offline_fails_clearly(empty_home, capsys):
    assert cli.main(["data", "fetch", "mnist"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    assert not [p for p in empty_home.rglob("*") if p.is_file()]  # nothing half-downloaded
