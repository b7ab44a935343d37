"""Downloads through Keras (``python -m cnn_course data fetch NAME``), each
checked against its pinned hash and read once before it is used."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from .catalog import (CIFAR10_FILE, CIFAR10_SHA256, CIFAR10_URL, DATASETS, DOGS_FILE, DOGS_SHA256,
                      DOGS_URL, GET, MNIST_FILE, MNIST_SHA256, MNIST_URL, TITLES, VGG16_FILES, VGG16_URL)
from .errors import DataError, DatasetNotFound, one_line
from .lookup import keras_home, offline
from . import backbones, dogs, formats, install


# What `data fetch` with no name (or `all`) downloads: every dataset the
# lessons use that has an official URL (weights and dog-features have none).
FETCHABLE = ("mnist", "cifar10", "dogs", "vgg16")


def get_file(fname: str, url: str, file_hash: str | None, *, subdir: str = "datasets",
             name: str = "NAME") -> Path:
    """Download ``url`` into the Keras cache with Keras's progress bar (or
    reuse a copy there whose hash matches), saving it as ``fname`` under
    ``subdir``; ``file_hash`` is its sha256 or md5, or None where none is
    published. Returns the local path. Raises DatasetNotFound for a network
    failure, DataError for a bad download."""
    import keras

    try:
        return Path(keras.utils.get_file(fname=fname, origin=url, file_hash=file_hash,
                                         cache_dir=str(keras_home()), cache_subdir=subdir))
    except ValueError as e:
        raise DataError(f"the download of {url} is corrupt or incomplete ({one_line(e)})") from None
    except Exception as e:  # Keras wraps HTTPError/URLError in a plain Exception
        raise DatasetNotFound(f"Could not download {fname} from {url}: {one_line(e)}. Check the network, "
                              f"or get the file by other means and run "
                              f"`python -m cnn_course data import {name} PATH`.") from None


def _offline_refusal(name: str | None = None) -> DatasetNotFound:
    """The error fetch raises when downloads are switched off, for dataset
    ``name`` or (None) for every one of FETCHABLE."""
    setting = f"CNN_COURSE_OFFLINE={os.environ.get('CNN_COURSE_OFFLINE')} is set"
    if name is None:
        return DatasetNotFound(
            f"Not downloading {', '.join(FETCHABLE)}: {setting}. Get the files by other means and run "
            "`python -m cnn_course data import NAME PATH` for each, or unset CNN_COURSE_OFFLINE.")
    return DatasetNotFound(
        f"Not downloading {TITLES[name]}: {setting}. Get {GET[name]} by other means and run "
        f"`python -m cnn_course data import {name} PATH`, or unset CNN_COURSE_OFFLINE.")


def _unpack_cifar_pickles(tarball: Path, dest: Path) -> Path:
    """Check the CIFAR-10 pickles in ``tarball`` and write them into the
    folder ``dest``. Returns dest; raises DataError."""
    batches = formats.cifar_pickles_in_tar(tarball)
    formats.cifar_from_batches(batches, tarball)  # check before writing anything
    return install.write_files(batches, dest)


def fetch(name: str) -> Path:
    """Download dataset ``name`` (one of DATASETS) into the Keras cache with
    Keras's progress bar, from the official URL with its hash, and check it.

    Returns the local file or folder: mnist.npz; the cifar-10-batches-py
    folder; the dogImages folder; the Keras models folder holding both VGG16
    weight install. Raises DatasetNotFound when CNN_COURSE_OFFLINE=1 or the
    download fails (one clear sentence), DataError when what arrived is
    corrupt, ValueError for an unknown name."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if name in ("weights", "dog-features"):
        raise ValueError(f"{name} cannot be fetched: " + (
            "Keras downloads a backbone's weights the first time a lesson builds it (where a network "
            "is available); `data import weights FILE` brings in a copy" if name == "weights" else
            "the original course's features are not online; `data import dog-features FILE` brings "
            "in a copy"))
    if offline():
        raise _offline_refusal(name)
    if name == "mnist":
        path = get_file(MNIST_FILE, MNIST_URL, MNIST_SHA256, name="mnist")
        formats.read_mnist_npz(path)
        return path
    if name == "cifar10":
        tarball = get_file(CIFAR10_FILE, CIFAR10_URL, CIFAR10_SHA256, name="cifar10")
        return _unpack_cifar_pickles(tarball, tarball.parent / "cifar-10-batches-py")
    if name == "dogs":
        return dogs.find_dog_images(get_file(DOGS_FILE, DOGS_URL, DOGS_SHA256, name="dogs"))
    for include_top in (False, True):
        fname, md5 = VGG16_FILES[include_top]
        path = get_file(fname, VGG16_URL + fname, md5, subdir="models", name="vgg16")
        backbones.check_vgg16_h5(path)
    return path.parent



def fetch_all() -> Iterator[tuple[str, Path | Exception]]:
    """Download every dataset of FETCHABLE in turn (see fetch), going on to
    the next when one fails.

    Yields (name, local path) for a success and (name, the DataError,
    DatasetNotFound or OSError) for a failure. Raises DatasetNotFound, before
    downloading anything, when CNN_COURSE_OFFLINE=1; SettingError for a bad
    CNN_COURSE_* value."""
    if offline():
        raise _offline_refusal()
    for name in FETCHABLE:
        try:
            yield name, fetch(name)
        except (DataError, DatasetNotFound, OSError) as e:
            yield name, e
