"""The course outside its checkout (issue 21, section 4): the wheel holds the
whole helper package, installs into a fresh virtual environment, and a lesson
notebook copied into an empty folder runs there in quick mode; every lesson's
first code cell installs the helpers where they are missing (Colab).

The fresh environment gets the wheel's own cnn_course, and sees the
libraries of the Python running the tests through a folder of links to its
site-packages, less cnn_course itself and every .pth file (an editable
install's path hook among them): nothing is downloaded, and nothing is
installed twice. The kernel prints where its cnn_course came from.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

from cnn_course import lessons
from lesson_checks import install_cell_source

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "cnn_course"
LESSON = "mnist-mlp"  # the quickest notebook lesson
PROBE = 'import cnn_course\nprint("cnn_course imported from", cnn_course.__file__)'

DRIVER = r"""
import json, sys
from cnn_course import lessons, runner
notebook, out = sys.argv[1], sys.argv[2]
result = runner.execute_notebook(notebook, lessons.lesson_parameters(sys.argv[3], quick=True), out,
                                 timeout=600, quick=True)
print(json.dumps({"runner": runner.__file__, "status": result["status"], "error": result["error"],
                  "test_accuracy": result["test_accuracy"], "text": result["text"]}))
"""


def source_modules():
    """Return the package's modules as paths inside a wheel ("cnn_course/data/files.py"), sorted."""
    return sorted(str(p.relative_to(REPO).as_posix()) for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def clean_env(**changes):
    """Return this process's environment without what points Python at the
    checkout (PYTHONPATH, the tests' stand-in repo data folder), with `changes`."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CNN_COURSE_REPO_DATA")}
    env.update(changes)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """Build the wheel from a copy of what the package is made of; return its path."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(PACKAGE, src / "cnn_course", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            str(src),
            "-w",
            str(tmp / "dist"),
        ],
        check=True,
        env=clean_env(),
        capture_output=True,
        text=True,
    )
    (found,) = (tmp / "dist").glob("cnn_course-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory):
    """A fresh virtual environment outside the checkout with the wheel installed;
    returns its python."""
    tmp = tmp_path_factory.mktemp("venv")
    env_dir = tmp / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    # The libraries the tests run with, by link: everything but cnn_course and .pth files.
    deps = tmp / "deps"
    deps.mkdir()
    paths = sysconfig.get_paths()
    for ours in dict.fromkeys(Path(paths[key]) for key in ("purelib", "platlib")):
        for entry in ours.iterdir():
            if (
                entry.name.startswith(("cnn_course", "__editable__"))
                or entry.suffix == ".pth"
                or (deps / entry.name).exists()
            ):
                continue
            (deps / entry.name).symlink_to(entry)
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "course_deps.pth").write_text(f"{deps}\n")
    # Without --no-deps: pip checks that every declared dependency is there (offline: --no-index).
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-index", str(wheel)],
        env=clean_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return python


def test_the_wheel_holds_every_module_of_the_package(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    assert sorted(n for n in names if n.endswith(".py")) == source_modules()
    assert [n for n in names if not n.startswith(("cnn_course/", "cnn_course-"))] == []


def test_the_wheel_declares_the_dependencies_of_pyproject(wheel):
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    with zipfile.ZipFile(wheel) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    requires = [line.split(": ", 1)[1] for line in meta.splitlines() if line.startswith("Requires-Dist: ")]
    assert len(requires) == len(project["dependencies"]) + sum(map(len, project["optional-dependencies"].values()))
    assert {e: f"Provides-Extra: {e}" in meta for e in ("tensorflow", "jax", "lab")} == dict.fromkeys(
        ("tensorflow", "jax", "lab"), True
    )
    assert f"Project-URL: Repository, {project['urls']['Repository']}" in meta


def test_a_copied_notebook_runs_from_the_installed_wheel(venv, tmp_path):
    folder = tmp_path / "empty folder"
    folder.mkdir()
    notebook = folder / Path(lessons.LESSONS[LESSON]).name
    nb = nbformat.read(REPO / lessons.LESSONS[LESSON], as_version=4)
    nb.cells.insert(3, nbformat.v4.new_code_cell(PROBE))  # after the install cell: which cnn_course?
    nbformat.write(nb, notebook)
    keras_home = tmp_path / "keras"
    done = subprocess.run(
        [venv, "-c", DRIVER, str(notebook), str(tmp_path / "out"), LESSON],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=900,
        env=clean_env(
            KERAS_HOME=str(keras_home),
            JUPYTER_PATH=str(kernel_spec(venv, tmp_path / "jupyter")),
            CNN_COURSE_DATA=str(tmp_path / "data"),
        ),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    site = Path(venv).parent.parent
    assert Path(result["runner"]).is_relative_to(site)
    assert result["status"] == "passed", result["error"]
    imported = next(line for line in result["text"].splitlines() if line.startswith("cnn_course imported from"))
    assert Path(imported.split(" from ", 1)[1]).is_relative_to(site), imported
    assert result["test_accuracy"] is not None
    assert any(line.startswith("Test accuracy:") for line in result["text"].splitlines())
    # its checkpoint beside the notebook; nothing written into the installed package
    assert (folder / lessons.QUICK_PARAMETERS[LESSON]["CHECKPOINT"]).is_file()
    assert not (Path(result["runner"]).parent.parent / "data").exists()


def kernel_spec(python, folder):
    """Write a `python3` kernel spec for `python` under `folder`/kernels (found
    first through JUPYTER_PATH, whatever kernels the machine has); return folder."""
    spec = folder / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (wheel test)",
                "language": "python",
            }
        )
    )
    return folder


def test_run_from_the_installed_package_says_where_the_lessons_are(venv, tmp_path):
    done = subprocess.run(
        [venv, "-m", "cnn_course", "run", "--quick", "--out", str(tmp_path / "out")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]  # after the usage lines: one line saying why
    assert last.startswith("python -m cnn_course run: error: the lessons are not part of the installed "), last
    assert "Traceback" not in done.stderr
    done = subprocess.run(
        [venv, "-m", "cnn_course", "strip"], cwd=tmp_path, capture_output=True, text=True, env=clean_env()
    )
    assert done.returncode == 2 and "name the notebooks to strip" in done.stderr


def test_installed_the_course_data_folder_is_in_the_keras_home(venv, tmp_path):
    code = "from cnn_course.data import lookup; print(lookup.REPO_DATA_DIR); print(lookup.REPO_DATA_LABEL)"
    done = subprocess.run(
        [venv, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        env=clean_env(KERAS_HOME=str(tmp_path / "keras")),
    )
    assert done.stdout.splitlines() == [str(tmp_path / "keras" / "cnn-course"), "the course's data folder"]


@pytest.mark.parametrize("path", sorted(lessons.LESSONS.values()))
def test_every_lesson_first_installs_the_helpers_where_missing(path):
    if not path.endswith(".ipynb"):
        pytest.skip("a script lesson runs in the checkout")
    nb = nbformat.read(REPO / path, as_version=4)
    first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    assert nb.cells[first_code].source == install_cell_source()
    assert first_code == 2 and nb.cells[1].cell_type == "markdown"  # after the title, with its sentence
    assert "installs the course's helper package" in nb.cells[1].source
    # IPython turns the indented %pip into a call, so the cell is valid in a kernel
    python = TransformerManager().transform_cell(nb.cells[first_code].source)
    compile(python, path, "exec")
    assert "get_ipython().run_line_magic('pip', 'install --quiet \"cnn-course @ git+https://" in python
