"""``python -m cnn_course data fetch|status``: downloads through Keras (pinned hashes, checked before use)
and what is found where (cheap checks: nothing downloaded or decoded)."""

from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path, PurePosixPath
from typing import Iterator

from . import backbones, formats, image_folders, install, loaders, lookup
from . import catalog as c
from .catalog import CIFAR10_PICKLES, DATASETS, GET, SPLITS, TITLES
from .errors import DataError, DatasetNotFound, one_line

DOWNLOADS = {  # name -> (file, URL, hash)
    "mnist": (c.MNIST_FILE, c.MNIST_URL, c.MNIST_SHA256),
    "cifar10": (c.CIFAR10_FILE, c.CIFAR10_URL, c.CIFAR10_SHA256),
    "dogs": (c.DOGS_FILE, c.DOGS_URL, c.DOGS_SHA256),
}


def _offline(what: str) -> DatasetNotFound:
    return DatasetNotFound(
        f"Not downloading {what}: CNN_COURSE_OFFLINE={os.environ.get('CNN_COURSE_OFFLINE')} is set. Get the "
        f"files by other means and put them in {lookup.data_dirs()[0]}, or unset CNN_COURSE_OFFLINE."
    )


def fetch(name: str) -> Path:
    """Download dataset ``name`` into the Keras cache from its official URL with its hash, check it, and
    return the local file or folder ("weights": the lessons' default backbone, MobileNetV2 0.35, with
    and without the top, and the ImageNet class names). Raises DatasetNotFound offline or when the
    download fails, DataError for a corrupt download, ValueError for a name that cannot be fetched."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if lookup.offline():
        raise _offline(TITLES[name])
    if name in DOWNLOADS:
        path = install.get_file(*DOWNLOADS[name])
    if name == "mnist":
        formats.read_mnist_npz(path)
        return path
    if name == "cifar10":
        batches = formats.cifar_pickles_in_tar(path)
        formats.cifar_from_batches(batches, path)  # checked before anything is written
        return install.write_files(batches, path.parent / "cifar-10-batches-py")
    if name == "dogs":
        return loaders.find_dog_images(path)
    for top in (False, True):
        fname = backbones.weights_file_name(c.LESSON_BACKBONE, top, c.LESSON_ALPHA)
        path = install.get_file(fname, backbones.BASE_URLS[c.LESSON_BACKBONE] + fname, None, "models")
        if backbones.identify_weights_file(path) != (c.LESSON_BACKBONE, top, c.LESSON_ALPHA):
            raise DataError(
                f"{path}: not the {backbones.describe(c.LESSON_BACKBONE, c.LESSON_ALPHA)} weights it is named for"
            )
    index = install.get_file(backbones.CLASS_INDEX_FILE, c.CLASS_INDEX_URL, c.CLASS_INDEX_MD5, "models")
    backbones.read_class_index(index)
    return path.parent


def fetch_all() -> Iterator[tuple[str, object]]:
    """fetch() each of DATASETS in turn, yielding (name, path) or (name, the error) and going on.
    Raises DatasetNotFound before downloading anything when CNN_COURSE_OFFLINE is set."""
    if lookup.offline():
        raise _offline(", ".join(DATASETS))
    for name in DATASETS:
        try:
            yield name, fetch(name)
        except (DataError, DatasetNotFound, OSError) as e:
            yield name, e


def _check_tarball(name: str, kind: str, source) -> None:
    """Check a tarball by its member names (CIFAR-10's pickles, or an image tree's splits)."""
    pickles = kind == "pickles-tar"
    needed = set(CIFAR10_PICKLES) if pickles else {"train", "test"} if name == "cifar10" else set(SPLITS)
    seen = set()
    for member, _ in install.read_tar(source, lambda m: False, 0, "a member"):
        path = PurePosixPath(member.name)
        seen |= needed.intersection((path.name,) if pickles else path.parts[:-1])
        if seen == needed:
            return
    what = "CIFAR-10's pickles" if pickles else f"the image folders {', '.join(s + '/' for s in sorted(needed))}"
    raise DataError(f"{source}: not {what}: no {', '.join(sorted(needed - seen))} among its members")


def _check_cheaply(name: str, kind: str, source) -> None:
    """Check a found dataset without decoding images: npz headers, the pickles through the loader's
    restricted unpickler, a tree's layout, a zip's directory, a tarball's member names; DataError."""
    if kind == "npz":
        formats.check_mnist_npz(source)
    elif kind == "pickles":
        formats.read_cifar(source, kind)
    elif kind in ("pickles-tar", "tree-tar", "tar"):
        _check_tarball(name, kind, source)
    elif kind == "tree":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            (image_folders.load_image_folder if name == "cifar10" else loaders.check_dog_tree)(source)
    elif kind == "zip":
        with zipfile.ZipFile(source) as z:  # the directory only: what unpacking would refuse at once
            for info in z.infolist():
                install.check_zip_member(source, info, c.MAX_DOGS_ZIP_BYTES, "the dog images")


def _status_of(name: str) -> tuple[str, str | None, str]:
    """(status, where, how) of dataset ``name``."""
    how = f"get {GET[name]} into {lookup.data_dirs()[0]}, or run `python -m cnn_course data fetch {name}`"
    try:
        if name == "weights":
            paths, check = backbones.found_weights(), backbones.check_h5
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kind, source, _ = lookup.find(name)
            paths, check = [source] if source else [], lambda p: _check_cheaply(name, kind, p)
    except (DataError, OSError) as e:
        return "broken", None, f"broken: {one_line(e)}; {how}"
    if not paths:
        return "missing", None, how
    for path in paths:
        try:
            check(path)
        except (DataError, OSError, zipfile.BadZipFile) as e:
            reason = one_line(e) if isinstance(e, DataError) else f"{path}: not readable ({one_line(e)})"
            return "broken", ", ".join(map(str, paths)), f"broken: {reason}; {how}"
    return "found", ", ".join(map(str, paths)), ""


def dataset_status() -> list[dict]:
    """For each of DATASETS, whether it is there and usable, nothing downloaded or decoded: dicts
    {"name", "status" ("found", "missing", "broken"), "found", "where", "how"} ("how": how to get it,
    "broken: REASON; ..." for a broken one). Raises SettingError for a bad CNN_COURSE_DATA."""
    rows = []
    for name in DATASETS:
        status, where, how = _status_of(name)
        rows.append({"name": name, "status": status, "found": status == "found", "where": where, "how": how})
    return rows
