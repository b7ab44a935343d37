"""`data status` says "found" only for what it has checked cheaply (issue 26,
low 11): a tarball by its member names, CIFAR-10 pickles by their opcodes
(never unpickled), weights by their HDF5 signature."""

import gzip
import pickle
import re

import numpy as np
import pytest

from cnn_course import __main__ as cli
from cnn_course import data
from test_data import hermetic, tar_folder, write_jpeg_tree, write_pickles  # noqa: F401


def row(name):
    return {r["name"]: r for r in data.dataset_status()}[name]


class RunsCode:
    """Unpickling this touches ``marker``: what a malicious batch could do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_gzip_of_zeros_named_like_the_cifar_tarball_is_broken(hermetic, capsys):
    with gzip.open(hermetic / data.CIFAR10_FILE, "wb") as f:
        f.write(bytes(4 * 2**20))
    r = row("cifar10")
    assert r["status"] == "broken" and "data_batch_1" in r["how"], r
    assert cli.main(["data", "status"]) == 0
    assert any(line.startswith("cifar10") and " BROKEN " in line for line in capsys.readouterr().out.splitlines())


def test_a_cifar_tarball_without_the_pickles_is_broken(hermetic, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "readme.txt").write_text("hello")
    tar_folder(hermetic / data.CIFAR10_FILE, tmp_path / "x", "cifar-10-batches-py")
    assert row("cifar10")["status"] == "broken"


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_pickles_that_would_run_code_are_broken_and_never_run(hermetic, tmp_path, protocol):
    folder = write_pickles(hermetic / "cifar-10-batches-py")
    marker = tmp_path / "ran"
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": RunsCode(marker)}, protocol=protocol))
    r = row("cifar10")
    assert r["status"] == "broken" and re.search(r"data_batch_3: refusing to load (io|builtins)\.open", r["how"]), r
    assert not marker.exists()


def test_a_file_that_is_not_a_pickle_is_broken(hermetic):
    folder = write_pickles(hermetic / "cifar-10-batches-py")
    (folder / "test_batch").write_bytes(b"\x80\x04junk")
    assert "test_batch: not a readable CIFAR-10 pickle" in row("cifar10")["how"]


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_good_pickles_and_tarballs_are_found(hermetic, tmp_path, protocol):
    x = np.zeros((10, 32, 32, 3), np.uint8)
    y = np.arange(10, dtype=np.uint8)
    data.write_cifar10_pickles(hermetic / "cifar-10-batches-py", (x, y), (x, y), protocol=protocol)
    assert row("cifar10")["status"] == "found"
    tar_folder(tmp_path / "t" / data.CIFAR10_FILE, hermetic / "cifar-10-batches-py", "cifar-10-batches-py")
    data.lookup.REPO_DATA_DIR = tmp_path / "t"  # hermetic's monkeypatch restores it
    r = row("cifar10")
    assert r["status"] == "found" and r["where"] == str(tmp_path / "t" / data.CIFAR10_FILE), r


def test_a_jpeg_tarball_without_a_test_split_is_broken(hermetic, tmp_path):
    write_jpeg_tree(tmp_path / "tree", per_class={"train": 1})
    tar_folder(hermetic / "cifar10-jpeg.tar.gz", tmp_path / "tree", "cifar10-jpeg")
    r = row("cifar10")
    assert r["status"] == "broken" and "no test among its members" in r["how"], r


def test_weights_that_are_not_hdf5_are_broken(hermetic):
    path = hermetic / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    path.write_bytes(b"not an HDF5 file at all")
    r = row("weights")
    assert r["status"] == "broken" and "not an HDF5 file" in r["how"], r
