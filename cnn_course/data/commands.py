"""``python -m cnn_course data fetch|status``: downloads through Keras (pinned hashes, checked before use)
and what is found where (cheap checks: nothing downloaded or decoded)."""

from __future__ import annotations

import functools
import os
import warnings
import zipfile
from pathlib import Path, PurePosixPath
from typing import Iterator

from . import backbones, formats, images, install, loaders, lookup
from . import catalog as c
from .catalog import CIFAR10_PICKLES, DATASETS, GET, SPLITS, TITLES, DataError, DatasetNotFound, one_line

DOWNLOADS = {  # name -> (file, URL, hash)
    "mnist": (c.MNIST_FILE, c.MNIST_URL, c.MNIST_SHA256),
    "cifar10": (c.CIFAR10_FILE, c.CIFAR10_URL, c.CIFAR10_SHA256),
    "dogs": (c.DOGS_FILE, c.DOGS_URL, c.DOGS_SHA256),
}


def _offline(what: str) -> DatasetNotFound:
    """The DatasetNotFound of a download that CNN_COURSE_OFFLINE forbids."""
    return DatasetNotFound(
        f"Not downloading {what}: CNN_COURSE_OFFLINE={os.environ.get('CNN_COURSE_OFFLINE')} is set. Get the "
        f"files by other means and put them in {lookup.data_dirs()[0]}, or unset CNN_COURSE_OFFLINE."
    )


def fetch(name: str) -> Path:
    """Download dataset ``name`` (official URL, pinned hash) into the Keras cache, check it, return the file or
    folder ("weights": MobileNetV2 0.35 with and without its top, and the ImageNet class names). Raises
    DatasetNotFound (offline, download failed), DataError (corrupt download), ValueError (unknown name)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if lookup.offline():
        raise _offline(TITLES[name])
    path = install.get_file(*DOWNLOADS[name]) if name in DOWNLOADS else None
    if name == "mnist":
        formats.read_mnist_npz(path)  # checked
        return path
    if name == "cifar10":
        batches = formats.cifar_batches(path, "pickles-tar")
        formats.cifar_from_batches(batches, path)  # checked before anything is written
        return install.write_files(batches, path.parent / "cifar-10-batches-py")
    if name == "dogs":
        return loaders.find_dog_images(path)
    backbone, alpha = c.LESSON_BACKBONE, c.LESSON_ALPHA
    for top in (False, True):
        fname = backbones.weights_file_name(backbone, top, alpha)
        path = install.get_file(fname, backbones.BASE_URLS[backbone] + fname, None, "models")
        backbones.check_h5(path)
    index = install.get_file(backbones.CLASS_INDEX_FILE, c.CLASS_INDEX_URL, c.CLASS_INDEX_MD5, "models")
    backbones.read_class_index(index)
    return path.parent


def fetch_all() -> Iterator[tuple[str, object]]:
    """fetch() each of DATASETS in turn, yielding (name, path or the error); DatasetNotFound at once offline."""
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
    """Check a found dataset without decoding images (headers, pickles, layout, member names); DataError."""
    if kind == "npz":
        formats.check_mnist_npz(source)
    elif kind == "pickles":
        formats.read_cifar(source, kind)
    elif kind in ("pickles-tar", "tree-tar", "tar"):
        _check_tarball(name, kind, source)
    elif kind == "tree":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            (images.load_image_folder if name == "cifar10" else loaders.check_dog_tree)(source)
    elif kind == "zip":
        with zipfile.ZipFile(source) as z:  # the directory only: what unpacking would refuse at once
            for info in z.infolist():
                install.check_member(source, info, c.MAX_DOGS_ZIP_BYTES, "the dog images")


def dataset_status() -> list[dict]:
    """A dict per dataset, checked cheaply (nothing downloaded or decoded): name, status (found, missing, broken),
    found, where, how (to get it; "broken: REASON; ..." when broken). SettingError for a bad CNN_COURSE_DATA."""
    rows = []
    for name in DATASETS:
        how = f"get {GET[name]} into {lookup.data_dirs()[0]}, or run `python -m cnn_course data fetch {name}`"
        row, path = {"name": name, "where": None}, None
        try:
            if name == "weights":
                paths, check = backbones.found_weights(), backbones.check_h5
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    kind, source, _ = lookup.find(name)
                paths, check = [source] if source else [], functools.partial(_check_cheaply, name, kind)
            row["where"] = ", ".join(map(str, paths)) or None
            for path in paths:
                check(path)
        except (DataError, OSError, zipfile.BadZipFile) as e:
            reason = one_line(e) if isinstance(e, DataError) or not path else f"{path}: not readable ({one_line(e)})"
            row.update(status="broken", how=f"broken: {reason}; {how}")
        else:
            row.update(status="found" if paths else "missing", how="" if paths else how)
        rows.append(dict(row, found=row["status"] == "found"))
    return rows
