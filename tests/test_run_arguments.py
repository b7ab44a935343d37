"""`run`'s arguments and settings, refused before anything runs, and a report
that no failure can lose (issue 26: High 4, 5, 6; Low 1, 5, 6, 7, 8, 10).

Runs go through a fake lesson registry (tiny scripts, the fixture notebooks),
so these tests never execute the real lessons.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cnn_course import __main__ as cli
from cnn_course import backends, lessons, reports, runner
from test_cli import FAKE_ENV, _scripts, _usage_error, fake_env, no_run  # noqa: F401 (fixtures)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REPO = Path(__file__).resolve().parents[1]


def _leftovers(folder):
    """The temporary files a report write could leave in `folder` (sorted names)."""
    return sorted(p.name for p in Path(folder).iterdir() if p.name.endswith(".tmp"))


# --------------------------------------------------------------------------
# High 4: -p values the report cannot hold; a report no value can lose


@pytest.mark.parametrize(
    "parameter, message",
    [
        ("X={1}", "{1} is a set"),
        ("X=b'a'", "b'a' is bytes"),
        ("X=1j", "1j is a complex number"),
        ("X=[1, {2}]", "{2} is a set"),
        ("X={(1, 2): 3}", "(1, 2) cannot be a key"),
    ],
)
def test_parameters_json_cannot_hold_are_refused_before_anything_runs(no_run, capsys, parameter, message):
    line = _usage_error(["run", "-p", parameter, "--out", str(no_run / "o")], capsys)
    assert line.startswith("python -m cnn_course run: error: ") and message in line
    assert not (no_run / "o").exists()


@pytest.mark.parametrize("value", [{1}, frozenset({2}), b"a", 1j, {(1, 2): 3}, [1, {"a": {3}}]])
def test_check_value_refuses_what_json_cannot_hold(value):
    with pytest.raises(ValueError):
        lessons.check_value(value)


@pytest.mark.parametrize("value", [None, True, 3, 0.5, "a", [1, (2, 3)], {"a": [1], 2: None}])
def test_check_value_keeps_json_values(value):
    assert lessons.check_value(value) == value


def test_a_value_json_cannot_hold_is_written_as_its_text(tmp_path):
    report = reports.build_report(
        [], {"device": b"GPU", "odd": 2j}, False, {"S": {1}, "B": b"a", "K": {(1, 2): "x"}, "INF": float("inf")}
    )
    json_path, md_path = reports.write_report(report, tmp_path)
    written = json.loads(json_path.read_text())
    assert written["parameters"] == {"S": "{1}", "B": "b'a'", "K": {"(1, 2)": "x"}, "INF": "inf"}
    assert written["environment"]["device"] == "b'GPU'" and written["environment"]["odd"] == "2j"
    assert md_path.is_file() and _leftovers(tmp_path) == []


# --------------------------------------------------------------------------
# Low 8: the report is written atomically


def _old_report(folder):
    """Write an earlier run's report into `folder`; return {name: text}."""
    folder.mkdir(parents=True, exist_ok=True)
    old = {"results.json": '{"earlier": "run"}\n', "results.md": "# the earlier run\n"}
    for name, text in old.items():
        (folder / name).write_text(text)
    return old


_WRITE_UNDER_A_FILE_SIZE_LIMIT = """
import resource, signal, sys
from cnn_course import reports
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (100, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
report = reports.build_report([], {}, True, {"NOTE": "x" * 1000})
try:
    reports.write_report(report, sys.argv[1])
except OSError as exc:
    print("OSError", exc.errno)
"""


def test_a_write_that_fails_halfway_leaves_the_previous_report_whole(tmp_path):
    """A disk that fills up (here: a file size limit) while results.json is written."""
    old = _old_report(tmp_path / "o")
    done = subprocess.run(
        [sys.executable, "-c", _WRITE_UNDER_A_FILE_SIZE_LIMIT, str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        timeout=60,
    )
    assert done.stdout.startswith("OSError"), done.stdout + done.stderr
    assert {name: (tmp_path / "o" / name).read_text() for name in old} == old
    assert _leftovers(tmp_path / "o") == []


def test_a_failure_on_the_second_file_replaces_neither(tmp_path, monkeypatch):
    old = _old_report(tmp_path / "o")
    calls = []

    def full_disk(fd):  # results.json reaches the disk, results.md does not
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    report = reports.build_report([], FAKE_ENV, True, {"VERBOSE": 2})
    with pytest.raises(OSError, match="No space left"):
        reports.write_report(report, tmp_path / "o")
    assert {name: (tmp_path / "o" / name).read_text() for name in old} == old
    assert _leftovers(tmp_path / "o") == []


def test_a_run_whose_report_hits_a_full_disk_keeps_the_old_report(tmp_path, monkeypatch, capsys, fake_env):
    monkeypatch.setattr(runner, "LESSONS", _scripts(tmp_path, ["dims"]))
    old = _old_report(tmp_path / "o")

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    assert cli.main(["run", "--out", str(tmp_path / "o")]) == 1
    captured = capsys.readouterr()
    assert "1 passed, 0 failed" in captured.out  # the table was printed first
    assert captured.err.strip().splitlines() == [
        f"error: the report could not be written to {tmp_path / 'o'}: No space left on device"
    ]
    assert {name: (tmp_path / "o" / name).read_text() for name in old} == old
    assert _leftovers(tmp_path / "o") == []


def test_the_report_replaces_the_previous_one_with_the_usual_permissions(tmp_path):
    _old_report(tmp_path)
    report = reports.build_report([], FAKE_ENV, True, {"VERBOSE": 2})
    json_path, md_path = reports.write_report(report, tmp_path)
    assert json.loads(json_path.read_text())["mode"] == "quick" and md_path.read_text().startswith("# Course run")
    umask = os.umask(0o022)
    os.umask(umask)
    assert json_path.stat().st_mode & 0o777 == 0o666 & ~umask  # as a plain write makes it, not mkstemp's 600
    assert _leftovers(tmp_path) == []


# --------------------------------------------------------------------------
# High 5 and 6: --timeout


@pytest.mark.parametrize("text, seconds", [("2.5", 3), ("0.5", 1), ("30", 30), ("1e-9", 1)])
def test_a_fractional_timeout_is_rounded_up_to_whole_seconds(text, seconds):
    timeout = cli.build_parser().parse_args(["run", "--timeout", text]).timeout
    assert timeout == seconds and isinstance(timeout, int)


@pytest.mark.parametrize("value", ["1e10", "1e300", str(cli.MAX_TIMEOUT_S + 1)])
def test_a_huge_timeout_is_refused_before_anything_runs(no_run, capsys, value):
    line = _usage_error(["run", "--timeout", value, "--out", str(no_run / "o")], capsys)
    assert f"--timeout: '{value}': must be at most {cli.MAX_TIMEOUT_S} seconds" in line
    assert not (no_run / "o").exists()


def test_a_fractional_timeout_runs_notebooks_and_p_names_the_scripts_it_skips(tmp_path, monkeypatch, capsys, fake_env):
    registry = {"fixture": str(FIXTURES / "passing.ipynb"), **_scripts(tmp_path, ["dims"])}
    monkeypatch.setattr(runner, "LESSONS", registry)
    code = cli.main(["run", "--timeout", "59.5", "-p", "EPOCHS=2", "--out", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert code == 0, out
    report = json.loads((tmp_path / "o" / "results.json").read_text())
    assert [r["status"] for r in report["lessons"]] == ["passed", "passed"]
    assert report["lessons"][0]["epochs"] == 2
    assert "note: -p does not reach dims: script lessons run with their default arguments" in out


# --------------------------------------------------------------------------
# Low 1: --out


def test_an_empty_out_is_refused(no_run, capsys):
    line = _usage_error(["run", "--out", ""], capsys)
    assert "--out: must name a folder" in line
    assert not (no_run / "dims.txt").exists()


def test_the_header_names_the_folder_the_outputs_go_to(tmp_path, monkeypatch, capsys, fake_env):
    monkeypatch.setattr(runner, "LESSONS", _scripts(tmp_path, ["dims"]))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "--out", "o"]) == 0
    out = capsys.readouterr().out
    assert f"outputs in {tmp_path / 'o'}/" in out and (tmp_path / "o" / "dims.txt").is_file()


# --------------------------------------------------------------------------
# Low 5: -p and the script lessons


def test_p_given_only_to_script_lessons_is_refused(no_run, capsys):
    line = _usage_error(["run", "dims", "-p", "KERNEL=5", "--out", str(no_run / "o")], capsys)
    assert "-p sets notebook parameters, and dims is a script" in line
    assert not (no_run / "o").exists()


# --------------------------------------------------------------------------
# Low 6: CNN_COURSE_QUICK and CNN_COURSE_OFFLINE are checked before the run


@pytest.mark.parametrize("variable", ["CNN_COURSE_QUICK", "CNN_COURSE_OFFLINE"])
def test_a_bad_true_false_setting_stops_run_before_anything_runs(no_run, capsys, monkeypatch, variable):
    monkeypatch.setenv(variable, "maybe")
    line = _usage_error(["run", "--out", str(no_run / "o")], capsys)
    assert f"{variable}='maybe' is not a true/false value" in line
    assert not (no_run / "o").exists()


@pytest.mark.parametrize("variable", ["CNN_COURSE_QUICK", "CNN_COURSE_OFFLINE"])
def test_a_bad_true_false_setting_stops_data_status(capsys, monkeypatch, variable):
    monkeypatch.setenv(variable, "maybe")
    assert cli.main(["data", "status"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().splitlines() == [
        f"error: {variable}='maybe' is not a true/false value: use 1, true, yes or on; or 0, false, no, off or unset it"
    ]


# --------------------------------------------------------------------------
# Low 7: a keras.json Keras cannot use


@pytest.fixture
def keras_home(monkeypatch, tmp_path):
    """An empty Keras home in KERAS_HOME, and no KERAS_BACKEND; returns its Path."""
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    home = tmp_path / "keras"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


def _write_config(home, how):
    """Make ``home/keras.json`` unusable in the way `how` names."""
    path = home / "keras.json"
    if how == "folder":
        path.mkdir()
    elif how == "list":
        path.write_text('["tensorflow"]')
    elif how == "not JSON":
        path.write_text("{backend: jax")
    elif how == "floatx":
        path.write_text(json.dumps({"backend": "tensorflow", "floatx": "float8"}))
    elif how == "backend":
        path.write_text(json.dumps({"backend": 5}))
    return path


CONFIG_PROBLEMS = {
    "folder": "is not a regular file",
    "list": "holds a JSON list",
    "not JSON": "is not JSON",
    "floatx": "settings Keras refuses (floatx='float8')",
    "backend": "settings Keras refuses (backend=5)",
}


@pytest.mark.parametrize("how", list(CONFIG_PROBLEMS))
def test_an_unusable_keras_json_is_refused_naming_the_file(keras_home, how):
    path = _write_config(keras_home, how)
    with pytest.raises(backends.BackendError) as error:
        backends.keras_backend()
    message = str(error.value)
    assert str(path) in message and CONFIG_PROBLEMS[how] in message and "\n" not in message
    with pytest.raises(backends.BackendError):  # Keras reads the file whatever the backend's name
        backends.keras_backend("tensorflow")


@pytest.mark.parametrize("how", ["folder", "list"])
def test_run_with_an_unusable_keras_json_stops_before_anything_runs(no_run, keras_home, capsys, how):
    path = _write_config(keras_home, how)
    assert cli.main(["run", "--out", str(no_run / "o")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the Keras config file ") and str(path) in lines[0]
    assert not (no_run / "o").exists()


def test_a_usable_keras_json_names_the_backend(keras_home):
    (keras_home / "keras.json").write_text(
        json.dumps({"backend": "jax", "floatx": "float32", "epsilon": 1e-07, "image_data_format": "channels_last"})
    )
    assert backends.keras_backend() == "jax"


# --------------------------------------------------------------------------
# Low 10: one run at a time per out folder


def test_a_second_run_into_the_same_folder_is_refused(no_run, capsys):
    out_dir = reports.check_out_dir(no_run / "o")
    held = reports.lock_out_dir(out_dir)
    assert held is not None
    try:
        line = _usage_error(["run", "--out", str(out_dir)], capsys)
        assert line.endswith(
            f"--out {out_dir}: another run is writing into {out_dir}; wait for it to end or choose another folder"
        )
        assert not (out_dir / "dims.txt").exists()
    finally:
        os.close(held)


def test_the_folder_is_free_again_after_a_run(tmp_path, monkeypatch, capsys, fake_env):
    monkeypatch.setattr(runner, "LESSONS", _scripts(tmp_path, ["dims"]))
    for _ in range(2):
        assert cli.main(["run", "--out", str(tmp_path / "o")]) == 0
    held = reports.lock_out_dir(tmp_path / "o")
    assert held is not None
    os.close(held)
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["dims.txt", "results.json", "results.md"]


def test_a_killed_run_leaves_no_stale_lock(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom cnn_course import reports\n"
            "reports.lock_out_dir(sys.argv[1]); print('locked', flush=True); time.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(ValueError, match="another run is writing"):
            reports.lock_out_dir(tmp_path)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        holder.stdout.close()
    os.close(reports.lock_out_dir(tmp_path))
    assert list(tmp_path.iterdir()) == []  # no lock file
