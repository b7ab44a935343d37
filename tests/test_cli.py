"""The command line: python -m cnn_course run | data | strip.

Runs go through a fake lesson registry (the fixture notebooks and tiny
scripts), so these tests never execute the real lessons.
"""

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import nbformat
import pytest

from cnn_course import __main__ as cli
from cnn_course import backends, reports, runner

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REPO = Path(__file__).resolve().parents[1]
FAKE_ENV = {
    "python": "3.11.7",
    "keras": "3.15.1",
    "backend": "tensorflow",
    "backend_version": "2.21.0",
    "device": "CPU",
}


@pytest.fixture
def fake_env(monkeypatch):
    """Skip the (slow) environment probe: the report gets FAKE_ENV."""
    monkeypatch.setattr(backends, "environment_info", lambda: dict(FAKE_ENV))


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
    done = subprocess.run(
        [sys.executable, "-m", "cnn_course", "run", "no-such-lesson"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
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
    # (the fixture has no quick sizes in lessons.QUICK_PARAMETERS)
    assert fixture["status"] == "passed" and fixture["epochs"] == 4 and fixture["test_accuracy"] == 87.5
    assert dims["status"] == "passed" and dims["data"] is None
    for name in ("passing.ipynb", "passing.html", "failing.ipynb", "failing.html", "dims.txt", "results.md"):
        assert (out_dir / name).is_file(), name

    out = capsys.readouterr().out
    md = (out_dir / "results.md").read_text()
    table = md[md.index("| Lesson") : md.index("\n\n", md.index("| Lesson"))]
    assert table in out  # the same table is printed at the end
    assert "- **broken**: cell 3 `values = [1, 2, 3]`: ValueError: fixture failure after 3 values" in out
    # not a TTY: one plain line per cell start, and the compact epoch lines
    assert "[2/3] fixture  cell 1/7" in out and "[2/3] fixture  cell 7/7" in out
    assert "    epoch 4/4  0s - accuracy: 0.4000 - loss: 1.4000" in out
    assert "\r" not in out


def test_run_picks_lessons_in_course_order_and_passes(tmp_path, monkeypatch, capsys, fake_env):
    monkeypatch.setattr(runner, "LESSONS", _scripts(tmp_path, ["first", "second", "third"]))
    code = cli.main(["run", "third", "first", "third", "--out", str(tmp_path / "o")])
    assert code == 0
    report = json.loads((tmp_path / "o" / "results.json").read_text())
    assert [r["lesson"] for r in report["lessons"]] == ["first", "third"]
    assert report["mode"] == "full" and report["parameters"] == {"VERBOSE": 2}
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
    progress(
        {
            "event": "output",
            "name": "stdout",
            "text": "9/9 - 9s - 983ms/step - accuracy: 0.52 - val_accuracy: 0.79\n"
            "12/12 - 2s - 1ms/step - accuracy: 0.8\n",
        }
    )
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


def test_a_failed_strip_leaves_the_notebook_as_it_was(tmp_path, capsys, monkeypatch):
    nb = nbformat.read(FIXTURES / "passing.ipynb", as_version=4)
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
    dirty = tmp_path / "dirty.ipynb"
    nbformat.write(nb, dirty)
    before = dirty.read_text()

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runner.os, "replace", disk_full)
    assert cli.main(["strip", str(dirty)]) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert dirty.read_text() == before and [p.name for p in tmp_path.iterdir()] == ["dirty.ipynb"]


def test_strip_command_reports_a_bad_file(tmp_path, capsys):
    bad = tmp_path / "bad.ipynb"
    bad.write_text("not json")
    assert cli.main(["strip", str(bad), str(tmp_path / "missing.ipynb")]) == 1
    err = capsys.readouterr().err
    assert err.count("error:") == 2 and "Traceback" not in err


# --------------------------------------------------------------------------
# data commands: the real data module, two of its functions replaced where a
# test needs a known answer (`data fetch` is tested in test_fetch.py)


@pytest.fixture
def fake_data(monkeypatch, tmp_path):
    """cnn_course.data with `dataset_status` answering two rows; returns the module."""
    from cnn_course import data

    monkeypatch.setattr(
        data,
        "dataset_status",
        lambda: [
            {
                "name": "mnist",
                "found": True,
                "where": "/data/mnist.npz",
                "how": "python -m cnn_course data fetch mnist",
            },
            {"name": "dogs", "found": False, "where": None, "how": "python -m cnn_course data fetch dogs"},
        ],
    )
    return data


def test_data_status_prints_a_table(fake_data, capsys):
    assert cli.main(["data", "status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["Dataset", "Status", "Where", "/", "how", "to", "get", "it"]
    assert lines[1].split() == ["mnist", "found", "/data/mnist.npz"]
    assert lines[2].split()[:2] == ["dogs", "MISSING"] and "data fetch dogs" in lines[2]


def test_data_commands_leave_onednn_on_for_the_kernels_started_later(fake_data, monkeypatch, capsys):
    """`data` silences TensorFlow's oneDNN notice only while it runs: a kernel
    started later by the same process (a test, or a script calling main) would
    otherwise inherit TF_ENABLE_ONEDNN_OPTS=0 and train several times slower."""
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    seen = []
    fake_data.dataset_status = lambda: seen.append(os.environ.get("TF_ENABLE_ONEDNN_OPTS")) or []
    assert cli.main(["data", "status"]) == 0
    assert seen == ["0"]  # set while the command runs
    assert "TF_ENABLE_ONEDNN_OPTS" not in os.environ
    assert "TF_ENABLE_ONEDNN_OPTS" not in backends.lesson_env()
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")  # a setting of the user's own stays as it was
    assert cli.main(["data", "status"]) == 0
    assert seen[-1] == "1" and os.environ["TF_ENABLE_ONEDNN_OPTS"] == "1"


def test_data_errors_are_one_clear_line(capsys, monkeypatch):
    # the real fetch, offline: nothing downloaded, one line
    monkeypatch.setenv("CNN_COURSE_OFFLINE", "1")
    assert cli.main(["data", "fetch", "mnist"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "CNN_COURSE_OFFLINE=1" in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_data_unknown_name_is_a_usage_error(fake_data, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["data", "fetch", "imagenet"])
    assert exit_.value.code == 2
    assert "valid names: mnist, cifar10, dogs, weights, all" in capsys.readouterr().err


# --------------------------------------------------------------------------
# data commands with nothing present


@pytest.fixture
def empty_home(monkeypatch, tmp_path):
    """Point every data location at empty folders and forbid downloads."""
    monkeypatch.setenv("CNN_COURSE_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("CNN_COURSE_OFFLINE", "1")
    (tmp_path / "data").mkdir()
    (tmp_path / "keras").mkdir()
    return tmp_path


def test_real_data_status_with_nothing_present(empty_home, capsys):
    assert cli.main(["data", "status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    from cnn_course import data

    assert len(lines) == 1 + len(data.DATASETS)  # header and one line per dataset
    assert all(" MISSING " in line for line in lines[1:]), lines


def test_real_data_fetch_offline_fails_clearly(empty_home, capsys):
    assert cli.main(["data", "fetch", "mnist"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    assert not [p for p in empty_home.rglob("*") if p.is_file()]  # nothing half-downloaded


# --------------------------------------------------------------------------
# Ctrl-C stops the whole run (a real `python -m cnn_course` subprocess)

# Runs `python -m cnn_course ARGS` with a fake lesson registry. A shell's
# background job starts with SIGINT ignored, so the default handler is put back
# first, as an interactive terminal has it.
CTRL_C_DRIVER = """
import json, runpy, signal, sys
from cnn_course import backends, runner
signal.signal(signal.SIGINT, signal.default_int_handler)
runner.LESSONS = json.loads(sys.argv[1])
environment = json.loads(sys.argv[2])
backends.environment_info = lambda timeout=120: dict(environment)
sys.argv = ["cnn_course", *sys.argv[3:]]
runpy.run_module("cnn_course", run_name="__main__", alter_sys=True)
"""


def _wait_for(condition, seconds, what):
    """Poll `condition` every 0.1 s; fail the test after `seconds` saying `what`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _process_gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _interrupt_run(tmp_path, registry, args, ready, to_group):
    """Start a run, wait until `ready()`, send SIGINT (to the process group
    like a terminal's Ctrl-C, or to the runner alone); return the finished
    process, its seconds from the signal to exit, and the temp folder it used."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO), TMPDIR=str(scratch), JUPYTER_RUNTIME_DIR=str(scratch))
    proc = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_DRIVER, json.dumps(registry), json.dumps(FAKE_ENV), "run", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _wait_for(lambda: ready() or proc.poll() is not None, 120, "the lesson to start")
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.5)
        signalled = time.monotonic()
        if to_group:
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return types.SimpleNamespace(
        returncode=proc.returncode, out=out, err=err, seconds=time.monotonic() - signalled, scratch=scratch
    )


def _assert_interrupted(done, out_dir, lesson, not_run):
    assert done.returncode == 130, done.err
    assert "interrupted" in done.err.splitlines() and "Traceback" not in done.err, done.err
    # at once, not after the lesson's 120 s: communicate(timeout=60) above would have raised
    report = json.loads((out_dir / "results.json").read_text())
    assert report["interrupted"] is True and report["not_run"] == not_run
    assert [(r["lesson"], r["status"]) for r in report["lessons"]] == [(lesson, "interrupted")]
    assert (
        "interrupted (Ctrl-C or a stop signal); not run: " + ", ".join(not_run) in (out_dir / "results.md").read_text()
    )
    assert list(done.scratch.iterdir()) == []  # no kernel connection file or other temporary left


def test_ctrl_c_stops_a_notebook_run_and_its_kernel(tmp_path):
    pid_file = tmp_path / "kernel.pid"
    registry = {"slow": str(FIXTURES / "slow.ipynb"), **_scripts(tmp_path, ["after"])}
    out_dir = tmp_path / "build"
    done = _interrupt_run(
        tmp_path,
        registry,
        ["-p", f"PID_FILE={str(pid_file)!r}", "--out", str(out_dir)],
        ready=pid_file.exists,
        to_group=True,
    )
    _assert_interrupted(done, out_dir, "slow", ["after"])
    kernel = int(pid_file.read_text())
    _wait_for(lambda: _process_gone(kernel), 10, f"kernel process {kernel} to end")
    assert not (out_dir / "after.txt").exists()  # the next lesson never started
    assert (
        "## Interrupted\n\n- **slow**: cell 4 `import time`: KeyboardInterrupt: interrupted (Ctrl-C or a stop signal)"
        in (out_dir / "results.md").read_text()
    )
    executed = nbformat.read(out_dir / "slow.ipynb", as_version=4)  # the cells run so far are kept
    assert any("slow fixture" in o.get("text", "") for c in executed.cells for o in c.get("outputs", []))


def test_ctrl_c_to_the_runner_alone_kills_a_script_lesson(tmp_path):
    pid_file = tmp_path / "script.pid"
    slow = tmp_path / "slow_script.py"
    slow.write_text(
        "import os, pathlib, time\n"
        f"pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))\n"
        "print('Data: slow script', flush=True)\n"
        "time.sleep(120)\n"
    )
    registry = {"slow-script": str(slow), **_scripts(tmp_path, ["after"])}
    out_dir = tmp_path / "build"
    done = _interrupt_run(tmp_path, registry, ["--out", str(out_dir)], ready=pid_file.exists, to_group=False)
    _assert_interrupted(done, out_dir, "slow-script", ["after"])
    script = int(pid_file.read_text())
    _wait_for(lambda: _process_gone(script), 10, f"script process {script} to end")
    assert "Data: slow script" in (out_dir / "slow_script.txt").read_text()


# --------------------------------------------------------------------------
# Bad run arguments: one line, exit 2, before anything runs (not even the probe)


@pytest.fixture
def no_run(monkeypatch, tmp_path):
    """A registry of one script lesson, and a probe that fails the test if called."""
    monkeypatch.setattr(runner, "LESSONS", _scripts(tmp_path, ["dims"]))

    def probe(timeout=120):
        raise AssertionError("the environment probe ran before the arguments were checked")

    monkeypatch.setattr(backends, "environment_info", probe)
    return tmp_path


def _usage_error(argv, capsys):
    """Run the command line, expecting a usage error; return its one stderr line."""
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert "Traceback" not in captured.err and captured.out == ""
    return lines[-1]


@pytest.mark.parametrize(
    "parameter, message",
    [
        ("class=1", "'class' is not a valid Python name"),  # a keyword: SyntaxError in every notebook
        ("SEED=1e999", "inf is not a finite number"),  # inf: NameError, and Infinity in results.json
        ("SIZES=[1, -1e999]", "-inf is not a finite number"),
        ("Z=1e999j", "is not a finite number"),
    ],
)
def test_bad_parameters_are_usage_errors(no_run, capsys, parameter, message):
    line = _usage_error(["run", "-p", parameter, "--out", str(no_run / "o")], capsys)
    assert line.startswith("python -m cnn_course run: error: ") and message in line
    assert not (no_run / "o").exists()


@pytest.mark.parametrize("value", ["-5", "0", "nan", "inf", "soon"])
def test_timeout_must_be_a_positive_number(no_run, capsys, value):
    line = _usage_error(["run", "--timeout", value, "--out", str(no_run / "o")], capsys)
    assert f"--timeout: '{value}': must be a number of seconds above 0" in line


def test_timeout_accepts_seconds():
    assert cli.build_parser().parse_args(["run", "--timeout", "30"]).timeout == 30


def test_out_pointing_at_a_file_is_a_usage_error(no_run, capsys):
    taken = no_run / "results.txt"
    taken.write_text("the user's file\n")
    line = _usage_error(["run", "--out", str(taken)], capsys)
    assert line.endswith(f"--out {taken}: {taken} is a file, not a folder")
    line = _usage_error(["run", "--out", str(taken / "sub")], capsys)
    assert line.endswith(f"--out {taken / 'sub'}: {taken / 'sub'} would lie inside {taken}, which is a file")
    assert taken.read_text() == "the user's file\n"
    assert not (no_run / "dims.txt").exists()


def test_out_folder_that_cannot_be_written_is_a_usage_error(no_run, capsys, monkeypatch):
    def refuse(*args, **kwargs):  # what a read-only or foreign folder answers (root ignores chmod)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(reports.tempfile, "TemporaryFile", refuse)
    line = _usage_error(["run", "--out", str(no_run / "locked")], capsys)
    assert line.endswith(f"--out {no_run / 'locked'}: {no_run / 'locked'} cannot be written: Permission denied")


def test_a_report_that_cannot_be_written_loses_no_result(tmp_path, monkeypatch, capsys, fake_env):
    monkeypatch.setattr(runner, "LESSONS", _scripts(tmp_path, ["dims"]))

    def disk_full(report, out_dir):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(reports, "write_report", disk_full)
    assert cli.main(["run", "--out", str(tmp_path / "o")]) == 1
    captured = capsys.readouterr()
    assert "| dims " in captured.out and "1 passed, 0 failed" in captured.out  # the table came first
    assert captured.err.strip().splitlines() == [
        f"error: the report could not be written to {tmp_path / 'o'}: No space left on device"
    ]
