"""The dog-breed images (``dogImages``): finding the tree, unpacking
``dogImages.zip`` or a ``.tar.gz`` of the folder once, and the loader the
transfer-learning lessons call."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

from .catalog import MAX_DOGS_ZIP_BYTES, MAX_PHOTO_BYTES, SPLITS, TITLES
from .errors import DataError, DatasetNotFound
from .lookup import quick_mode
from . import image_folders, images, install, lookup, standins


def unpack_to(archive: Path, dest: Path) -> Path:
    """Unpack ``dogImages.zip`` or a ``.tar.gz`` of a dogImages folder into the
    folder ``dest``: in a staging folder beside it first (members checked by
    :func:`install.unpack_tree`: no escaping names or links, each photo at
    most MAX_PHOTO_BYTES, all at most MAX_DOGS_ZIP_BYTES), the tree's layout
    and every image checked there, and only then put in place of what was
    there. Returns ``dest``. Raises DataError for a bad archive or tree
    (naming the archive), OSError when ``dest``'s folder is not writable."""
    with install.staging(dest.parent) as work:
        print(f"Unpacking {archive} into {dest} (once).", file=sys.stderr)
        root = install.unpack_tree(archive, work / "unpacked", MAX_PHOTO_BYTES, MAX_DOGS_ZIP_BYTES,
                                   "one dog photo")
        with install.named_as(root, archive):
            check_dog_tree(root, decode=True)
        install.install(root, dest, work)
    return dest


def check_dog_tree(root: Path, decode: bool = False) -> Path:
    """Check a dogImages tree: train/, valid/ and test/ with the same breed
    folders, none empty, no links out of or around it; with ``decode`` also
    every image decoded within MAX_PHOTO_BYTES and MAX_PHOTO_PIXELS (checked
    before decoding). Returns root. Raises DataError; for undecodable images
    it says how many and names a few."""
    missing = [s for s in SPLITS if not (root / s).is_dir()]
    if missing:
        raise DataError(f"{root}: no {', '.join(s + '/' for s in missing)} folder "
                        "(expected train/, valid/ and test/ with one folder per breed)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        listing = image_folders.load_image_folder(root, shuffle=False)
    if decode:
        paths = [p for split in listing.values() for p in split["paths"]]
        bad = images.undecodable(paths, "one dog photo")
        if bad:
            raise DataError(f"{root}: {len(bad)} of {len(paths)} images cannot be used: "
                            f"{images.a_few(bad)}")
    return root


def _unpacked(archive: Path) -> Path:
    """Unpack a dogImages archive once into ``<folder>/<its name without the
    extension>``, in the first writable of the data folders and the Keras
    cache, the archive's own folder last (it may be a shared, read-only
    copy); an earlier unpacked copy in one of them is reused. Returns the
    tree's root. Raises DataError."""
    name = archive.name
    for suffix in (".zip", ".tar.gz", ".tgz", ".tar"):
        if name.endswith(suffix):
            name = name[:-len(suffix)]
            break
    folders = [d for d in dict.fromkeys(lookup.data_dirs() + [lookup.keras_cache_dir()])
               if d.resolve() != archive.parent.resolve()] + [archive.parent]
    for d in folders:
        if (d / name / "train").is_dir():
            return d / name
    for d in folders:
        if install.may_write(d):
            try:
                return unpack_to(archive, d / name)
            except OSError:
                continue
    raise DataError(f"could not unpack {archive}: none of {', '.join(map(str, folders))} is writable")


def find_dog_images(path=None) -> Path:
    """Find the dog-breed images: a ``dogImages`` folder
    (train/valid/test/<NNN.Breed>/...), ``dogImages.zip`` (unzipped once,
    into the repo's data folder when writable) or a ``.tar.gz`` of the folder
    such as ``dogImages-imagewoof10.tar.gz`` (unpacked once, see
    `_untar_dogs`), from ``path``, then the data folders, then the Keras
    cache. Never downloads (see fetch).

    Returns the dogImages root folder. Raises DatasetNotFound naming
    dogImages.zip and its URL, DataError for a corrupt zip or a root without
    train/, valid/ and test/."""
    kind, source, looked = lookup.find("dogs", path)
    if kind is None:
        raise lookup.not_found("dogs", looked)
    root = _unpacked(source) if kind in ("zip", "tar") else source
    missing = [s for s in SPLITS if not (root / s).is_dir()]
    if missing:
        raise DataError(f"{root}: no {', '.join(s + '/' for s in missing)} folder "
                        "(expected train/, valid/ and test/ with one folder per breed)")
    return root


def _download_dogs(missing: DatasetNotFound) -> Path:
    """Download dogImages.zip through Keras into its cache and return the
    unpacked tree's root, as a plain Keras script gets its dataset. Raises
    ``missing`` with a line added when CNN_COURSE_OFFLINE is set or the
    download fails; DataError for a corrupt download."""
    from . import downloads  # downloads imports this module

    if lookup.offline():
        raise DatasetNotFound(f"{missing}\nNothing was downloaded because "
                              f"CNN_COURSE_OFFLINE={os.environ.get('CNN_COURSE_OFFLINE')}.") from None
    try:
        return downloads.fetch("dogs")
    except DatasetNotFound as e:
        raise DatasetNotFound(f"{missing}\nThe download failed: {e}") from None


def _dog_standin_root(seed: int) -> Path:
    """Build (once) the generated dog-images stand-in for ``seed`` in the
    temp folder and return its root. It is built under a temporary name and
    renamed, so a half-written stand-in is never used. Raises OSError when
    the temp folder is not writable."""
    target = Path(tempfile.gettempdir()) / f"cnn-course-dogimages-standin-{int(seed)}"
    if (target / "test").is_dir():
        return target
    work = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        standins.make_image_folder_standin(work / "dogImages", seed=seed)
        try:
            os.rename(work / "dogImages", target)
        except OSError:  # another run built it at the same time: use theirs
            if not (target / "test").is_dir():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def load_dog_images(path=None, quick=None, seed=0):
    """Find the dog-breed images for a lesson and say what they are.

    The real ``dogImages`` tree (or ``dogImages.zip``) is found with
    :func:`find_dog_images` (``path``, then the data folders, then the Keras
    cache). When it is missing and ``quick`` is true, a
    small generated tree of the same layout (colour-and-stripe images, one
    colour per class; :func:`make_image_folder_standin` with ``seed``) is
    built once in the temp folder and used instead; when not quick,
    ``dogImages.zip`` is downloaded through Keras (`downloads.fetch`, about
    1 GB) unless CNN_COURSE_OFFLINE is set, as MNIST and CIFAR-10 are.
    Prints exactly one line ``Data: <description>``; a stand-in says
    ``STAND-IN`` in it.

    Returns (root Path of the train/valid/test tree, description). Raises
    DatasetNotFound (not quick, not found, and not downloaded) naming
    dogImages.zip, its URL and where to put it; DataError for a corrupt zip
    or download, or an incomplete tree; OSError when the stand-in cannot be written."""
    quick = quick_mode(quick)
    title = TITLES["dogs"]
    try:
        root = find_dog_images(path)
        real = True
    except DatasetNotFound as missing:
        if not quick:
            root = _download_dogs(missing)
            real = True
        else:
            root = _dog_standin_root(seed)
            real = False
    counts, n_classes = image_folders.count_image_tree(root)
    split_counts = " / ".join(f"{counts.get(s, 0)} {s}" for s in SPLITS)
    if real:
        description = f"Dog-breed images (real, {split_counts}, {n_classes} breeds, from {root})"
    else:
        description = (f"STAND-IN for {title}: generated colour-and-stripe images, one colour per class, "
                       f"{n_classes} classes, {split_counts} (real dogImages not found; "
                       "`python -m cnn_course data fetch dogs` gets it)")
    print(f"Data: {description}")
    return root, description

