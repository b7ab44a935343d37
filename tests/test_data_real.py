"""cnn_course.data on the real files in ../shared/data; skipped when absent.

The JPEG copy of CIFAR-10 is decoded once per test session into a temporary
"repo data" folder (a few seconds to tens of seconds on a busy 2-core
machine), so these tests never write into the shared folder or the checkout.
"""

import os
from pathlib import Path

import numpy as np
import pytest

from cnn_course import data

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MNIST = SHARED / "mnist.npz"
CIFAR_JPEG = SHARED / "cifar10-jpeg.tar.gz"

needs_mnist = pytest.mark.skipif(not MNIST.is_file(), reason=f"real data not found: {MNIST}")
needs_cifar = pytest.mark.skipif(not CIFAR_JPEG.is_file(), reason=f"real data not found: {CIFAR_JPEG}")


@pytest.fixture(scope="module")
def real_env(tmp_path_factory):
    """CNN_COURSE_DATA -> ../shared/data; the repo's data folder and Keras home
    moved to temporary folders; downloads off."""
    tmp = tmp_path_factory.mktemp("real")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(data.lookup, "REPO_DATA_DIR", tmp / "repo_data")
        (tmp / "repo_data").mkdir()
        mp.setenv("CNN_COURSE_DATA", str(SHARED))
        mp.setenv("KERAS_HOME", str(tmp / "keras_home"))
        mp.setenv("CNN_COURSE_OFFLINE", "1")
        yield tmp / "repo_data"


@pytest.fixture(scope="module")
def cifar(real_env):
    """The real CIFAR-10 from the JPEG copy, decoded once, and the shared
    folder's listing before the decode."""
    before = sorted(os.listdir(SHARED))
    return data.load_cifar10(), before


@needs_mnist
def test_real_mnist(real_env, capsys):
    (x_train, y_train), (x_test, y_test) = data.load_mnist()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.uint8
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    _, description = data.load_lesson_data("mnist", quick=True)
    assert description == f"MNIST (real, 60000 train / 10000 test, from {MNIST})"
    assert capsys.readouterr().out == f"Data: {description}\n"


@needs_cifar
@pytest.mark.slow
def test_real_cifar_from_the_jpeg_copy(cifar, real_env):
    ((x_train, y_train), (x_test, y_test)), before = cifar
    assert x_train.shape == (50000, 32, 32, 3) and x_test.shape == (10000, 32, 32, 3)
    assert x_train.dtype == np.uint8 and y_train.shape == (50000,)
    assert np.bincount(y_train).tolist() == [5000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
    assert len(set(y_train[:50].tolist())) >= 8  # shuffled: the first images mix classes
    assert 80 < x_train[:1000].mean() < 180  # real pixels, not blank rows
    # The decode cache went to the (temporary) repo data folder, not the shared one.
    assert len(list(real_env.glob("cifar10-jpeg.tar.gz.*.decoded.npz"))) == 1
    assert sorted(os.listdir(SHARED)) == before


@needs_cifar
@pytest.mark.slow
def test_real_cifar_second_load_comes_from_the_cache(cifar, monkeypatch, capsys):
    ((x_train, y_train), (x_test, y_test)), _ = cifar
    monkeypatch.setattr(data.images, "decode_cifar_tree", lambda *a: pytest.fail("decoded again"))
    (x2, y2), (x3, y3) = data.load_cifar10()
    assert np.array_equal(x2, x_train)
    assert np.array_equal(y3, y_test)
    _, description = data.load_lesson_data("cifar10")
    assert description.startswith(f"CIFAR-10 (real, 50000 train / 10000 test, from {CIFAR_JPEG}")


@needs_cifar
@pytest.mark.slow
def test_real_cifar_through_pickles(cifar, tmp_path):
    ((x_train, y_train), (x_test, y_test)), _ = cifar
    folder = data.write_cifar10_pickles(tmp_path / "cifar-10-batches-py", (x_train, y_train), (x_test, y_test))
    (x2, y2), (x3, y3) = data.load_cifar10(folder)
    assert np.array_equal(x2, x_train)
    assert np.array_equal(y2, y_train)
    assert np.array_equal(x3, x_test)
