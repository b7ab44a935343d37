"""``python -m cnn_course data fetch|import|status``: downloads through Keras (pinned hashes, checked before
use), local copies brought into the data folder (checked in a staging folder, then put in place
atomically: a failed import keeps the old copy), and what is found where (cheap checks)."""

from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path, PurePosixPath
from typing import Iterator

from . import backbones, formats, image_folders, install, loaders, lookup
from .catalog import (
    CIFAR10_FILE,
    CIFAR10_PICKLES,
    CIFAR10_SHA256,
    CIFAR10_URL,
    CLASS_INDEX_MD5,
    CLASS_INDEX_URL,
    DATASETS,
    DOGS_FILE,
    DOGS_SHA256,
    DOGS_URL,
    GET,
    LESSON_ALPHA,
    LESSON_BACKBONE,
    MAX_DOGS_ZIP_BYTES,
    MNIST_FILE,
    MNIST_SHA256,
    MNIST_URL,
    SPLITS,
    TITLES,
    VGG16_FILES,
    VGG16_URL,
)
from .errors import DataError, DatasetNotFound, one_line

# What `data fetch` (or `fetch all`) downloads: what the lessons use by default; vgg16 only when named.
FETCHABLE = ("mnist", "cifar10", "dogs", "weights")


def get_file(fname: str, url: str, file_hash: str | None, name: str, subdir: str = "datasets") -> Path:
    """Download ``url`` as ``fname`` into the Keras cache with Keras's progress bar (or reuse a copy whose
    hash matches). Raises DatasetNotFound for a network failure, DataError for a bad download."""
    import keras

    try:
        return Path(
            keras.utils.get_file(
                fname=fname, origin=url, file_hash=file_hash, cache_dir=str(lookup.keras_home()), cache_subdir=subdir
            )
        )
    except ValueError as e:
        raise DataError(f"the download of {url} is corrupt or incomplete ({one_line(e)})") from None
    except Exception as e:  # Keras wraps HTTPError/URLError in a plain Exception
        raise DatasetNotFound(
            f"Could not download {fname} from {url}: {one_line(e)}. Check the network, or get the "
            f"file by other means and run `python -m cnn_course data import {name} PATH`."
        ) from None


def _get_weights(backbone: str, url: str, alpha=None, hashes=None) -> Path:
    """Download both weights files of ``backbone`` (without and with the top) and check their layers."""
    for top in (False, True):
        fname = backbones.weights_file_name(backbone, top, alpha or 1.0)
        path = get_file(fname, url + fname, (hashes or {}).get(top), "vgg16" if hashes else "weights", "models")
        if backbones.identify_weights_file(path) != (backbone, top, alpha):
            raise DataError(f"{path}: not the {backbones.describe(backbone, alpha)} weights it is named for")
    return path.parent


def _offline(what: str, how: str) -> DatasetNotFound:
    return DatasetNotFound(
        f"Not downloading {what}: CNN_COURSE_OFFLINE={os.environ.get('CNN_COURSE_OFFLINE')} is set. "
        f"Get {how}, or unset CNN_COURSE_OFFLINE."
    )


def fetch(name: str) -> Path:
    """Download dataset ``name`` into the Keras cache from its official URL with its hash, check it, and
    return the local file or folder ("weights": the lessons' default backbone, MobileNetV2 0.35, with
    and without the top, and the ImageNet class names). Raises DatasetNotFound offline or when the
    download fails, DataError for a corrupt download, ValueError for a name that cannot be fetched."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if lookup.offline():
        raise _offline(
            TITLES[name], f"{GET[name]} by other means and run `python -m cnn_course data import {name} PATH`"
        )
    if name == "mnist":
        path = get_file(MNIST_FILE, MNIST_URL, MNIST_SHA256, name)
        formats.read_mnist_npz(path)
        return path
    if name == "cifar10":
        tarball = get_file(CIFAR10_FILE, CIFAR10_URL, CIFAR10_SHA256, name)
        batches = formats.cifar_pickles_in_tar(tarball)
        formats.cifar_from_batches(batches, tarball)  # checked before anything is written
        return install.write_files(batches, tarball.parent / "cifar-10-batches-py")
    if name == "dogs":
        return loaders.find_dog_images(get_file(DOGS_FILE, DOGS_URL, DOGS_SHA256, name))
    if name == "vgg16":
        return _get_weights("VGG16", VGG16_URL, hashes={top: md5 for top, (_, md5) in VGG16_FILES.items()})
    folder = _get_weights(LESSON_BACKBONE, backbones.BASE_URLS[LESSON_BACKBONE], LESSON_ALPHA)
    backbones.read_class_index(get_file(backbones.CLASS_INDEX_FILE, CLASS_INDEX_URL, CLASS_INDEX_MD5, name, "models"))
    return folder


def fetch_all() -> Iterator[tuple[str, Path | Exception]]:
    """fetch() each of FETCHABLE in turn, yielding (name, path) or (name, the error) and going on.
    Raises DatasetNotFound before downloading anything when CNN_COURSE_OFFLINE is set."""
    if lookup.offline():
        raise _offline(
            ", ".join(FETCHABLE),
            "the files by other means and run `python -m cnn_course data import NAME PATH` for each",
        )
    for name in FETCHABLE:
        try:
            yield name, fetch(name)
        except (DataError, DatasetNotFound, OSError) as e:
            yield name, e


# ---------------------------------------------------------------- data import


def _import_mnist(src: Path, dest_dir: Path) -> Path:
    if src.is_dir():
        if not (src / MNIST_FILE).is_file():
            raise DataError(f"{src}: no {MNIST_FILE} in this folder")
        src = src / MNIST_FILE
    formats.check_mnist_npz(src)  # fails early, before copying anything
    dest = dest_dir / MNIST_FILE
    install.check_not_shadowed(dest, lookup.candidates("mnist"))
    if install.same_or_nested(src, dest):
        formats.read_mnist_npz(dest)
        return dest
    return install.install_copy(src, dest, formats.read_mnist_npz)


def _import_cifar10(src: Path, dest_dir: Path) -> Path:
    kind = lookup.detect("cifar10", src)
    if kind is None and src.is_dir() and (src / "cifar-10-batches-py").is_dir():
        src, kind = src / "cifar-10-batches-py", "pickles"
    if kind is None:
        raise DataError(f"{src} is not CIFAR-10 data: expected {GET['cifar10']}")
    dest = dest_dir / {"tree": "cifar10-jpeg", "tree-tar": "cifar10-jpeg.tar.gz"}.get(kind, "cifar-10-batches-py")
    install.check_not_shadowed(dest, lookup.candidates("cifar10"))
    same = install.same_or_nested(src, dest)  # also refuses a source inside dest
    if kind in ("pickles", "pickles-tar"):
        batches = formats.cifar_pickles_in_tar(src) if kind == "pickles-tar" else formats.pickles_in_folder(src)
        formats.cifar_from_batches(batches, src)
        return dest if same else install.write_files(batches, dest)
    if same:
        image_folders.load_cifar_tree(dest, kind)  # checks it, and leaves the decode cache
        return dest
    with install.staging(dest_dir) as work:
        new = (install.copy_tree if kind == "tree" else install.copy_file)(src, work / dest.name)
        with install.named_as(new, src):
            train, test, bad = image_folders.decode_cifar_tree(new, kind)  # the check
        install.install(new, dest, work)
    image_folders.write_cache(dest, train, test, [b.replace(str(new), str(dest), 1) for b in bad])
    return dest


def _import_dogs(src: Path, dest_dir: Path) -> Path:
    kind = lookup.detect("dogs", src)
    if kind is None and (src / "dogImages").is_dir():
        src, kind = src / "dogImages", "tree"
    if kind is None:
        raise DataError(f"{src} is not the dog images: expected {GET['dogs']}")
    dest = dest_dir / "dogImages"
    install.check_not_shadowed(dest, lookup.candidates("dogs"))
    if kind in ("zip", "tar"):
        return loaders.unpack_dogs(src, dest)
    if install.same_or_nested(src, dest):
        return loaders.check_dog_tree(dest)
    loaders.check_dog_tree(src)  # fails early, before copying anything
    return install.install_copy(src, dest, lambda new: loaders.check_dog_tree(new, decode=True))


IMPORTERS = {  # name -> importer(src, dest_dir) returning where the copy went
    "mnist": _import_mnist,
    "cifar10": _import_cifar10,
    "dogs": _import_dogs,
    "vgg16": lambda src, dest_dir: backbones.import_weights(src, dest_dir, "VGG16", load=False),
    "weights": backbones.import_weights,
}


def import_dataset(name: str, src) -> Path:
    """Copy (or unpack) a local copy of dataset ``name`` into the data folder (``data_dirs()[0]``, else
    the repo's), checked by loading it once; returns where it went. Accepts what GET names for each
    (mnist.npz; CIFAR-10's tarball, pickles or a JPEG tree; dogImages as folder, zip or tarball; a Keras
    .h5 weights file). Raises ValueError for an unknown name,
    DatasetNotFound for a missing ``src``, DataError when it is not the dataset, a special file, fails
    the checks, or would be hidden by a copy earlier in the search order (nothing is left behind)."""
    if name not in IMPORTERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    src = lookup.user_path(src, "the path")
    if not src.exists():
        raise DatasetNotFound(f"{src}: no such file or folder")
    install.check_source(src)
    return IMPORTERS[name](src, install.writable_import_dir())


# ---------------------------------------------------------------- data status


def _check_tarball(name: str, kind: str, source: Path) -> None:
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


def _check_cheaply(name: str, kind: str, source: Path) -> None:
    """Check a found dataset without decoding images: npz headers, the pickles through the loader's
    restricted unpickler, a tree's layout, a zip's directory, a tarball's member names."""
    if kind == "npz":
        formats.check_mnist_npz(source)
    elif kind == "pickles":
        formats.read_cifar(source, kind)
    elif kind in ("pickles-tar", "tree-tar", "tar"):
        _check_tarball(name, kind, source)
    elif kind == "tree" and name == "cifar10":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image_folders.load_image_folder(source, shuffle=False)
    elif kind == "tree":
        loaders.check_dog_tree(source)
    elif kind == "zip":
        with zipfile.ZipFile(source) as z:  # the directory only: what unpacking would refuse at once
            for info in z.infolist():
                install.check_zip_member(source, info, MAX_DOGS_ZIP_BYTES, "the dog images")


def _how(name: str) -> str:
    path = "FILE" if name == "weights" else "PATH"
    return (
        f"get {GET[name]} into {lookup.data_dirs()[0]}, or run `python -m cnn_course data fetch {name}` or "
        f"`python -m cnn_course data import {name} {path}`"
    )


def _status(name: str, paths, check) -> tuple[str, str | None, str]:
    """(status, where, how) for the found ``paths``, each passed to ``check``."""
    if not paths:
        return "missing", None, _how(name)
    where = ", ".join(map(str, paths))
    for path in paths:
        try:
            check(path)
        except (DataError, OSError, zipfile.BadZipFile) as e:
            reason = one_line(e) if isinstance(e, DataError) else f"{path}: not readable ({one_line(e)})"
            return "broken", where, f"broken: {reason}; {_how(name)}"
    return "found", where, ""


def _status_of(name: str) -> tuple[str, str | None, str]:
    if name in ("mnist", "cifar10", "dogs"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kind, source, _ = lookup.find(name)
        except (DataError, OSError) as e:
            return "broken", None, f"broken: {one_line(e)}; {_how(name)}"
        return _status(name, [source] if source else [], lambda p: _check_cheaply(name, kind, p))
    if name == "vgg16":
        paths = [p for p in (backbones.find_weights(VGG16_FILES[top][0])[0] for top in (False, True)) if p]
        status, where, how = _status(name, paths, backbones.check_h5)
        return status, where, how or ("" if len(paths) != 1 else f"only one of the two files; {_how(name)}")
    return _status(name, backbones.found_weights(), backbones.check_h5)


def dataset_status() -> list[dict]:
    """For each of DATASETS, whether it is there and usable, nothing downloaded or decoded: dicts
    {"name", "status" ("found", "missing", "broken"), "found", "where", "how"} ("how": how to get it,
    "broken: REASON; ..." for a broken one). Raises SettingError for a bad CNN_COURSE_DATA."""
    rows = []
    for name in DATASETS:
        status, where, how = _status_of(name)
        rows.append({"name": name, "status": status, "found": status == "found", "where": where, "how": how})
    return rows
