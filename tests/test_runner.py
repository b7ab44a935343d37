"""cnn_course.runner: executing notebooks and scripts, parsing their lines, the report, strip.

Each fixture notebook execution starts a kernel (about 2 s), so the two
executions are shared by the tests of this module.
"""

import json
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

from cnn_course import backends, lessons, notebooks, reports, runner

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PASSING = FIXTURES / "passing.ipynb"
FAILING = FIXTURES / "failing.ipynb"


@pytest.fixture(scope="module")
def passed(tmp_path_factory):
    """The passing fixture executed in quick mode, with the progress events it sent."""
    out = tmp_path_factory.mktemp("passed")
    events = []
    result = runner.execute_notebook(
        PASSING, {"QUICK": True, "VERBOSE": 2, "LABEL": 'it\'s "quoted"'}, out, progress=events.append
    )
    return result, events, out


@pytest.fixture(scope="module")
def failed(tmp_path_factory):
    """The failing fixture executed."""
    out = tmp_path_factory.mktemp("failed")
    return runner.execute_notebook(FAILING, {"QUICK": True}, out)


# --------------------------------------------------------------------------
# A notebook that passes


def test_passing_notebook_reports_the_lines_it_printed(passed):
    result, _, _ = passed
    assert result["status"] == "passed", result["error"]
    assert result["error"] is None and result["failed_cell"] is None
    assert result["data"] == "fixture numbers (STAND-IN)"
    assert result["epochs"] == 2  # QUICK=True reached the quick-mode cell
    assert result["test_accuracy"] == pytest.approx(87.5)
    assert "Epoch 2/2" in result["text"]
    assert result["wall_time_s"] > 0


def test_parameters_are_injected_after_the_parameters_cell(passed):
    result, _, _ = passed
    nb = nbformat.read(result["executed_path"], as_version=4)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    at = tags.index(["parameters"])
    assert tags[at + 1] == [lessons.INJECTED_TAG]
    assert tags.count([lessons.INJECTED_TAG]) == 1
    injected = nb.cells[at + 1].source
    assert "QUICK = True" in injected and "VERBOSE = 2" in injected
    assert "Parameters seen: QUICK=True VERBOSE=2 EPOCHS=2" in result["text"]
    # a name the parameters cell does not assign is injected, with a warning
    assert "LABEL = 'it\\'s \"quoted\"'" in injected
    assert any("LABEL" in w for w in result["warnings"])


def test_notebook_runs_in_its_own_folder(passed):
    result, _, _ = passed
    assert "Working directory: fixtures" in result["text"]


def test_executed_notebook_and_html_are_saved_with_outputs(passed):
    result, _, out = passed
    executed, html = Path(result["executed_path"]), Path(result["html_path"])
    assert executed == out / "passing.ipynb" and html == out / "passing.html"
    assert (out / "passing.kernel.log").is_file()
    nb = nbformat.read(executed, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code)
    pngs = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(pngs) == 1  # figures are inline even though the tests set MPLBACKEND=Agg
    page = html.read_text(encoding="utf-8")
    assert "Test accuracy: 87.50%" in page and "<html" in page
    # the source notebook is left as it was
    source = nbformat.read(PASSING, as_version=4)
    assert all(not c.get("outputs") for c in source.cells)


def test_progress_events_follow_the_cells(passed):
    _, events, _ = passed
    assert events[0] == {"event": "start", "total": 7}
    cells = [e for e in events if e["event"] == "cell"]
    assert [e["done"] for e in cells] == list(range(7))
    assert cells[1]["first_line"] == "# Parameters injected by cnn_course.runner"
    printed = "".join(e["text"] for e in events if e["event"] == "output")
    assert "Epochs run: 2" in printed
    assert events[-1] == {"event": "end", "status": "passed"}


# --------------------------------------------------------------------------
# A notebook that fails


def test_failing_cell_is_named_with_its_error(failed):
    assert failed["status"] == "failed"
    assert failed["error"] == "ValueError: fixture failure after 3 values"
    assert "Traceback" not in failed["error"]
    assert failed["failed_cell"] == {"index": 2, "executed_index": 3, "first_line": "values = [1, 2, 3]"}
    assert failed["data"] == "fixture numbers (STAND-IN)"  # printed before the failure
    assert failed["test_accuracy"] is None


def test_failing_notebook_keeps_the_partial_run(failed):
    nb = nbformat.read(failed["executed_path"], as_version=4)
    assert [o["output_type"] for o in nb.cells[3].outputs] == ["error"]
    assert nb.cells[4].execution_count is None  # the cell after the failure never ran
    assert "fixture failure after 3 values" in Path(failed["html_path"]).read_text(encoding="utf-8")


def test_describe_failure_counts_cells_from_one(failed):
    line = reports.describe_failure(failed)
    assert line == "cell 3 `values = [1, 2, 3]`: ValueError: fixture failure after 3 values"
    long = {"error": "ValueError: shapes differ\n  (None, 10)\n  " + "x" * 500, "failed_cell": None}
    line = reports.describe_failure(long)
    assert "\n" not in line and line.startswith("ValueError: shapes differ (None, 10) x") and len(line) == 300


def test_a_cell_over_the_timeout_fails_the_notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import time"), nbformat.v4.new_code_cell("time.sleep(60)")]
    path = tmp_path / "slow.ipynb"
    nbformat.write(nb, path)
    result = runner.execute_notebook(path, {}, tmp_path / "out", timeout=1)
    assert result["status"] == "failed" and result["error"].startswith("CellTimeoutError")
    assert result["failed_cell"] == {"index": 1, "executed_index": 2, "first_line": "time.sleep(60)"}
    assert any("no cell tagged 'parameters'" in w for w in result["warnings"])


def test_missing_notebook_and_unsafe_out_dir_raise(tmp_path):
    with pytest.raises(FileNotFoundError):
        runner.execute_notebook(tmp_path / "nope.ipynb", {}, tmp_path)
    copy = tmp_path / "passing.ipynb"
    shutil.copy(PASSING, copy)
    with pytest.raises(ValueError, match="own folder"):
        runner.execute_notebook(copy, {}, tmp_path)


# --------------------------------------------------------------------------
# Parameters and parsing (no kernel)


def test_parse_output_reads_the_report_lines():
    text = (
        "Data: MNIST (real)\nEpoch 1/2\nData: MNIST (real)\nWeights: none\n"
        "  Epochs run: 3\nEpochs run: 12\nval accuracy: 0.5\nTest accuracy: 55.10%\nTest accuracy: 98.21%\n"
    )
    assert runner.parse_output(text) == {"data": "MNIST (real); Weights: none", "epochs": 12, "test_accuracy": 98.21}
    assert runner.parse_output("Data: a\nData: b (STAND-IN)\n")["data"] == "b (STAND-IN); a"
    assert runner.parse_output("nothing here") == {"data": None, "epochs": None, "test_accuracy": None}
    weights = runner.parse_output("Data: 2 photos\nWeights: STAND-IN: random weights\n")["data"]
    assert weights == "Weights: STAND-IN: random weights; 2 photos"


def test_parameter_values_are_written_with_repr():
    values = {"A": 3, "B": 0.5, "C": None, "D": "x'y\"z", "E": [1, (2, 3)], "F": True}
    source = lessons.parameters_source(values)
    namespace = {}
    exec(source, namespace)
    assert {k: namespace[k] for k in values} == values


@pytest.mark.parametrize("bad", [{"1X": 1}, {"class": 1}, {"A-B": 1}, {"OBJ": object()}])
def test_invalid_parameters_raise_value_error(bad):
    with pytest.raises(ValueError):
        lessons.parameters_source(bad)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"SEED": float("inf")}, "parameter SEED: inf is not a finite number"),
        ({"X": [1, float("nan")]}, "parameter X: nan is not a finite number"),
        ({"X": {"a": (complex(0, float("inf")),)}}, "is not a finite number"),
        ({"OBJ": Path("a")}, "cannot be written as a Python literal"),
    ],
)
def test_values_that_do_not_read_back_are_refused(bad, message):
    # inf's repr is a valid expression (the name inf): it used to be injected
    # and fail the notebook with NameError
    with pytest.raises(ValueError, match=message):
        lessons.parameters_source(bad)


def test_results_json_stays_strict_json(tmp_path):
    report = reports.build_report([], {}, False, {"SEED": float("inf"), "NESTED": [float("nan")]})
    json_path, _ = reports.write_report(report, tmp_path)

    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    saved = json.loads(json_path.read_text(), parse_constant=refuse)
    assert saved["parameters"] == {"SEED": "inf", "NESTED": ["nan"]}


def test_inject_replaces_a_previous_injection_and_handles_no_parameters_cell():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("intro"),
        nbformat.v4.new_code_cell("A = 1  # a\nB, C = 2, 3", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print(A)"),
    ]
    at, warnings = lessons.inject_parameters(nb, {"A": 5, "C": 6})
    assert at == 2 and warnings == []
    at, warnings = lessons.inject_parameters(nb, {"A": 7, "Z": 0})
    assert at == 2 and len(nb.cells) == 4 and "A = 7" in nb.cells[2].source
    assert warnings == ["not in the notebook's parameters cell (injected anyway): Z"]

    bare = nbformat.v4.new_notebook()
    bare.cells = [nbformat.v4.new_code_cell("print(1)")]
    at, warnings = lessons.inject_parameters(bare, {"A": 1})
    assert at == 0 and bare.cells[0].metadata["tags"] == [lessons.INJECTED_TAG]
    assert "no cell tagged 'parameters'" in warnings[0]


def test_parameter_names_reads_assignments():
    assert lessons.parameter_names("A = 1\nB: int = 2\nC, D = 3, 4\nE += 1\nprint(F)") == list("ABCDE")


# --------------------------------------------------------------------------
# Scripts and lessons


def _script(folder, body):
    path = folder / "lesson.py"
    path.write_text(body, encoding="utf-8")
    return path


def test_script_passes_and_its_output_is_saved(tmp_path):
    script = _script(tmp_path, "import os\nprint('here:', os.path.basename(os.getcwd()))\nprint('Epochs run: 4')\n")
    (tmp_path / "sub").mkdir()
    lines = []
    result = runner.run_script(script, tmp_path / "out", progress=lines.append)
    assert result["status"] == "passed" and result["epochs"] == 4 and result["data"] is None
    assert f"here: {tmp_path.name}" in result["text"]
    assert Path(result["executed_path"]).read_text(encoding="utf-8") == result["text"]
    assert {"event": "output", "name": "stdout", "text": "Epochs run: 4\n"} in lines


def test_script_failure_reports_the_last_line(tmp_path):
    script = _script(tmp_path, "print('start')\nraise RuntimeError('bad shape')\n")
    result = runner.run_script(script, tmp_path)
    assert result["status"] == "failed"
    assert result["error"] == "RuntimeError: bad shape"


def test_script_timeout_fails(tmp_path):
    script = _script(tmp_path, "import time\nprint('sleeping', flush=True)\ntime.sleep(30)\n")
    result = runner.run_script(script, tmp_path, timeout=1)
    assert result["status"] == "failed" and result["error"].startswith("TimeoutError")


def test_run_lesson_turns_a_missing_file_into_a_failed_result(tmp_path):
    result = runner.run_lesson("ghost", {}, tmp_path, lessons={"ghost": str(tmp_path / "ghost.ipynb")})
    assert result["lesson"] == "ghost" and result["status"] == "failed"
    assert result["error"].startswith("FileNotFoundError")
    with pytest.raises(KeyError):
        runner.run_lesson("nope", {}, tmp_path, lessons={})


def test_relative_data_paths_reach_kernels_and_scripts_absolute(tmp_path, monkeypatch):
    """A relative CNN_COURSE_DATA/KERAS_HOME names a folder under where the
    command started; kernels and scripts run in their lesson's folder, so they
    get it made absolute (else they silently miss the data)."""
    start = tmp_path / "start"
    (start / "data").mkdir(parents=True)
    lesson = tmp_path / "lesson"
    lesson.mkdir()
    script = _script(
        lesson,
        "import os\n"
        "for name in ('CNN_COURSE_DATA', 'KERAS_HOME'):\n"
        "    print(name, os.environ[name], os.path.isdir(os.environ[name]))\n",
    )
    monkeypatch.chdir(start)
    monkeypatch.setenv("CNN_COURSE_DATA", "data")
    monkeypatch.setenv("KERAS_HOME", "./keras/../data")
    env = backends.lesson_env()
    assert env["CNN_COURSE_DATA"] == env["KERAS_HOME"] == str(start / "data")
    result = runner.run_script(script, tmp_path / "out")
    assert result["status"] == "passed", result["error"]
    assert f"CNN_COURSE_DATA {start / 'data'} True" in result["text"]
    assert f"KERAS_HOME {start / 'data'} True" in result["text"]
    monkeypatch.setenv("CNN_COURSE_DATA", "/already/absolute")
    assert backends.lesson_env()["CNN_COURSE_DATA"] == "/already/absolute"


def test_an_out_dir_that_cannot_be_written_is_a_failed_result(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    script = _script(tmp_path, "print('hi')\n")
    result = runner.run_lesson("s", {}, blocker / "out", lessons={"s": str(script)})
    assert result["status"] == "failed" and result["error"].startswith(("FileExistsError", "NotADirectoryError"))


def test_lesson_registry_names_the_twelve_lessons():
    assert list(runner.LESSONS) == [
        "mnist-mlp",
        "cifar10-mlp",
        "cifar10-cnn",
        "cifar10-augmentation",
        "bottleneck-features",
        "transfer-learning",
        "conv-visualization",
        "training-speed",
        "modern-cnn",
        "data-parallel",
        "conv-dims",
        "pool-dims",
    ]
    assert list(runner.LESSONS).index("conv-visualization") > list(runner.LESSONS).index("cifar10-cnn")
    assert all(not Path(p).is_absolute() for p in runner.LESSONS.values())
    assert len({Path(p).stem for p in runner.LESSONS.values()}) == len(runner.LESSONS)  # outputs do not collide


# --------------------------------------------------------------------------
# The report


def _results():
    base = {"text": "long", "executed_path": "x", "html_path": None, "warnings": [], "path": "p"}
    return [
        {
            **base,
            "lesson": "mnist-mlp",
            "status": "passed",
            "data": "MNIST (real)",
            "epochs": 10,
            "test_accuracy": 98.214,
            "wall_time_s": 75.4,
            "error": None,
            "failed_cell": None,
        },
        {
            **base,
            "lesson": "cifar10-cnn",
            "status": "failed",
            "data": "CIFAR-10 STAND-IN | labelled",
            "epochs": None,
            "test_accuracy": None,
            "wall_time_s": 3.0,
            "error": "ValueError: boom",
            "failed_cell": {"index": 4, "executed_index": 5, "first_line": "model.fit("},
        },
        {
            **base,
            "lesson": "conv-dims",
            "status": "passed",
            "data": None,
            "epochs": None,
            "test_accuracy": None,
            "wall_time_s": 0.4,
            "error": None,
            "failed_cell": None,
        },
    ]


ENV = {"python": "3.11.7", "keras": "3.15.1", "backend": "tensorflow", "backend_version": "2.21.0", "device": "CPU"}


def test_report_json_and_markdown(tmp_path):
    report = reports.build_report(_results(), ENV, quick=True, parameters={"QUICK": True}, wall_time_s=80.0)
    json_path, md_path = reports.write_report(report, tmp_path / "build")
    data = json.loads(json_path.read_text())
    assert data["mode"] == "quick" and data["passed"] == 2 and data["failed"] == 1
    assert data["environment"]["device"] == "CPU" and data["parameters"] == {"QUICK": True}
    assert [r["lesson"] for r in data["lessons"]] == ["mnist-mlp", "cifar10-cnn", "conv-dims"]
    assert "text" not in data["lessons"][0]
    assert data["lessons"][1]["failed_cell"]["first_line"] == "model.fit("

    md = md_path.read_text()
    assert "device: CPU" in md and "Keras 3.15.1 on tensorflow 2.21.0" in md and "Mode: quick" in md
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(rows) == 4  # header and three lessons
    assert "98.21%" in rows[1] and "MNIST (real)" in rows[1] and "1:15" in rows[1]
    assert "FAILED" in rows[2] and "CIFAR-10 STAND-IN / labelled" in rows[2]  # no stray column
    assert rows[3].split("|")[3].strip() == "-"  # a script names no data
    assert "- **cifar10-cnn**: cell 5 `model.fit(`: ValueError: boom" in md
    assert "2 passed, 1 failed" in md
    # every row has as many columns as the header
    assert len({line.count("|") for line in md.splitlines() if line.startswith("|")}) == 1


_FAKE_KERAS = """
__version__ = "3.99.0"
class backend:
    @staticmethod
    def backend():
        return "{backend}"
"""
_FAKE_TENSORFLOW = """
__version__ = "2.99.0"
class _Device:
    name = "/physical_device:GPU:0"
class config:
    @staticmethod
    def list_physical_devices(kind):
        return [_Device(), _Device()] if kind == "GPU" else []
    class experimental:
        @staticmethod
        def get_device_details(device):
            return {"device_name": "NVIDIA H100 80GB HBM3"}
"""
_FAKE_JAX = """
__version__ = "0.99.0"
class _Device:
    def __init__(self, platform, kind):
        self.platform, self.device_kind = platform, kind
def devices():
    return [_Device("gpu", "NVIDIA H200")]
"""


@pytest.mark.parametrize(
    "backend, version, device",
    [("tensorflow", "2.99.0", "2 x NVIDIA H100 80GB HBM3"), ("jax", "0.99.0", "NVIDIA H200")],
)
def test_environment_info_names_the_gpus(tmp_path, monkeypatch, backend, version, device):
    # Fake keras/tensorflow/jax packages shadow the real ones in the probe's subprocess:
    # this checks the GPU naming without a GPU (and without importing TensorFlow).
    (tmp_path / "keras.py").write_text(_FAKE_KERAS.format(backend=backend))
    (tmp_path / "tensorflow.py").write_text(_FAKE_TENSORFLOW)
    (tmp_path / "jax.py").write_text(_FAKE_JAX)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    info = backends.environment_info()
    assert "error" not in info, info
    assert info["python"] == ".".join(map(str, sys.version_info[:3]))
    assert (info["keras"], info["backend"], info["backend_version"], info["device"]) == (
        "3.99.0",
        backend,
        version,
        device,
    )


def test_short_data_keeps_the_table_narrow():
    stand_in = (
        "STAND-IN for MNIST: scikit-learn digits resized to 28x28, 1437 train / 360 test "
        "(real MNIST not found; `python -m cnn_course data fetch mnist` gets it)"
    )
    assert reports.short_data(stand_in) == stand_in[: stand_in.index(" (real")]
    assert reports.short_data("MNIST (real)") == "MNIST (real)"
    assert reports.short_data("x" * 200) == "x" * 77 + "..."
    assert reports.short_data(None) == "-"
    real = "CIFAR-10 (real, 50000 train / 10000 test, from /some/long/path/cifar10-jpeg.tar.gz; JPEG copy, decoded)"
    assert reports.short_data(real) == "CIFAR-10 (real)"


def test_environment_info_reports_a_broken_install(tmp_path, monkeypatch):
    (tmp_path / "keras.py").write_text("raise ImportError('no backend installed')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    info = backends.environment_info()
    assert info["error"] == "ImportError: no backend installed"
    assert info["device"] == "?" and info["python"]


# --------------------------------------------------------------------------
# strip


def test_strip_clears_outputs_and_the_injected_cell(passed, tmp_path):
    result, _, _ = passed
    copy = tmp_path / "executed.ipynb"
    shutil.copy(result["executed_path"], copy)
    assert notebooks.strip_notebook(copy) is True
    nb = nbformat.read(copy, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert all("execution" not in c.metadata for c in nb.cells)
    assert not any(lessons.INJECTED_TAG in c.metadata.get("tags", []) for c in nb.cells)
    assert [c.source for c in nb.cells] == [c.source for c in nbformat.read(PASSING, as_version=4).cells]
    assert notebooks.strip_notebook(copy) is False  # already clean: untouched


def test_committed_fixtures_are_already_stripped(tmp_path):
    for fixture in (PASSING, FAILING):
        copy = tmp_path / fixture.name
        shutil.copy(fixture, copy)
        assert notebooks.strip_notebook(copy) is False


def test_tracked_notebooks_skip_build_outputs():
    found = notebooks.tracked_notebooks()
    assert PASSING in found
    assert not any("build" in p.relative_to(lessons.REPO_ROOT).parts[:1] for p in found)


def test_quick_parameters_are_injected_under_the_users_values():
    assert set(lessons.QUICK_PARAMETERS) <= set(runner.LESSONS)
    quick = lessons.lesson_parameters("mnist-mlp", True, {"EPOCHS": 3})
    assert quick["VERBOSE"] == 2 and quick["EPOCHS"] == 3
    assert {k: v for k, v in quick.items() if k != "EPOCHS"} == {
        "VERBOSE": 2,
        **{k: v for k, v in lessons.QUICK_PARAMETERS["mnist-mlp"].items() if k != "EPOCHS"},
    }
    assert lessons.lesson_parameters("mnist-mlp", False, {"EPOCHS": 3}) == {"VERBOSE": 2, "EPOCHS": 3}


def test_quick_runs_tell_the_kernel_that_stand_ins_are_allowed(monkeypatch):
    monkeypatch.delenv("CNN_COURSE_QUICK", raising=False)
    assert backends.lesson_env(quick=True)["CNN_COURSE_QUICK"] == "1"
    assert "CNN_COURSE_QUICK" not in backends.lesson_env(quick=False)
