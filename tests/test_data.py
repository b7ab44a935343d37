"""Tests of cnn_course.data with tiny fixtures the tests make themselves.

Every test runs hermetically: CNN_COURSE_DATA unset, the repo's data folder
and KERAS_HOME moved to temporary folders, CNN_COURSE_OFFLINE=1, and a fake
``keras`` module whose ``utils.get_file`` fails loudly (with an exception the
code under test cannot swallow) unless a test installs its own fake.
"""

import json
import shutil
import sys
import tarfile
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cnn_course import data

PALETTE = np.array(
    [
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
        [255, 255, 0],
        [255, 0, 255],
        [0, 255, 255],
        [255, 255, 255],
        [0, 0, 0],
        [128, 128, 128],
        [255, 128, 0],
    ],
    np.uint8,
)


class DownloadAttempted(BaseException):
    """Raised by the default fake get_file: not an Exception, so no
    `except Exception` in the code under test can hide it."""


def refuse_download(fname=None, origin=None, **kwargs):
    raise DownloadAttempted(f"a test tried to download {origin}")


def install_fake_keras(monkeypatch, get_file):
    """Make `import keras` inside cnn_course.data return a fake whose
    utils.get_file is ``get_file``."""
    fake = types.ModuleType("keras")
    fake.utils = types.SimpleNamespace(get_file=get_file)
    monkeypatch.setitem(sys.modules, "keras", fake)


@pytest.fixture(autouse=True)
def hermetic(tmp_path, monkeypatch):
    repo_data = tmp_path / "repo_data"
    repo_data.mkdir()
    monkeypatch.setattr(data.lookup, "REPO_DATA_DIR", repo_data)
    monkeypatch.delenv("CNN_COURSE_DATA", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setenv("CNN_COURSE_OFFLINE", "1")
    install_fake_keras(monkeypatch, refuse_download)
    return repo_data


# ---------------------------------------------------------------- fixtures


def labels(n):
    return (np.arange(n) % 10).astype(np.uint8)


def write_mnist(path, n_train=20, n_test=10, **override):
    rng = np.random.default_rng(n_train)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": labels(n_train),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": labels(n_test),
    }
    arrays.update(override)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def cifar_arrays(n_train=20, n_test=10):
    """Flat images in the class's palette colour, so labels can be checked
    from pixels."""
    out = []
    for n in (n_train, n_test):
        y = labels(n)
        x = np.broadcast_to(PALETTE[y][:, None, None, :], (n, 32, 32, 3)).copy()
        out.append((x, y))
    return out[0], out[1]


def write_pickles(folder, n_train=20, n_test=10):
    return data.write_cifar10_pickles(folder, *cifar_arrays(n_train, n_test))


def tar_folder(tar_path, folder, arcname):
    tar_path = Path(tar_path)
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(folder, arcname=arcname)
    return tar_path


def jpeg_bytes(rgb, size=(32, 32)):
    import cv2

    img = np.broadcast_to(np.asarray(rgb, np.uint8), (*size, 3))
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[..., ::-1]))
    assert ok
    return buf.tobytes()


def write_jpeg_tree(root, per_class=None, classes=data.CIFAR10_CLASSES, size=(32, 32)):
    per_class = per_class or {"train": 3, "test": 2}
    root = Path(root)
    for split, n in per_class.items():
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                (folder / f"{i:04d}.jpg").write_bytes(jpeg_bytes(PALETTE[c % 10], size))
    return root


def colour_class(x):
    """Nearest palette class of each image's mean colour."""
    means = x.reshape(len(x), -1, 3).mean(axis=1)
    return np.argmin(((means[:, None, :] - PALETTE[None].astype(float)) ** 2).sum(-1), axis=1)


# ------------------------------------------------------------ where things are


def test_data_dirs_env_first_then_repo(monkeypatch, tmp_path, hermetic):
    assert data.data_dirs() == [hermetic]
    monkeypatch.setenv("CNN_COURSE_DATA", str(tmp_path / "mine"))
    assert data.data_dirs() == [tmp_path / "mine", hermetic]


def test_keras_cache_dir_follows_keras_home(monkeypatch, tmp_path):
    assert data.keras_cache_dir() == tmp_path / "keras_home" / "datasets"
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    assert data.keras_cache_dir() == tmp_path / "home" / ".keras" / "datasets"


def test_repo_root_is_the_checkout():
    assert (data.REPO_ROOT / "cnn_course" / "data" / "__init__.py").is_file()


# ------------------------------------------------------------------- MNIST


def test_load_mnist_from_file_and_folder(tmp_path):
    path = write_mnist(tmp_path / "x" / "mnist.npz", 20, 10)
    for arg in (path, path.parent):
        (x_train, y_train), (x_test, y_test) = data.load_mnist(arg)
        assert x_train.shape == (20, 28, 28) and x_test.shape == (10, 28, 28)
        assert x_train.dtype == np.uint8 and y_train.dtype == np.uint8
        assert y_train.shape == (20,) and y_test.tolist() == labels(10).tolist()


def test_mnist_resolution_order(tmp_path, monkeypatch, hermetic):
    env_dir = tmp_path / "env"
    keras_file = write_mnist(data.keras_cache_dir() / "mnist.npz", 14)
    assert len(data.load_mnist()[0][0]) == 14
    write_mnist(hermetic / "mnist.npz", 13)
    assert len(data.load_mnist()[0][0]) == 13
    write_mnist(env_dir / "mnist.npz", 12)
    monkeypatch.setenv("CNN_COURSE_DATA", str(env_dir))
    assert len(data.load_mnist()[0][0]) == 12
    arg = write_mnist(tmp_path / "arg.npz", 11)
    assert len(data.load_mnist(arg)[0][0]) == 11
    assert keras_file.is_file()


def test_missing_path_argument_warns_and_falls_back(tmp_path, hermetic):
    write_mnist(hermetic / "mnist.npz", 13)
    with pytest.warns(UserWarning, match="does not exist"):
        assert len(data.load_mnist(tmp_path / "nope.npz")[0][0]) == 13


@pytest.mark.parametrize(
    "override, match",
    [
        ({"x_train": np.zeros((20, 28, 27), np.uint8)}, r"shape \(20, 28, 27\)"),
        ({"x_test": np.zeros((10, 28, 28), np.float32)}, "dtype float32"),
        ({"y_train": np.full(20, 10, np.uint8)}, "out of range 0-9"),
        ({"y_test": np.zeros(9, np.uint8)}, "10 images but 9 labels"),
        ({"y_train": np.zeros(20, np.uint8)}, "no images of class 1"),
        ({"y_train": np.zeros(20, np.float32)}, "expected integers"),
    ],
)
def test_bad_mnist_arrays(tmp_path, override, match):
    path = write_mnist(tmp_path / "mnist.npz", **override)
    with pytest.raises(data.DataError, match=match) as err:
        data.load_mnist(path)
    assert str(path) in str(err.value)


def test_truncated_npz(tmp_path):
    path = write_mnist(tmp_path / "mnist.npz")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(data.DataError, match="truncated or corrupt") as err:
        data.load_mnist(path)
    assert str(path) in str(err.value)


def test_npz_missing_keys(tmp_path):
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(data.DataError, match="missing arrays y_train, x_test, y_test"):
        data.load_mnist(path)


def test_corrupt_file_in_a_data_dir_is_not_skipped(hermetic):
    (hermetic / "mnist.npz").write_bytes(b"not a zip")
    write_mnist(data.keras_cache_dir() / "mnist.npz")
    with pytest.raises(data.DataError, match="mnist.npz"):
        data.load_mnist()


# ---------------------------------------------------------- the offline error


def test_offline_error_lists_every_place_and_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("CNN_COURSE_DATA", str(tmp_path / "env"))
    with pytest.warns(UserWarning):
        with pytest.raises(data.DatasetNotFound) as err:
            data.load_mnist(tmp_path / "given.npz")
    msg = str(err.value)
    order = [
        str(tmp_path / "given.npz"),
        str(tmp_path / "env"),
        str(data.lookup.REPO_DATA_DIR),
        str(data.keras_cache_dir()),
    ]
    positions = [msg.index(p) for p in order]
    assert positions == sorted(positions)
    for needle in (
        "MNIST not found",
        data.MNIST_URL,
        "CNN_COURSE_OFFLINE=1",
        "python -m cnn_course data fetch mnist",
        f"put it in {tmp_path / 'env'}",
    ):
        assert needle in msg
    assert isinstance(err.value, FileNotFoundError)


def test_offline_error_for_cifar_names_both_keras_layouts():
    with pytest.raises(data.DatasetNotFound) as err:
        data.load_cifar10()
    msg = str(err.value)
    assert data.CIFAR10_URL in msg and "cifar-10-batches-py-target/cifar-10-batches-py" in msg
    assert "python -m cnn_course data fetch cifar10" in msg


# ----------------------------------------------------------- CIFAR-10 pickles


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_pickles_folder_roundtrip(tmp_path, protocol):
    folder = data.write_cifar10_pickles(tmp_path / "cifar-10-batches-py", *cifar_arrays(20, 10), protocol=protocol)
    (x_train, y_train), (x_test, y_test) = data.load_cifar10(folder)
    (ex, ey), (tx, ty) = cifar_arrays(20, 10)
    assert x_train.shape == (20, 32, 32, 3) and x_test.shape == (10, 32, 32, 3)
    assert y_train.shape == (20,) and y_train.dtype == np.uint8
    np.testing.assert_array_equal(x_train, ex)
    np.testing.assert_array_equal(y_test, ty)


def test_cifar_official_tarball(tmp_path):
    folder = write_pickles(tmp_path / "src" / "cifar-10-batches-py")
    tarball = tar_folder(tmp_path / "cifar-10-python.tar.gz", folder, "cifar-10-batches-py")
    (x_train, y_train), _ = data.load_cifar10(tarball)
    assert x_train.shape == (20, 32, 32, 3)
    assert colour_class(x_train).tolist() == y_train.tolist()


@pytest.mark.parametrize("layout", ["cifar-10-batches-py", "cifar-10-batches-py-target/cifar-10-batches-py"])
def test_cifar_in_both_keras_cache_layouts(layout):
    write_pickles(data.keras_cache_dir() / layout, 30)
    assert len(data.load_cifar10()[0][0]) == 30


def test_cifar_resolution_order(tmp_path, monkeypatch, hermetic):
    write_pickles(data.keras_cache_dir() / "cifar-10-batches-py", 40)
    write_pickles(hermetic / "cifar-10-batches-py", 30)
    write_pickles(tmp_path / "env" / "cifar-10-batches-py", 20)
    assert len(data.load_cifar10()[0][0]) == 30
    monkeypatch.setenv("CNN_COURSE_DATA", str(tmp_path / "env"))
    assert len(data.load_cifar10()[0][0]) == 20
    assert len(data.load_cifar10(write_pickles(tmp_path / "arg", 50))[0][0]) == 50


def test_bad_pickle_is_named(tmp_path):
    folder = write_pickles(tmp_path / "p")
    (folder / "data_batch_3").write_bytes(b"\x80\x02garbage")
    with pytest.raises(data.DataError, match="data_batch_3: not a readable CIFAR-10 pickle"):
        data.load_cifar10(folder)


def test_pickle_that_would_run_code_is_refused(tmp_path):
    folder = write_pickles(tmp_path / "p")
    (folder / "test_batch").write_bytes(b"cos\nsystem\n(S'echo hacked'\ntR.")
    with pytest.raises(data.DataError, match="refusing to load os.system"):
        data.load_cifar10(folder)


def test_pickle_with_wrong_shape(tmp_path):
    import pickle

    folder = write_pickles(tmp_path / "p")
    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump({b"data": np.zeros((4, 100), np.uint8), b"labels": [0, 1, 2, 3]}, f)
    with pytest.raises(data.DataError, match=r"data_batch_1: 'data' is uint8 \(4, 100\)"):
        data.load_cifar10(folder)


def test_missing_batch(tmp_path):
    folder = write_pickles(tmp_path / "p")
    (folder / "test_batch").unlink()
    with pytest.raises(data.DataError, match="missing test_batch"):
        data.load_cifar10(folder)


def test_truncated_tarball(tmp_path):
    folder = write_pickles(tmp_path / "src" / "cifar-10-batches-py")
    tarball = tar_folder(tmp_path / "cifar-10-python.tar.gz", folder, "cifar-10-batches-py")
    tarball.write_bytes(tarball.read_bytes()[: tarball.stat().st_size // 2])
    with pytest.raises(data.DataError, match="cifar-10-python.tar.gz"):
        data.load_cifar10(tarball)


# ---------------------------------------------------------- CIFAR-10 JPEG tree


def test_cifar_jpeg_tree_folder_and_tarball(tmp_path, hermetic):
    root = write_jpeg_tree(tmp_path / "cifar10-jpeg")
    tarball = tar_folder(tmp_path / "t" / "cifar10-jpeg.tar.gz", root, ".")
    for source in (root, tarball):
        (x_train, y_train), (x_test, y_test) = data.load_cifar10(source)
        assert x_train.shape == (30, 32, 32, 3) and x_test.shape == (20, 32, 32, 3)
        assert np.bincount(y_train).tolist() == [3] * 10 and np.bincount(y_test).tolist() == [2] * 10
        assert colour_class(x_train).tolist() == y_train.tolist()
        assert colour_class(x_test).tolist() == y_test.tolist()
        assert y_train.tolist() != sorted(y_train.tolist())  # shuffled
    # Both decode caches went to the repo's data folder, none beside the sources.
    assert len(list(hermetic.glob("*.decoded.npz"))) == 2
    assert not list(tmp_path.glob("*.decoded.npz")) and not list((tmp_path / "t").glob("*.decoded.npz"))


def test_jpeg_tree_in_data_dir_is_found(hermetic):
    write_jpeg_tree(hermetic / "cifar10-jpeg")
    assert len(data.load_cifar10()[1][0]) == 20


def test_jpeg_cache_is_used_and_renewed_when_the_source_changes(tmp_path, monkeypatch):
    import os

    root = write_jpeg_tree(tmp_path / "cifar10-jpeg")
    tarball = tar_folder(tmp_path / "cifar10-jpeg.tar.gz", root, ".")
    first = data.load_cifar10(tarball)

    def no_decoding(*args):
        raise AssertionError("decoded again")

    with monkeypatch.context() as m:
        m.setattr(data.images, "decode_cifar_tree", no_decoding)
        second = data.load_cifar10(tarball)
    np.testing.assert_array_equal(first[0][0], second[0][0])
    np.testing.assert_array_equal(first[0][1], second[0][1])
    # Changed source (new size and mtime): decoded again, old cache replaced.
    write_jpeg_tree(root, {"train": 4, "test": 2})
    tar_folder(tarball, root, ".")
    os.utime(tarball, ns=(10**18, 10**18))
    assert len(data.load_cifar10(tarball)[0][0]) == 40
    assert len(list(data.lookup.REPO_DATA_DIR.glob("cifar10-jpeg.tar.gz.*.decoded.npz"))) == 1


def test_jpeg_order_is_repeatable(tmp_path, hermetic):
    root = write_jpeg_tree(tmp_path / "cifar10-jpeg")
    first = data.load_cifar10(root)[0][1]
    for cache in hermetic.glob("*.decoded.npz"):
        cache.unlink()
    assert data.load_cifar10(root)[0][1].tolist() == first.tolist()


def test_cache_falls_back_beside_the_source_when_repo_data_is_not_writable(tmp_path, monkeypatch, hermetic):
    real_open = open

    def guarded_open(file, mode="r", *args, **kwargs):
        if "w" in mode and Path(file).parent == hermetic:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", guarded_open)
    root = write_jpeg_tree(tmp_path / "src" / "cifar10-jpeg")
    data.load_cifar10(root)
    assert not list(hermetic.glob("*.npz"))
    assert len(list((tmp_path / "src").glob("cifar10-jpeg.*.decoded.npz"))) == 1


def test_damaged_cache_is_reported_and_rebuilt(tmp_path, hermetic):
    root = write_jpeg_tree(tmp_path / "cifar10-jpeg")
    data.load_cifar10(root)
    (cache,) = hermetic.glob("*.decoded.npz")
    cache.write_bytes(b"junk")
    with pytest.warns(UserWarning, match="damaged decode cache"):
        assert len(data.load_cifar10(root)[0][0]) == 30


def test_a_few_bad_images_are_named_and_skipped(tmp_path):
    root = write_jpeg_tree(tmp_path / "cifar10-jpeg", {"train": 11, "test": 1})
    bad = root / "train" / "cat" / "0003.jpg"
    bad.write_bytes(b"this is not a jpeg")
    (root / "train" / "dog" / "notes.txt").write_text("hello")
    with pytest.warns(UserWarning) as record:
        (x_train, y_train), _ = data.load_cifar10(root)
    messages = " | ".join(str(w.message) for w in record)
    assert "skipped 1 unusable image(s) of 110" in messages and str(bad) in messages
    assert "not images" in messages and "notes.txt" in messages
    assert len(x_train) == 109 and np.bincount(y_train)[3] == 10
    # Loading from the cache repeats the warning: nothing is dropped silently.
    with pytest.warns(UserWarning, match="0003.jpg"):
        data.load_cifar10(root)


def test_many_bad_images_is_an_error(tmp_path):
    root = write_jpeg_tree(tmp_path / "cifar10-jpeg")
    for f in list((root / "train" / "bird").iterdir()):
        f.write_bytes(b"")
    with pytest.raises(data.DataError, match=r"3 of 30 images are unusable .*0000.jpg is empty"):
        data.load_cifar10(root)


def test_wrong_size_image_counts_as_bad(tmp_path):
    root = write_jpeg_tree(tmp_path / "cifar10-jpeg")
    (root / "test" / "ship" / "0001.jpg").write_bytes(jpeg_bytes(PALETTE[8], (40, 48)))
    with pytest.raises(data.DataError, match="0001.jpg is 48x40, expected 32x32"):
        data.load_cifar10(root)


def test_empty_class_folder(tmp_path):
    root = write_jpeg_tree(tmp_path / "cifar10-jpeg")
    shutil.rmtree(root / "train" / "frog")
    (root / "train" / "frog").mkdir()
    with pytest.raises(data.DataError, match="empty class folder.*frog"):
        data.load_cifar10(root)


def test_wrong_class_folders_for_cifar(tmp_path):
    root = write_jpeg_tree(tmp_path / "cifar10-jpeg", classes=data.CIFAR10_CLASSES[:9])
    with pytest.raises(data.DataError, match="CIFAR-10 needs exactly"):
        data.load_cifar10(root)


# ------------------------------------------------------------ image folders


def test_load_image_folder_lists_and_shuffles(tmp_path):
    root = data.make_image_folder_standin(tmp_path / "dogs", n_classes=3, per_split={"train": 6, "valid": 2, "test": 2})
    folder = data.load_image_folder(root)
    assert set(folder) == {"train", "valid", "test"}
    classes = folder["train"]["classes"]
    assert classes == sorted(classes) and len(classes) == 3 and classes[0].startswith("001.")
    for split in folder.values():
        assert split["classes"] == classes
        assert [p.parent.name for p in split["paths"]] == [classes[i] for i in split["labels"]]
    assert len(folder["train"]["paths"]) == 18
    assert folder["train"]["labels"].tolist() != sorted(folder["train"]["labels"].tolist())
    again = data.load_image_folder(root)
    assert again["train"]["paths"] == folder["train"]["paths"]
    unshuffled = data.load_image_folder(root, shuffle=False)
    assert unshuffled["train"]["labels"].tolist() == sorted(unshuffled["train"]["labels"].tolist())


def test_image_folder_splits_must_share_classes(tmp_path):
    root = data.make_image_folder_standin(tmp_path / "dogs", n_classes=3)
    shutil.rmtree(next((root / "valid").iterdir()))
    with pytest.raises(data.DataError, match="different class folders"):
        data.load_image_folder(root)


def test_image_folder_bad_roots(tmp_path):
    with pytest.raises(data.DatasetNotFound):
        data.load_image_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DataError, match="no train/, valid/ or test/"):
        data.load_image_folder(tmp_path / "empty")


def test_read_images_batches_resizes_and_is_rgb(tmp_path):
    root = write_jpeg_tree(tmp_path / "tree", {"train": 1}, classes=("red", "green", "blue"), size=(20, 30))
    paths = sorted((root / "train").glob("*/*.jpg"))  # blue, green, red
    batches = list(data.read_images(paths, size=(16, 24), batch_size=2))
    assert [b.shape for b in batches] == [(2, 16, 24, 3), (1, 16, 24, 3)]
    images = np.concatenate(batches)
    assert images.dtype == np.uint8
    assert [int(np.argmax(img.mean(axis=(0, 1)))) for img in images] == [2, 1, 0]


def test_read_images_names_an_unreadable_file(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 broken")
    with pytest.raises(data.DataError, match="broken.jpg is not a readable image"):
        list(data.read_images([bad]))


def test_make_image_folder_standin_is_class_coloured(tmp_path):
    root = data.make_image_folder_standin(tmp_path / "s", size=(24, 24))
    folder = data.load_image_folder(root, shuffle=False)
    assert {s: len(v["paths"]) for s, v in folder.items()} == {"train": 60, "valid": 20, "test": 20}
    images = np.concatenate(list(data.read_images(folder["train"]["paths"], size=(24, 24))))
    means = images.reshape(60, -1, 3).mean(axis=1)
    per_class = np.array([means[folder["train"]["labels"] == c].mean(axis=0) for c in range(5)])
    assert np.min(np.linalg.norm(per_class[:, None] - per_class[None], axis=-1) + np.eye(5) * 1e9) > 40


# --------------------------------------------------------------- dog images


def test_find_dog_images_folder_and_zip(tmp_path, hermetic, monkeypatch):
    src = data.make_image_folder_standin(
        tmp_path / "dogImages", n_classes=2, per_split={"train": 1, "valid": 1, "test": 1}, size=(8, 8)
    )
    assert data.find_dog_images(tmp_path) == src
    zip_path = tmp_path / "zips" / "dogImages.zip"
    zip_path.parent.mkdir()
    shutil.make_archive(str(zip_path.with_suffix("")), "zip", tmp_path, "dogImages")
    monkeypatch.setenv("CNN_COURSE_DATA", str(zip_path.parent))
    root = data.find_dog_images()
    assert root == hermetic / "dogImages"
    assert len(data.load_image_folder(root)["train"]["paths"]) == 2
    monkeypatch.setattr(data.install, "unpack_tree", lambda *a: pytest.fail("unzipped twice"))
    assert data.find_dog_images() == root


def test_find_dog_images_not_found_and_incomplete(tmp_path):
    with pytest.raises(data.DatasetNotFound, match="dogImages.zip") as err:
        data.find_dog_images()
    assert data.DOGS_URL in str(err.value)
    (tmp_path / "dogImages" / "train" / "001.A").mkdir(parents=True)
    with pytest.raises(data.DataError, match="valid/, test/"):
        data.find_dog_images(tmp_path / "dogImages")


def test_zip_with_escaping_names_is_refused(tmp_path):
    zip_path = tmp_path / "dogImages.zip"
    with zipfile.ZipFile(zip_path, "w") as z:
        z.writestr("train/001.A/a.jpg", b"x")
        z.writestr("../../evil.txt", b"x")
    with pytest.raises(data.DataError, match="refusing to unpack"):
        data.find_dog_images(zip_path)
    # The unzip goes into the repo's data folder (under tmp_path here): a
    # write, had the guard let it through, would land somewhere under tmp_path.
    assert list(tmp_path.rglob("evil.txt")) == []


# ------------------------------------------------------------- downloads


def fake_get_file(calls, fixture):
    """A fake keras.utils.get_file with Keras's signature that 'downloads'
    by copying ``fixture``."""

    def get_file(
        fname=None,
        origin=None,
        untar=False,
        md5_hash=None,
        file_hash=None,
        cache_subdir="datasets",
        hash_algorithm="auto",
        extract=False,
        archive_format="auto",
        cache_dir=None,
        force_download=False,
    ):
        calls.append(
            {
                "fname": fname,
                "origin": origin,
                "file_hash": file_hash,
                "cache_dir": cache_dir,
                "cache_subdir": cache_subdir,
            }
        )
        target = Path(cache_dir) / cache_subdir / fname
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(fixture, target)
        return str(target)

    return get_file


def test_download_mnist_through_keras(tmp_path, monkeypatch):
    monkeypatch.delenv("CNN_COURSE_OFFLINE")
    calls = []
    install_fake_keras(monkeypatch, fake_get_file(calls, write_mnist(tmp_path / "fx.npz", 15)))
    (x_train, _), _ = data.load_mnist()
    assert len(x_train) == 15
    assert calls == [
        {
            "fname": "mnist.npz",
            "origin": data.MNIST_URL,
            "file_hash": data.MNIST_SHA256,
            "cache_dir": str(tmp_path / "keras_home"),
            "cache_subdir": "datasets",
        }
    ]
    install_fake_keras(monkeypatch, refuse_download)
    assert len(data.load_mnist()[0][0]) == 15  # now found in the Keras cache


def test_download_cifar_unpacks_into_keras_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("CNN_COURSE_OFFLINE")
    folder = write_pickles(tmp_path / "src" / "cifar-10-batches-py", 20)
    tarball = tar_folder(tmp_path / "fx.tar.gz", folder, "cifar-10-batches-py")
    calls = []
    install_fake_keras(monkeypatch, fake_get_file(calls, tarball))
    assert data.fetch("cifar10") == data.keras_cache_dir() / "cifar-10-batches-py"
    assert calls[0]["origin"] == data.CIFAR10_URL and calls[0]["file_hash"] == data.CIFAR10_SHA256
    install_fake_keras(monkeypatch, refuse_download)
    assert len(data.load_cifar10()[0][0]) == 20


def test_network_failure_gives_one_clear_message(monkeypatch):
    monkeypatch.delenv("CNN_COURSE_OFFLINE")

    def no_network(fname=None, origin=None, **kwargs):
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -3] Temporary failure in name resolution")

    install_fake_keras(monkeypatch, no_network)
    with pytest.raises(data.DatasetNotFound) as err:
        data.load_mnist()
    msg = str(err.value)
    assert "MNIST not found" in msg and "The download failed" in msg
    assert "Temporary failure in name resolution" in msg and "data fetch mnist" in msg
    assert err.value.__cause__ is None and err.value.__suppress_context__
    with pytest.raises(data.DatasetNotFound, match="Could not download cifar-10-python.tar.gz"):
        data.fetch("cifar10")


def test_corrupt_download_is_a_data_error(monkeypatch):
    monkeypatch.delenv("CNN_COURSE_OFFLINE")

    def bad_hash(fname=None, origin=None, **kwargs):
        raise ValueError("Incomplete or corrupted file detected.")

    install_fake_keras(monkeypatch, bad_hash)
    with pytest.raises(data.DataError, match="corrupt or incomplete"):
        data.fetch("mnist")


def test_fetch_offline_and_unknown_names():
    with pytest.raises(data.DatasetNotFound, match="CNN_COURSE_OFFLINE=1"):
        data.fetch("mnist")
    with pytest.raises(ValueError, match="unknown dataset"):
        data.fetch("imagenet")


# ------------------------------------------------- lesson data and stand-ins


def test_lesson_data_real_prints_one_line(capsys, hermetic):
    path = write_mnist(hermetic / "mnist.npz", 20, 10)
    (train, test), description = data.load_lesson_data("mnist")
    out = capsys.readouterr().out.splitlines()
    assert out == [f"Data: {description}"]
    assert description == f"MNIST (real, 20 train / 10 test, from {path})"


def test_lesson_data_quick_uses_labelled_standins_without_downloading(capsys, monkeypatch):
    monkeypatch.delenv("CNN_COURSE_OFFLINE")  # the fake keras would fail loudly on a download
    (train, test), description = data.load_lesson_data("mnist", quick=True)
    assert train[0].shape[1:] == (28, 28)
    assert description.startswith("STAND-IN for MNIST: scikit-learn digits resized to 28x28")
    assert "`python -m cnn_course data fetch mnist` gets it" in description
    (train, test), description = data.load_lesson_data("cifar10", quick=True)
    assert train[0].shape == (7000, 32, 32, 3) and test[0].shape == (1000, 32, 32, 3)
    assert description.startswith("STAND-IN for CIFAR-10")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(line.startswith("Data: STAND-IN") for line in lines)


def test_lesson_data_not_quick_offline_raises():
    with pytest.raises(data.DatasetNotFound, match="CIFAR-10 not found"):
        data.load_lesson_data("cifar10")
    with pytest.raises(ValueError):
        data.load_lesson_data("imagenet")


def test_load_digits28():
    (x_train, y_train), (x_test, y_test) = data.load_digits28()
    assert x_train.shape[1:] == (28, 28) and x_train.dtype == np.uint8 and y_train.dtype == np.uint8
    assert len(x_train) + len(x_test) == 1797 and len(x_test) == 360
    assert x_train.max() > 200 and x_train[:, :3].max() == 0  # digit inside a blank frame
    assert np.bincount(y_test).min() >= 35  # stratified: every class well represented
    np.testing.assert_array_equal(data.load_digits28(seed=0)[1][1], y_test)
    assert data.load_digits28(seed=1)[1][1].tolist() != y_test.tolist()


def test_cifar10_standin_is_balanced_repeatable_and_learnable():
    (x_train, y_train), (x_test, y_test) = data.make_cifar10_standin(200, 100, seed=3)
    assert x_train.shape == (200, 32, 32, 3) and x_train.dtype == np.uint8 and y_train.dtype == np.uint8
    assert np.bincount(y_train).tolist() == [20] * 10
    np.testing.assert_array_equal(data.make_cifar10_standin(200, 100, seed=3)[0][0], x_train)
    # A nearest-mean-colour classifier already separates the classes.
    centres = np.array([x_train[y_train == c].mean(axis=(0, 1, 2)) for c in range(10)])
    pred = np.argmin(((x_test.mean(axis=(1, 2))[:, None] - centres[None]) ** 2).sum(-1), axis=1)
    assert (pred == y_test).mean() > 0.8


# ---------------------------------------------------------------- VGG16


def write_vgg_h5(path, top=True):
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    layer_names = [b"block1_conv1", b"block1_conv2"] + ([b"fc1", b"fc2", b"predictions"] if top else [])
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = layer_names
    return path


VGG16_NOTOP, VGG16_TOP = (data.backbones.weights_file_name("VGG16", top) for top in (False, True))


def test_vgg16_weights_found_in_data_dir_and_keras_models(capsys, hermetic):
    path = write_vgg_h5(hermetic / VGG16_NOTOP, top=False)
    weights, description = data.backbone_weights("VGG16", include_top=False)
    assert weights == str(path) and str(path) in description
    models = write_vgg_h5(data.keras_home() / "models" / VGG16_TOP)
    # with the top, offline, the ImageNet class names must be there too (as for any backbone)
    (models.parent / "imagenet_class_index.json").write_text(
        json.dumps({str(i): [f"n{i:08d}", f"name_{i}"] for i in range(1000)})
    )
    assert data.backbone_weights("VGG16", include_top=True)[0] == str(models)
    assert capsys.readouterr().out.splitlines()[0] == f"Weights: {description}"


def test_vgg16_weights_missing(monkeypatch, capsys, tmp_path):
    with pytest.raises(data.DatasetNotFound) as err:
        data.backbone_weights("VGG16", include_top=True)
    assert data.backbones.BASE_URLS["VGG16"] + VGG16_TOP in str(err.value)
    weights, description = data.backbone_weights("VGG16", include_top=True, quick=True)
    assert weights is None and description.startswith("STAND-IN: random weights")
    monkeypatch.delenv("CNN_COURSE_OFFLINE")  # online: downloaded through Keras into its cache
    calls = []
    install_fake_keras(monkeypatch, fake_get_file(calls, write_vgg_h5(tmp_path / "fx.h5", top=False)))
    assert data.backbone_weights("VGG16", include_top=False)[0] == str(data.keras_home() / "models" / VGG16_NOTOP)
    assert calls[0]["origin"] == data.backbones.BASE_URLS["VGG16"] + VGG16_NOTOP
    assert calls[0]["cache_subdir"] == "models"
    assert calls[0]["file_hash"] == "6d6bbae143d832006294945121d1f1fc"  # the md5 Keras itself checks for this file
    assert capsys.readouterr().out.count("Weights: ") == 2


def test_a_failed_weights_download_is_one_clear_line(monkeypatch, capsys):
    """Lesson 5 run in full without a network (and without CNN_COURSE_OFFLINE): Keras's get_file fails
    as it does there; the optional with-top step is left out in one line, a required one is one error."""
    monkeypatch.delenv("CNN_COURSE_OFFLINE")

    def no_network(fname=None, origin=None, **kwargs):
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -2] Name or service not known")

    install_fake_keras(monkeypatch, no_network)
    weights, description = data.backbone_weights("MobileNetV2", 0.35, include_top=True, required=False)
    out = capsys.readouterr().out
    assert weights is None and out == f"Weights: {description}\n"
    assert "so this step is left out" in description and "Name or service not known" in description
    with pytest.raises(data.DatasetNotFound) as err:
        data.backbone_weights("MobileNetV2", 0.35)
    assert "The download failed" in str(err.value) and "Name or service not known" in str(err.value)
    assert "Traceback" not in str(err.value) and err.value.__cause__ is None


# ---------------------------------------------------------------- status


def test_dataset_status_never_downloads_or_decodes(tmp_path, hermetic, monkeypatch):
    monkeypatch.delenv("CNN_COURSE_OFFLINE")
    monkeypatch.setattr(data.images, "decode_many", lambda *a: pytest.fail("decoded"))
    status = data.dataset_status()
    assert [s["name"] for s in status] == list(data.DATASETS)
    assert not any(s["found"] for s in status)
    assert all(f"python -m cnn_course data fetch {s['name']}" in s["how"] for s in status)
    write_mnist(hermetic / "mnist.npz")
    write_jpeg_tree(hermetic / "cifar10-jpeg")
    (hermetic / "dogImages").write_text("not a folder")
    status = {s["name"]: s for s in data.dataset_status()}
    assert status["mnist"]["found"] and status["mnist"]["where"] == str(hermetic / "mnist.npz")
    assert status["cifar10"]["where"] == str(hermetic / "cifar10-jpeg")
    assert not status["dogs"]["found"] and status["dogs"]["status"] == "broken"
    assert status["dogs"]["how"].startswith(f"broken: {hermetic / 'dogImages'} is not usable")


def test_write_cifar10_pickles_rejects_wrong_shapes(tmp_path):
    with pytest.raises(data.DataError, match="expected uint8"):
        data.write_cifar10_pickles(
            tmp_path, (np.zeros((5, 28, 28), np.uint8), labels(5)), (np.zeros((5, 28, 28), np.uint8), labels(5))
        )


def test_importing_the_data_layer_does_not_import_keras():
    # Importing the data layer must not import Keras/TensorFlow (notebooks and
    # the CLI import it before anything heavy is needed).
    import subprocess

    code = "import sys, cnn_course.data; print('keras' in sys.modules or 'tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------- dog images for the lesson


@pytest.fixture
def temp_dir(tmp_path, monkeypatch):
    """A fresh folder that tempfile.gettempdir() returns, for stand-ins."""
    import tempfile

    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_load_dog_images_real_prints_counts(tmp_path, capsys, temp_dir):
    src = data.make_image_folder_standin(
        tmp_path / "dogImages", n_classes=3, per_split={"train": 4, "valid": 2, "test": 1}, size=(8, 8)
    )
    (src / "train" / "001.Standin_Red" / "notes.txt").write_text("not an image")
    root, description = data.load_dog_images(tmp_path, quick=True)
    assert root == src
    assert description == f"Dog-breed images (real, 12 train / 6 valid / 3 test, 3 breeds, from {src})"
    assert capsys.readouterr().out.splitlines() == [f"Data: {description}"]
    assert list(temp_dir.iterdir()) == []  # no stand-in made when the real images are there


def test_load_dog_images_quick_builds_a_labelled_standin_once(capsys, temp_dir, monkeypatch):
    root, description = data.load_dog_images(quick=True, seed=3)
    assert root.parent == temp_dir
    assert description.startswith("STAND-IN for Dog-breed images")
    assert "colour-and-stripe" in description
    assert "5 classes, 60 train / 20 valid / 20 test" in description
    assert capsys.readouterr().out.splitlines() == [f"Data: {description}"]
    folder = data.load_image_folder(root)
    assert len(folder["train"]["classes"]) == 5
    assert [p.name for p in temp_dir.iterdir()] == [root.name]  # no half-built leftovers
    monkeypatch.setattr(data.standins, "make_image_folder_standin", lambda *a, **k: pytest.fail("built twice"))
    assert data.load_dog_images(quick=True, seed=3)[0] == root


def test_load_dog_images_not_quick_raises_and_builds_nothing(temp_dir, capsys):
    with pytest.raises(data.DatasetNotFound, match="dogImages.zip"):
        data.load_dog_images()
    assert list(temp_dir.iterdir()) == []
    assert capsys.readouterr().out == ""


# ------------------------------------------------------------ sample photos


def test_load_sample_photos_defaults_to_scikit_learns_photos(capsys):
    photos, names, description = data.load_sample_photos()
    assert names == ["china.jpg", "flower.jpg"]
    assert [p.shape for p in photos] == [(427, 640, 3), (427, 640, 3)]
    assert all(p.dtype == np.uint8 for p in photos)
    assert description == "2 photos from scikit-learn: china.jpg, flower.jpg"
    assert capsys.readouterr().out.splitlines() == [f"Data: {description}"]


def test_load_sample_photos_reads_files_and_folders_as_rgb(tmp_path, capsys):
    import cv2

    folder = tmp_path / "photos"
    folder.mkdir()
    red = np.zeros((10, 14, 3), np.uint8)
    red[..., 0] = 255  # RGB red
    cv2.imwrite(str(folder / "b_red.png"), red[..., ::-1])
    cv2.imwrite(str(folder / "a_small.png"), np.full((6, 6, 3), 80, np.uint8))
    (folder / "readme.txt").write_text("not a photo")
    (folder / ".hidden.png").write_bytes(b"")
    single = tmp_path / "one.png"
    cv2.imwrite(str(single), np.full((5, 7, 3), 200, np.uint8))

    photos, names, description = data.load_sample_photos([folder, str(single)])
    assert names == ["a_small.png", "b_red.png", "one.png"]
    assert [p.shape for p in photos] == [(6, 6, 3), (10, 14, 3), (5, 7, 3)]
    assert photos[1][0, 0].tolist() == [255, 0, 0]
    assert description.startswith(f"3 photos from {folder}, {single}: a_small.png")
    assert capsys.readouterr().out == f"Data: {description}\n"
    photos, names, _ = data.load_sample_photos(single)  # one path, not in a list
    assert names == ["one.png"]


def test_load_sample_photos_errors_name_the_file(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(data.DataError, match="broken.jpg is not a readable image"):
        data.load_sample_photos([bad])
    with pytest.raises(data.DatasetNotFound, match="missing.jpg"):
        data.load_sample_photos(tmp_path / "missing.jpg")
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DataError, match="no image files"):
        data.load_sample_photos(tmp_path / "empty")
    with pytest.raises(data.DataError, match="empty list"):
        data.load_sample_photos([])


def test_quick_mode_reads_the_runners_variable_unless_told(monkeypatch):
    monkeypatch.delenv("CNN_COURSE_QUICK", raising=False)
    assert data.quick_mode() is False and data.quick_mode(True) is True
    monkeypatch.setenv("CNN_COURSE_QUICK", "1")
    assert data.quick_mode() is True and data.quick_mode(False) is False


def test_standin_note_speaks_only_for_stand_ins():
    assert data.standin_note("CIFAR-10 (real, 50000 train / 10000 test, from /data)") == ""
    assert data.standin_note(None) == ""
    note = data.standin_note("STAND-IN for CIFAR-10: generated 32x32 colour-and-stripe images, ...")
    assert note == " (STAND-IN data: this number says nothing about CIFAR-10)"
    assert "about MNIST)" in data.standin_note("STAND-IN for MNIST: scikit-learn digits resized to 28x28")
