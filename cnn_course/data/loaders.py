"""The loaders the lessons call (MNIST, CIFAR-10, the dog-breed images): find, read, check, download
where allowed, and print one ``Data:`` line (a labelled stand-in only in quick mode)."""

from __future__ import annotations

import os
import re
import sys
import tempfile
import warnings
from pathlib import Path

from . import formats, images, install, lookup, standins
from .catalog import MAX_DOGS_ZIP_BYTES, MAX_PHOTO_BYTES, SPLITS, TITLES, DataError, DatasetNotFound


def _download(name: str, missing_note) -> Path:
    """Fetch ``name`` through Keras; DatasetNotFound (built by ``missing_note(line)``) offline or on failure."""
    from .commands import fetch  # commands imports this module

    if lookup.offline():
        raise missing_note(f"Nothing was downloaded because CNN_COURSE_OFFLINE={os.environ['CNN_COURSE_OFFLINE']}.")
    try:
        return fetch(name)
    except DatasetNotFound as e:
        raise missing_note(f"The download failed: {e}") from None


def load_named(name: str, path=None, download: bool = True):
    """Find, load and check MNIST or CIFAR-10; returns ((train, test), source, note)."""
    kind, source, looked = lookup.find(name, path)
    note = ""
    if kind is None:
        if not download:
            raise lookup.not_found(name, looked, "No download was tried.")
        source = _download(name, lambda line: lookup.not_found(name, looked, line))
        kind, note = ("npz" if name == "mnist" else "pickles"), "downloaded"
    if kind == "npz":
        return formats.read_mnist_npz(source), source, note
    if kind in ("pickles", "pickles-tar"):
        return formats.read_cifar(source, kind), source, note
    train, test, note = images.load_cifar_tree(source, kind)
    return (train, test), source, note


def load_mnist(path=None, download=True):
    """MNIST as ((x_train, y_train), (x_test, y_test)), uint8, found or downloaded; DatasetNotFound, DataError."""
    return load_named("mnist", path, download)[0]


def load_cifar10(path=None, download=True):
    """CIFAR-10 as load_mnist, from its pickles (folder, tarball) or a JPEG tree; DatasetNotFound, DataError."""
    return load_named("cifar10", path, download)[0]


def load_lesson_data(name, path=None, quick=None):
    """Load "mnist" or "cifar10" for a lesson, printing one ``Data:`` line (found nowhere: a labelled stand-in when
    quick, else downloaded unless offline). Returns ((train, test), description); DatasetNotFound, DataError."""
    if name not in ("mnist", "cifar10"):
        raise ValueError(f"unknown lesson dataset {name!r}; choose mnist or cifar10")
    quick, title = lookup.quick_mode(quick), TITLES[name]
    try:
        data, source, note = load_named(name, path, download=not quick)
    except DatasetNotFound:
        if not quick:
            raise
        # CIFAR-10: 7,000, as the lessons hold out the first 5,000 for validation and still train on 2,000
        data = standins.load_digits28() if name == "mnist" else standins.make_cifar10_standin(7000, 1000)
        source = None
    counts = f"{len(data[0][0])} train / {len(data[1][0])} test"
    if source is None:
        what = "scikit-learn digits resized to 28x28" if name == "mnist" else "generated 32x32 colour-and-stripe images"
        what += "" if name == "mnist" else ", one colour per class"
        get = f"`python -m cnn_course data fetch {name}` gets it"
        description = f"STAND-IN for {title}: {what}, {counts} (real {title} not found; {get})"
    else:
        description = f"{title} (real, {counts}, from {source}{f'; {note}' if note else ''})"
    print(f"Data: {description}")
    return data, description


def standin_note(description):
    """What to print after an accuracy on the data ``description`` names: "" for real data, else
    " (STAND-IN data: this number says nothing about <dataset>)"."""
    text = str(description or "")
    if not text.startswith("STAND-IN"):
        return ""
    title = text.split(":", 1)[0].replace("STAND-IN for ", "").strip() or "the real data"
    return f" (STAND-IN data: this number says nothing about {title})"


# ---------------------------------------------------------------- the dog-breed images


def check_dog_tree(root: Path, decode: bool = False) -> dict:
    """Check a dogImages tree (the same breeds in train/valid/test, none empty, no links out) and, with ``decode``,
    every image within the photo limits. Returns its unshuffled listing (load_image_folder); raises DataError."""
    missing = [s for s in SPLITS if not (root / s).is_dir()]
    if missing:
        raise DataError(f"{root}: no {', '.join(s + '/' for s in missing)} folder (expected train/, valid/, test/)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        listing = images.load_image_folder(root, shuffle=False)
    paths = [p for split in listing.values() for p in split["paths"]] if decode else []
    bad = [b for _, b in images.decode_many(paths, paths, what="one dog photo")[1]]
    if bad:
        raise DataError(f"{root}: {len(bad)} of {len(paths)} images cannot be used: {images.a_few(bad)}")
    return listing


def _unpacked(archive: Path) -> Path:
    """The tree of a dogImages archive unpacked once, checked in a staging folder, into the first writable of the
    data folders, the Keras cache and the archive's folder (last: it may be shared). Raises DataError."""
    name = re.sub(r"\.(zip|tar\.gz|tgz|tar)$", "", archive.name)
    folders = [d for d in dict.fromkeys(lookup.data_dirs() + [lookup.keras_cache_dir()]) if d != archive.parent]
    folders.append(archive.parent)
    for d in folders:
        if (d / name / "train").is_dir():
            return d / name
    for dest in (d / name for d in folders if install.may_write(d)):
        try:
            with install.staging(dest.parent) as work:
                print(f"Unpacking {archive} into {dest} (once).", file=sys.stderr)
                root = install.unpack_tree(archive, work / "new", MAX_PHOTO_BYTES, MAX_DOGS_ZIP_BYTES, "one dog photo")
                try:
                    check_dog_tree(root, decode=True)
                except DataError as e:  # named as the user's archive, not the staging folder
                    raise DataError(str(e).replace(str(root), str(archive))) from None
                return install.install(root, dest, work)
        except OSError:
            continue
    raise DataError(f"could not unpack {archive}: none of {', '.join(map(str, folders))} is writable")


def find_dog_images(path=None) -> Path:
    """The dogImages root (train/valid/test/<NNN.Breed>/), a folder or an archive unpacked once, from ``path`` or
    the usual places; never downloads. DatasetNotFound names dogImages.zip and its URL; DataError."""
    kind, source, looked = lookup.find("dogs", path)
    if kind is None:
        raise lookup.not_found("dogs", looked)
    root = _unpacked(source) if kind in ("zip", "tar") else source
    check_dog_tree(root)
    return root


def _dog_standin_root(seed: int) -> Path:
    """The generated dogImages stand-in for ``seed``, built once in the temp folder under a temporary name."""
    target = Path(tempfile.gettempdir()) / f"cnn-course-dogimages-standin-{int(seed)}"
    if not (target / "test").is_dir():
        with install.staging(target.parent) as work:
            standins.make_image_folder_standin(work / "dogImages", seed=seed)
            try:
                os.rename(work / "dogImages", target)
            except OSError:  # another run built it at the same time: use theirs
                if not (target / "test").is_dir():
                    raise
    return target


def load_dog_images(path=None, quick=None, seed=0):
    """find_dog_images for a lesson, printing one ``Data:`` line; when missing, a quick run uses a stand-in tree, a
    full run downloads dogImages.zip unless offline. Returns (root, description); DatasetNotFound, DataError."""
    quick, real = lookup.quick_mode(quick), True
    try:
        root = find_dog_images(path)
    except DatasetNotFound as missing:
        if quick:
            root, real = _dog_standin_root(seed), False
        else:
            where = str(missing)
            root = _download("dogs", lambda line: DatasetNotFound(f"{where}\n{line}"))
    listing = check_dog_tree(root)
    counts = " / ".join(f"{len(listing[s]['paths'])} {s}" for s in SPLITS)
    n = len(listing["train"]["classes"])
    description = (
        f"Dog-breed images (real, {counts}, {n} breeds, from {root})"
        if real
        else f"STAND-IN for {TITLES['dogs']}: generated colour-and-stripe images, one colour per class, {n} classes, "
        f"{counts} (real dogImages not found; `python -m cnn_course data fetch dogs` gets it)"
    )
    print(f"Data: {description}")
    return root, description
