"""Faults while lessons run, and signals to the command line (issue 26).

A damaged notebook fails alone; a quick run never runs a notebook whose
``parameters`` tag is gone; a script lesson's odd bytes are kept; a killed
runner leaves no script running; Ctrl-C, SIGTERM and SIGHUP at any moment end
the command with "interrupted", exit 130 and the usual cleanup. Runs use a
temporary lesson registry: the committed notebooks are never changed.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

from cnn_course import __main__ as cli
from cnn_course import backends, lessons, runner
from test_cli import _wait_for

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REPO = Path(__file__).resolve().parents[1]
FAKE_ENV = {
    "python": "3.11.7",
    "keras": "3.15.1",
    "backend": "tensorflow",
    "backend_version": "2.21.0",
    "device": "CPU",
}


def _script(folder, name, source):
    """Write a script lesson `name` with `source`; return its path as a str."""
    path = folder / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    return str(path)


def _gone(pid):
    """True when process `pid` no longer runs (a zombie left for a reaper counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # Linux: an exited child of a parent that does not reap it stays a zombie
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _env(tmp_path):
    """The environment for a `python -m cnn_course` subprocess that imports this checkout."""
    scratch = tmp_path / "tmp"
    scratch.mkdir(exist_ok=True)
    return dict(os.environ, PYTHONPATH=str(REPO), TMPDIR=str(scratch), JUPYTER_RUNTIME_DIR=str(scratch))


# --------------------------------------------------------------------------
# High 8: a damaged notebook is one FAILED lesson, not the end of the run

DAMAGED = {
    "a JSON list": "[1, 2, 3]\n",
    "cells not a list": '{"cells": 5, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n',
    "not JSON": "this is not a notebook\n",
    "empty": "",
    "no cells": '{"a": 1}\n',
    "a cell that is a number": '{"cells": [5], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n',
    "a code cell without outputs": (
        '{"cells": [{"cell_type": "code", "id": "x", "metadata": {}, "source": "1"}],'
        ' "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n'
    ),
    "not UTF-8": b"\xff\xfe{".decode("latin-1"),
}


@pytest.mark.parametrize("content", DAMAGED.values(), ids=DAMAGED.keys())
def test_a_damaged_notebook_is_a_failed_lesson_in_one_line(tmp_path, content):
    broken = tmp_path / "broken.ipynb"
    broken.write_bytes(content.encode("latin-1"))
    result = runner.run_lesson("broken", out_dir=tmp_path / "build", lessons={"broken": str(broken)}, quick=True)
    assert result["status"] == "failed"
    assert "\n" not in result["error"] and "Traceback" not in result["error"]
    assert str(broken) in result["error"] and "not a valid notebook" in result["error"]


def test_a_damaged_notebook_does_not_stop_the_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(backends, "environment_info", lambda: dict(FAKE_ENV))
    broken = tmp_path / "broken.ipynb"
    broken.write_text("[1, 2, 3]\n", encoding="utf-8")
    monkeypatch.setattr(
        runner, "LESSONS", {"broken": str(broken), "after": _script(tmp_path, "after", "print('after ran')\n")}
    )
    out_dir = tmp_path / "build"
    assert cli.main(["run", "--quick", "--out", str(out_dir)]) == 1
    report = json.loads((out_dir / "results.json").read_text())
    assert [(r["lesson"], r["status"]) for r in report["lessons"]] == [("broken", "failed"), ("after", "passed")]
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert "FAILED" in captured.out and "not a valid notebook" in captured.out


# --------------------------------------------------------------------------
# Medium 4: a quick run never runs a notebook whose parameters tag is gone


def _untagged(nb):
    """Remove the ``parameters`` tag from every cell of `nb` (an editor that drops metadata)."""
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "parameters" in tags:
            tags.remove("parameters")
    return nb


def test_a_quick_run_refuses_a_notebook_without_its_parameters_tag(tmp_path):
    # The untagged cell would run after the injected one and undo the quick checkpoint name.
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("CHECKPOINT = 'full.keras'  # the full run's checkpoint\nEPOCHS = 10"),
            nbformat.v4.new_code_cell("open(CHECKPOINT, 'w').write('model')\nprint('Epochs run:', EPOCHS)"),
        ]
    )
    lesson = tmp_path / "lesson" / "untagged.ipynb"
    lesson.parent.mkdir()
    nbformat.write(nb, lesson)
    result = runner.run_lesson(
        "untagged",
        {"CHECKPOINT": "full.quick.keras", "EPOCHS": 1},
        out_dir=tmp_path / "build",
        lessons={"untagged": str(lesson)},
        quick=True,
    )
    assert result["status"] == "failed"
    assert "no cell tagged 'parameters'" in result["error"] and "\n" not in result["error"]
    assert not (lesson.parent / "full.keras").exists()  # the full run's checkpoint was not written


def test_a_quick_run_refuses_a_notebook_that_sets_its_checkpoint_again_later():
    # An editor moved the checkpoint's name out of the parameters cell: the injection would be undone.
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("EPOCHS = 10", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell("%matplotlib inline"),
            nbformat.v4.new_code_cell("CHECKPOINT = 'full.keras'\nEPOCHS = min(EPOCHS, 20)"),
        ]
    )
    quick = {"EPOCHS": 1, "CHECKPOINT": "full.quick.keras"}
    with pytest.raises(ValueError, match="assigns CHECKPOINT again"):
        lessons.inject_parameters(nb, quick, require_cell=True)
    assert lessons.inject_parameters(nb, quick)[0] == 1  # a full run: injected after the parameters cell


@pytest.mark.parametrize("name", [n for n, p in lessons.LESSONS.items() if p.endswith(".ipynb")])
def test_every_lesson_without_its_tag_is_refused_in_quick_mode_only(name):
    nb = nbformat.read(REPO / lessons.LESSONS[name], as_version=4)
    lessons.inject_parameters(nb, lessons.lesson_parameters(name, quick=True), require_cell=True)  # as committed
    nb = _untagged(nb)
    with pytest.raises(ValueError, match="no cell tagged 'parameters'"):
        lessons.inject_parameters(nb, lessons.lesson_parameters(name, quick=True), require_cell=True)
    at, warnings = lessons.inject_parameters(nb, lessons.lesson_parameters(name))  # a full run: a warning
    assert at == 0 and any("no cell tagged 'parameters'" in w for w in warnings)


# --------------------------------------------------------------------------
# Low 13: a script lesson's undecodable output is kept, not a failure


def test_a_script_printing_non_utf8_bytes_passes_and_its_log_is_saved(tmp_path):
    script = _script(
        tmp_path,
        "odd",
        "import sys\nsys.stdout.buffer.write(b'before \\xff\\xfe after\\n')\nprint('Data: odd bytes')\n",
    )
    result = runner.run_lesson("odd", out_dir=tmp_path / "build", lessons={"odd": script})
    assert result["status"] == "passed", result["error"]
    assert result["data"] == "odd bytes"
    log = (tmp_path / "build" / "odd.txt").read_text(encoding="utf-8")
    assert "before \ufffd\ufffd after" in log and "Data: odd bytes" in log


def test_a_stop_still_stops_the_run_when_the_log_cannot_be_saved(tmp_path):
    script = _script(tmp_path, "slow", "import time\nprint('started', flush=True)\ntime.sleep(60)\n")
    log = tmp_path / "build" / "slow.txt"

    def stop_at_first_output(event):  # Ctrl-C while the log's place is taken (as by a full disk)
        if event["event"] == "output":
            log.mkdir(parents=True)
            raise KeyboardInterrupt

    with pytest.raises(runner.LessonInterrupted) as stop:
        runner.run_lesson("slow", out_dir=tmp_path / "build", progress=stop_at_first_output, lessons={"slow": script})
    assert stop.value.result["status"] == "interrupted" and stop.value.result["executed_path"] is None
    assert "started" in stop.value.result["text"]


# --------------------------------------------------------------------------
# Medium 3: a runner killed with SIGKILL leaves no script lesson running

KILLED_RUNNER = """
import sys
from cnn_course import runner
runner.run_lesson("slow", out_dir=sys.argv[2], lessons={"slow": sys.argv[1]})
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_killed_runner_leaves_no_script_lesson_running(tmp_path):
    pid_file = tmp_path / "script.pid"
    slow = _script(
        tmp_path,
        "slow",
        f"import os, pathlib, time\npathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))\ntime.sleep(120)\n",
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUNNER, slow, str(tmp_path / "build")],
        env=_env(tmp_path),
        stdin=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: pid_file.exists() and pid_file.read_text(), 60, "the script to start")
        script = int(pid_file.read_text())
        proc.kill()
        proc.wait(10)
        _wait_for(lambda: _gone(script), 5, f"script process {script} to end with its runner")
    finally:
        if proc.poll() is None:
            proc.kill()
        if pid_file.exists() and pid_file.read_text() and not _gone(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


# --------------------------------------------------------------------------
# Low 3: a stop while the command is still loading its modules is "interrupted"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_in_the_first_second_prints_interrupted_not_a_traceback(tmp_path, signum):
    codes = []
    for delay in (0.3, 0.5, 0.8):
        # SIG_DFL: a child of a background job starts with SIGINT ignored (as CI may run us)
        proc = subprocess.Popen(
            [sys.executable, "-m", "cnn_course", "data", "status"],
            cwd=tmp_path,
            env=_env(tmp_path),
            stdin=subprocess.DEVNULL,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(delay)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=120)
        assert "Traceback" not in err, (delay, err)
        assert proc.returncode in (0, 130), (delay, proc.returncode, err)
        if proc.returncode == 130:
            assert "interrupted" in err.splitlines(), err
        codes.append(proc.returncode)
    assert 130 in codes  # at least one stop came while it was loading (importing takes over a second)


# --------------------------------------------------------------------------
# Low 4: SIGTERM and SIGHUP stop `run` and `data fetch` as Ctrl-C does

# `python -m cnn_course ARGS` with a fake lesson registry and environment probe.
RUN_DRIVER = """
import json, runpy, sys
from cnn_course import backends, runner
runner.LESSONS = json.loads(sys.argv[1])
environment = json.loads(sys.argv[2])
backends.environment_info = lambda timeout=120: dict(environment)
sys.argv = ["cnn_course", *sys.argv[3:]]
runpy.run_module("cnn_course", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_or_sighup_stops_a_run_like_ctrl_c(tmp_path, signum):
    pid_file = tmp_path / "kernel.pid"
    registry = {"slow": str(FIXTURES / "slow.ipynb"), "after": _script(tmp_path, "after", "print('after')\n")}
    out_dir = tmp_path / "build"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            RUN_DRIVER,
            json.dumps(registry),
            json.dumps(FAKE_ENV),
            "run",
            "-p",
            f"PID_FILE={str(pid_file)!r}",
            "--out",
            str(out_dir),
        ],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _wait_for(lambda: pid_file.exists() or proc.poll() is not None, 120, "the lesson to start")
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.5)
        proc.send_signal(signum)  # the runner alone, as `kill` or a closed terminal does
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "interrupted" in err.splitlines() and "Traceback" not in err, err
    report = json.loads((out_dir / "results.json").read_text())
    assert report["interrupted"] is True and report["not_run"] == ["after"]
    assert [(r["lesson"], r["status"]) for r in report["lessons"]] == [("slow", "interrupted")]
    kernel = int(pid_file.read_text())
    _wait_for(lambda: _gone(kernel), 10, f"kernel process {kernel} to end")
    assert list((tmp_path / "tmp").iterdir()) == []  # no kernel connection file left


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP here")
def test_an_ignored_sighup_stays_ignored():
    # `nohup python -m cnn_course run`: closing the terminal must not stop the run.
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with cli.stop_signals_interrupt():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # SIGTERM does stop it
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


# `python -m cnn_course data fetch cifar10` from a local tarball (a fake keras.utils.get_file), its
# install made slow: it writes a marker file, then sleeps, so that the test can signal it mid-install.
SLOW_FETCH_DRIVER = """
import pathlib, runpy, shutil, sys, time, types
from cnn_course.data import install
marker, tarball = pathlib.Path(sys.argv[1]), sys.argv[2]
def get_file(fname, origin, file_hash, cache_dir, cache_subdir):
    target = pathlib.Path(cache_dir) / cache_subdir / fname
    shutil.copyfile(tarball, target)
    return str(target)
sys.modules["keras"] = types.SimpleNamespace(utils=types.SimpleNamespace(get_file=get_file))
real = install.install
def slow_install(new, dest, work):
    marker.write_text(str(new))
    time.sleep(60)
    return real(new, dest, work)
install.install = slow_install
sys.argv = ["cnn_course", "data", "fetch", "cifar10"]
runpy.run_module("cnn_course", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_during_a_fetch_keeps_the_old_copy_and_leaves_no_temporary(tmp_path, signum):
    from test_data import tar_folder, write_pickles

    cache = tmp_path / "keras" / "datasets"
    old = write_pickles(cache / "cifar-10-batches-py", 20)
    before = {p.name: p.read_bytes() for p in old.iterdir()}
    tarball = tar_folder(
        tmp_path / "new.tar.gz", write_pickles(tmp_path / "new" / "cifar-10-batches-py", 30), "cifar-10-batches-py"
    )
    marker = tmp_path / "installing"
    env = dict(_env(tmp_path), KERAS_HOME=str(tmp_path / "keras"), CNN_COURSE_OFFLINE="0")
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_FETCH_DRIVER, str(marker), str(tarball)],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: marker.exists() or proc.poll() is not None, 60, "the fetch to install its copy")
        assert proc.poll() is None, proc.communicate()
        assert any(p.name.startswith(".tmp-cnn-course-") for p in cache.iterdir())  # mid-install
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert err.strip() == "interrupted" and "cifar10:" not in out, (out, err)
    assert sorted(p.name for p in cache.iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]
    assert {p.name: p.read_bytes() for p in old.iterdir()} == before


# --------------------------------------------------------------------------
# Ctrl-C while the kernel is starting: the kernel is stopped through
# jupyter_client's public API, and its connection file removed


def test_ctrl_c_while_the_kernel_starts_leaves_no_kernel_or_connection_file(tmp_path, monkeypatch):
    runtime = tmp_path / "runtime"  # where the kernel's connection file goes (a temporary file)
    runtime.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(runtime))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    started = []

    def interrupted_start(client):  # Ctrl-C after the kernel process started, before its client is ready
        started.append(client.km.provisioner.process.pid)
        assert Path(client.km.connection_file).parent == runtime and Path(client.km.connection_file).exists()
        raise KeyboardInterrupt

    monkeypatch.setattr(runner._LessonClient, "start_new_kernel_client", interrupted_start)
    with pytest.raises(runner.LessonInterrupted) as stop:
        runner.execute_notebook(FIXTURES / "passing.ipynb", {}, tmp_path / "build")
    assert stop.value.result["status"] == "interrupted" and stop.value.result["failed_cell"] is None
    _wait_for(lambda: _gone(started[0]), 10, f"kernel process {started[0]} to end")
    assert list(runtime.iterdir()) == []
