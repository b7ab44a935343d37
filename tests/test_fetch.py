"""`python -m cnn_course data fetch`: every dataset's download, through a fake
``keras.utils.get_file`` that checks its arguments as Keras 3 documents them.

The fake refuses what Keras's own get_file would refuse (no origin, a path as
fname) with Keras's ValueError, and stops the test (with an exception no
``except Exception`` can hide) when the course passes something it should not:
an origin that is not an https URL of the catalogue, a fname other than the
file the URL names, a hash other than the one pinned in the catalogue, an
extract/untar request (the course checks archives itself), a cache folder
other than the Keras home. It then "downloads" by copying a small fixture.
"""

import json
import os
import posixpath
import re
import shutil
import urllib.parse
import zipfile

import pytest

from cnn_course import __main__ as cli
from cnn_course import data
from cnn_course.data import backbones, commands, install
from cnn_course.data.catalog import CLASS_INDEX_MD5, CLASS_INDEX_URL, LESSON_ALPHA, TITLES
from test_data import hermetic, install_fake_keras, tar_folder, write_mnist, write_pickles, write_vgg_h5  # noqa: F401
from test_data_backbones import mobilenet_h5

# The hash the catalogue pins for each URL (None: none is published).
PINNED = {
    data.MNIST_URL: data.MNIST_SHA256,
    data.CIFAR10_URL: data.CIFAR10_SHA256,
    data.DOGS_URL: data.DOGS_SHA256,
    # The lessons' default backbone: Keras pins no hash for these weights, only for the class names
    **{
        backbones.BASE_URLS["MobileNetV2"] + backbones.weights_file_name("MobileNetV2", top, LESSON_ALPHA): None
        for top in (False, True)
    },
    CLASS_INDEX_URL: CLASS_INDEX_MD5,
}
MOBILENET_FILES = {backbones.weights_file_name("MobileNetV2", top, LESSON_ALPHA) for top in (False, True)}
FETCHED = list(data.DATASETS)  # every dataset of the catalogue has a URL


class BadGetFileCall(BaseException):
    """The course called get_file with arguments it should not pass."""


def _demand(condition, what):
    if not condition:
        raise BadGetFileCall(what)


def fixtures(folder):
    """Small stand-ins for each downloadable file, by the name Keras saves it as."""
    tree = data.make_image_folder_standin(
        folder / "dogs" / "dogImages", n_classes=2, per_split={"train": 1, "valid": 1, "test": 1}, size=(8, 8)
    )
    dogs_zip = folder / "dogImages.zip"
    with zipfile.ZipFile(dogs_zip, "w") as z:
        for path in sorted(tree.rglob("*")):
            z.write(path, str(path.relative_to(tree.parent)))
    return {
        data.MNIST_FILE: write_mnist(folder / "mnist.npz", 15),
        data.CIFAR10_FILE: tar_folder(
            folder / "cifar.tar.gz", write_pickles(folder / "cifar-10-batches-py", 20), "cifar-10-batches-py"
        ),
        data.DOGS_FILE: dogs_zip,
        **{
            backbones.weights_file_name("MobileNetV2", top, LESSON_ALPHA): mobilenet_h5(
                folder / backbones.weights_file_name("MobileNetV2", top, LESSON_ALPHA), top=top
            )
            for top in (False, True)
        },
        "imagenet_class_index.json": class_index(folder / "imagenet_class_index.json"),
    }


def class_index(path):
    path.write_text(json.dumps({str(i): [f"n{i:08d}", f"name_{i}"] for i in range(1000)}))
    return path


def strict_get_file(files, calls):
    """A fake keras.utils.get_file with Keras 3's signature and checks."""

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
        # What Keras 3.15's get_file itself refuses, with its errors:
        if origin is None:
            raise ValueError('Please specify the "origin" argument (URL of the file to download).')
        if fname and os.sep in str(fname):
            raise ValueError(f"Paths are no longer accepted as the `fname` argument. Received: fname={fname}")
        # What the course must pass:
        url = urllib.parse.urlsplit(str(origin))
        _demand(url.scheme == "https" and url.netloc, f"origin is not an https URL: {origin!r}")
        _demand(origin in PINNED, f"origin is not a URL of the catalogue: {origin!r}")
        _demand(fname == posixpath.basename(url.path), f"fname {fname!r} is not the file {origin} names")
        _demand(file_hash == PINNED[origin], f"file_hash {file_hash!r} is not the pinned {PINNED[origin]!r}")
        _demand(
            file_hash is None or re.fullmatch(r"[0-9a-f]{32}|[0-9a-f]{64}", file_hash),
            f"file_hash {file_hash!r} is neither an md5 nor a sha256",
        )
        _demand(hash_algorithm in ("auto", "md5", "sha256") and md5_hash is None, "hash_algorithm/md5_hash")
        _demand(not (extract or untar), "the course unpacks and checks archives itself")
        _demand(
            isinstance(cache_subdir, str) and cache_subdir in ("datasets", "models"), f"cache_subdir {cache_subdir!r}"
        )
        _demand(cache_dir == str(data.keras_home()), f"cache_dir {cache_dir!r} is not the Keras home")
        calls.append(fname)
        target = data.keras_home() / cache_subdir / fname
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(files[fname], target)
        return str(target)

    return get_file


@pytest.fixture
def online(tmp_path, monkeypatch):
    """Downloads allowed, through the strict fake; returns the list of fnames fetched."""
    monkeypatch.delenv("CNN_COURSE_OFFLINE")
    calls = []
    install_fake_keras(monkeypatch, strict_get_file(fixtures(tmp_path / "fixtures"), calls))
    return calls


def test_the_fake_refuses_what_keras_refuses(tmp_path):
    get_file = strict_get_file({}, [])
    with pytest.raises(ValueError, match="origin"):
        get_file(fname="dogImages.zip", origin=None)
    with pytest.raises(ValueError, match="Paths are no longer accepted"):
        get_file(fname="a/mnist.npz", origin=data.MNIST_URL)
    with pytest.raises(BadGetFileCall):  # the bug of issue 26: the URL and the hash swapped
        get_file(fname=data.DOGS_FILE, origin=data.DOGS_URL, file_hash=data.DOGS_URL)


@pytest.mark.parametrize("name", FETCHED)
def test_fetch_passes_keras_what_it_documents(online, name):
    path = data.fetch(name)
    assert path.exists()
    assert online  # at least one download went through the fake


def test_fetch_weights_gets_the_lessons_default_backbone_and_class_names(online, capsys):
    folder = data.fetch("weights")
    assert set(online) == MOBILENET_FILES | {"imagenet_class_index.json"}
    assert folder == data.keras_home() / "models"
    weights, description = data.backbone_weights("MobileNetV2", LESSON_ALPHA, include_top=True)
    assert weights == str(folder / backbones.weights_file_name("MobileNetV2", True, LESSON_ALPHA))


def test_fetch_refuses_weights_that_are_not_hdf5(online, tmp_path, monkeypatch):
    fake = install.get_file

    def proxy_page_instead(fname, url, file_hash, subdir="datasets"):
        path = fake(fname, url, file_hash, subdir)
        if fname in MOBILENET_FILES:
            path.write_bytes(b"<html>a proxy's error page</html>")
        return path

    monkeypatch.setattr(install, "get_file", proxy_page_instead)
    with pytest.raises(data.DataError, match="not an HDF5 file"):
        data.fetch("weights")


def test_fetch_dogs_downloads_the_zip_and_unpacks_it(online):
    root = data.fetch("dogs")
    assert online == [data.DOGS_FILE]
    assert sorted(p.name for p in root.iterdir()) == ["test", "train", "valid"]


# ---------------------------------------------------------------- the CLI


@pytest.mark.parametrize("name", FETCHED)
def test_cli_fetch_runs_the_real_download(online, capsys, name):
    assert cli.main(["data", "fetch", name]) == 0
    captured = capsys.readouterr()
    assert "error" not in captured.err and "Traceback" not in captured.err  # progress notes only
    assert captured.out.startswith(f"{name}: ") and len(captured.out.splitlines()) == 1


@pytest.mark.parametrize("argv", [["data", "fetch"], ["data", "fetch", "all"]])
def test_cli_fetch_all_fetches_each_dataset_in_turn(online, capsys, argv):
    assert cli.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == list(data.DATASETS)
    assert set(online) == {
        data.MNIST_FILE,
        data.CIFAR10_FILE,
        data.DOGS_FILE,
        *MOBILENET_FILES,
        "imagenet_class_index.json",
    }


def test_cli_fetch_all_goes_on_after_a_failure(online, monkeypatch, capsys):
    real = commands.fetch

    def failing_cifar(name):
        if name == "cifar10":
            raise data.DatasetNotFound("Could not download cifar-10-python.tar.gz: no network")
        return real(name)

    monkeypatch.setattr(commands, "fetch", failing_cifar)
    assert cli.main(["data", "fetch"]) == 1
    captured = capsys.readouterr()
    assert [line.split(":")[0] for line in captured.out.splitlines()] == ["mnist", "dogs", "weights"]
    errors = [line for line in captured.err.splitlines() if line.startswith("error")]
    assert errors == ["error: cifar10: Could not download cifar-10-python.tar.gz: no network"]


@pytest.mark.parametrize("argv", [["data", "fetch"], ["data", "fetch", "all"], ["data", "fetch", "dogs"]])
def test_cli_fetch_offline_is_one_line_and_downloads_nothing(capsys, argv, monkeypatch):
    calls = []
    install_fake_keras(monkeypatch, lambda **kw: calls.append(kw))
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Not downloading") and "CNN_COURSE_OFFLINE=1" in err
    assert len(err.strip().splitlines()) == 1 and calls == []


def test_cli_fetch_with_a_bad_offline_value_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.setenv("CNN_COURSE_OFFLINE", "maybe")
    assert cli.main(["data", "fetch"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: CNN_COURSE_OFFLINE=") and len(err.strip().splitlines()) == 1


def test_cli_fetch_unknown_name_is_a_usage_error(online, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["data", "fetch", "imagenet"])
    assert exit_.value.code == 2
    assert "valid names: mnist, cifar10, dogs" in capsys.readouterr().err
    assert online == []


# A full (not quick) lesson run where a dataset is on no local place: as in a plain
# Keras script, Keras downloads it (issue 21: a fresh Colab runtime has none).


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_a_full_lesson_downloads_its_dataset_through_keras(online, name, capsys):
    (x_train, _), (x_test, _) = data.load_lesson_data(name, quick=False)[0]
    assert online == [{"mnist": data.MNIST_FILE, "cifar10": data.CIFAR10_FILE}[name]]
    out = capsys.readouterr().out
    assert out.startswith(f"Data: {TITLES[name]} (real, {len(x_train)} train / {len(x_test)} test")
    assert "downloaded" in out and "STAND-IN" not in out


def test_a_full_lesson_downloads_the_dog_images_through_keras(online, capsys):
    root, description = data.load_dog_images(quick=False)
    assert online == [data.DOGS_FILE]
    assert sorted(p.name for p in root.iterdir()) == ["test", "train", "valid"]
    assert description.startswith("Dog-breed images (real, ")
    assert capsys.readouterr().out == f"Data: {description}\n"
    assert data.load_dog_images(quick=False)[0] == root and online == [data.DOGS_FILE]  # found, not fetched again


def test_offline_a_full_lesson_without_dog_images_says_nothing_was_downloaded(capsys):
    with pytest.raises(data.DatasetNotFound, match="dogImages.zip") as caught:
        data.load_dog_images(quick=False)
    assert str(caught.value).splitlines()[-1] == "Nothing was downloaded because CNN_COURSE_OFFLINE=1."
    assert capsys.readouterr().out == ""


def test_a_failed_dog_images_download_says_where_to_get_them(monkeypatch):
    monkeypatch.delenv("CNN_COURSE_OFFLINE")

    def no_network(fname=None, origin=None, **kwargs):
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -3] Temporary failure in name resolution")

    install_fake_keras(monkeypatch, no_network)
    with pytest.raises(data.DatasetNotFound) as caught:
        data.load_dog_images(quick=False)
    text = str(caught.value)
    assert "dogImages.zip" in text and data.DOGS_URL in text
    assert text.splitlines()[-1].startswith("The download failed: Could not download dogImages.zip")
