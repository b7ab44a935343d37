"""What a second hostile read of issue 26's fixes still found: paths naming
``~user`` of no user, an over-long --out, a special file given to the
benchmark, an encrypted zip that `data status` called found, and a
traversal message naming the deleted staging folder."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnn_course import data
from test_data import hermetic  # noqa: F401
from test_data_imports import dogs_zip, encrypted, good_dog_members, run_cli

REPO = Path(__file__).resolve().parents[1]
NO_USER = "~nosuchuser-cnn-course/x"


@pytest.mark.parametrize("variable", ["CNN_COURSE_DATA", "KERAS_HOME"])
@pytest.mark.parametrize("argv", [["data", "status"], ["data", "fetch", "mnist"]])
def test_a_home_folder_of_no_user_is_a_one_line_usage_error(tmp_path, variable, argv):
    result = run_cli(*argv, **{variable: NO_USER})
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert f"{variable}={NO_USER}" in result.stderr and "no user" in result.stderr


@pytest.mark.parametrize("variable", ["CNN_COURSE_DATA", "KERAS_HOME"])
def test_run_refuses_a_home_folder_of_no_user_before_anything_runs(tmp_path, variable):
    result = subprocess.run(
        [sys.executable, "-m", "cnn_course", "run", "pool-dims", "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=str(REPO), **{variable: NO_USER}),
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no user" in result.stderr
    assert not (tmp_path / "o" / "results.json").exists()
    assert not list(tmp_path.glob("~*"))  # no folder named like the setting in the current folder


@pytest.mark.parametrize("out", ["a" * 300, NO_USER])
def test_an_out_folder_that_cannot_be_named_is_a_usage_error(tmp_path, out):
    result = subprocess.run(
        [sys.executable, "-m", "cnn_course", "run", "pool-dims", "--out", out],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("python -m cnn_course run: error: --out ")


def test_the_benchmark_names_a_special_file_as_such(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import train_speed
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    fifo = tmp_path / "mnist.npz"
    os.mkfifo(fifo)
    with pytest.raises(train_speed.UsageError, match="not a regular file"):
        train_speed._read_npz(fifo, "mnist")
    with pytest.raises(train_speed.UsageError, match="no such file"):
        train_speed._read_npz(tmp_path / "absent.npz", "mnist")


def test_status_calls_an_encrypted_dogs_zip_broken(hermetic):
    encrypted(dogs_zip(hermetic / "dogImages.zip", good_dog_members()))
    row = next(r for r in data.dataset_status() if r["name"] == "dogs")
    assert row["status"] == "broken" and "encrypted" in row["how"]


def test_a_member_escaping_the_archive_is_named_without_the_staging_folder(tmp_path, hermetic):
    src = dogs_zip(tmp_path / "dogImages.zip", good_dog_members() + [("dogImages//valid/x.jpg", b"x")])
    with pytest.raises(data.DataError) as error:
        data.find_dog_images(src)
    assert ".tmp-cnn-course" not in str(error.value)
