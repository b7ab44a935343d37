"""The dog-breed images (``dogImages``): finding the tree, unpacking
``dogImages.zip`` or a ``.tar.gz`` of the folder once, and the loader the
transfer-learning lessons call."""

from __future__ import annotations

import os
import shutil
import sys
import tarfile
import tempfile
import warnings
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from .catalog import MAX_DOGS_ZIP_BYTES, MAX_PHOTO_BYTES, SPLITS, TITLES, MiB
from .errors import DataError, DatasetNotFound, one_line
from .places import quick_mode
from . import cache, files, images, places, standins, trees


def unzip_into(zip_path: Path, target: Path) -> Path:
    """Unzip dogImages.zip into the new folder ``target`` (its train/,
    valid/, test/ directly inside). Members are checked before anything is
    written: names that lead out of ``target``, links, encrypted or
    duplicate members, a photo over MAX_PHOTO_BYTES and a total over
    MAX_DOGS_ZIP_BYTES are refused. Returns target. Raises
    DataError for those, a corrupt zip or one without train/; OSError when
    ``target`` cannot be written."""
    try:
        with zipfile.ZipFile(zip_path) as z:
            members = [m for m in z.infolist() if not m.filename.startswith("__MACOSX")]
            tops = {PurePosixPath(m.filename).parts[0] for m in members if PurePosixPath(m.filename).parts}
            prefix = "dogImages/" if tops == {"dogImages"} else ""
            if not any(m.filename.startswith(prefix + "train/") for m in members):
                raise DataError(f"{zip_path}: no train/ folder inside (expected dogImages/train/<breed>/)")
            total, seen = 0, set()
            for m in members:
                files.check_zip_member(zip_path, m, MAX_PHOTO_BYTES, "one dog photo")
                if m.filename in seen:
                    raise DataError(f"{zip_path}: member {m.filename} appears twice; "
                                    "refusing an archive whose copies could differ")
                seen.add(m.filename)
                total += m.file_size
            if total > MAX_DOGS_ZIP_BYTES:
                raise DataError(f"{zip_path}: unpacks to {total / MiB:.0f} MiB, over the "
                                f"{MAX_DOGS_ZIP_BYTES / MiB:.0f} MiB limit for the dog images")
            target.mkdir()
            for m in members:
                if m.is_dir() or not m.filename.startswith(prefix):
                    continue
                out = files.safe_member_path(target, m.filename[len(prefix):])
                out.parent.mkdir(parents=True, exist_ok=True)
                with z.open(m) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as e:
        raise DataError(f"{zip_path}: not a readable zip file, truncated or corrupt ({one_line(e)})") from None
    return target


def unzip_to(zip_path: Path, folder: Path) -> Path:
    """Unzip dogImages.zip into ``folder``/dogImages: into a staging folder
    first, checked there (layout, and every image decoded), and only then
    moved in place of what was there. Returns that path. Raises DataError
    for a bad zip or tree (naming the zip), OSError when ``folder`` is not
    writable."""
    dest = folder / "dogImages"
    with files.staging(folder) as work:
        print(f"Unzipping {zip_path} into {dest} (once).", file=sys.stderr)
        new = unzip_into(zip_path, work / "dogImages")
        with files.named_as(new, zip_path):
            check_dog_tree(new, decode=True)
        files.install(new, dest, work)
    return dest


def check_dog_tree(root: Path, decode: bool = False) -> Path:
    """Check a dogImages tree: train/, valid/ and test/ with the same breed
    folders, none empty, no links out of or around it; with ``decode``, also
    every image decoded, as the lessons will (each within MAX_PHOTO_BYTES and
    MAX_PHOTO_PIXELS, read from its header first, so time and memory are
    bounded). Returns root. Raises DataError; for images that cannot be
    decoded, it says how many and names a few."""
    missing = [s for s in SPLITS if not (root / s).is_dir()]
    if missing:
        raise DataError(f"{root}: no {', '.join(s + '/' for s in missing)} folder "
                        "(expected train/, valid/ and test/ with one folder per breed)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        listing = trees.load_image_folder(root, shuffle=False)
    if decode:
        paths = [p for split in listing.values() for p in split["paths"]]
        bad = images.undecodable(paths, "one dog photo")
        if bad:
            raise DataError(f"{root}: {len(bad)} of {len(paths)} images cannot be used: "
                            f"{images.a_few(bad)}")
    return root


def _unzip_dogs(zip_path: Path) -> Path:
    """Unzip dogImages.zip once, into the first writable of: the repo's data
    folder, the zip's folder, the Keras cache (an earlier unzipped copy in
    one of them is reused). Returns the dogImages root. Raises DataError."""
    for d in cache.cache_dirs(zip_path):
        if (d / "dogImages" / "train").is_dir():
            return d / "dogImages"
    for d in cache.cache_dirs(zip_path):
        try:
            return unzip_to(zip_path, d)
        except OSError:
            continue
    raise DataError(f"could not unzip {zip_path}: none of {', '.join(map(str, cache.cache_dirs(zip_path)))} is writable")


def untar_to(tar_path: Path, dest: Path) -> Path:
    """Unpack a ``.tar.gz`` of a dogImages folder (the tree at its top, or in
    one folder such as ``dogImages/``) into the folder ``dest``: into a
    staging folder beside it first, checked there (members as in
    :func:`unzip_into`: no names leading out, no links, each photo at most
    MAX_PHOTO_BYTES, all at most MAX_DOGS_ZIP_BYTES; then the tree's layout
    and every image decoded),
    and only then moved in place of what was there. Returns ``dest``. Raises
    DataError for an unreadable tarball, a refused member or a bad tree;
    OSError when ``dest``'s folder is not writable."""
    try:
        with tarfile.open(tar_path) as tar:
            members = tar.getmembers()
            names = [m.name for m in members if m.isfile()]
            tops = {Path(n).parts[0] for n in names if len(Path(n).parts) > 1}
            prefix = next(iter(tops)) + "/" if len(tops) == 1 and tops != {"train"} else ""
            if not any(n.startswith(prefix + "train/") for n in names):
                raise DataError(f"{tar_path}: no train/ folder inside (expected dogImages/train/<breed>/)")
            total = 0
            for m in members:
                if m.isdir():
                    continue
                files.check_member(tar_path, m.name, m.size, MAX_PHOTO_BYTES, "one dog photo",
                                   is_file=m.isfile())
                total += m.size
            if total > MAX_DOGS_ZIP_BYTES:
                raise DataError(f"{tar_path}: unpacks to {total / MiB:.0f} MiB, over the "
                                f"{MAX_DOGS_ZIP_BYTES / MiB:.0f} MiB limit for the dog images")
            with files.staging(dest.parent) as work:
                print(f"Unpacking {tar_path} into {dest} (once).", file=sys.stderr)
                tree = work / "tree"
                tree.mkdir()
                for m in members:
                    if not m.isfile() or not m.name.startswith(prefix):
                        continue
                    target = files.safe_member_path(tree, m.name[len(prefix):])
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(m) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                with files.named_as(tree, tar_path):
                    check_dog_tree(tree, decode=True)
                files.install(tree, dest, work)
    except (tarfile.TarError, EOFError, zlib.error) as e:
        raise DataError(f"{tar_path}: not a readable tar archive, truncated or corrupt ({one_line(e)})") from None
    return dest


def _untar_dogs(tar_path: Path) -> Path:
    """Unpack a dogImages tarball once into ``<folder>/<its name without
    .tar.gz>``, in the first writable of: the data folders and the Keras
    cache, the tarball's own folder last (it may be a shared, read-only
    copy). An earlier unpacked copy in one of them is reused. Returns the
    tree's root. Raises DataError."""
    name = tar_path.name
    for suffix in (".tar.gz", ".tgz", ".tar"):
        if name.endswith(suffix):
            name = name[:-len(suffix)]
            break
    folders = [d for d in dict.fromkeys(places.data_dirs() + [places.keras_cache_dir()])
               if d.resolve() != tar_path.parent.resolve()] + [tar_path.parent]
    for d in folders:
        if (d / name / "train").is_dir():
            return d / name
    for d in folders:
        if not files.may_write(d):
            continue
        try:
            return untar_to(tar_path, d / name)
        except OSError:
            continue
    raise DataError(f"could not unpack {tar_path}: none of {', '.join(map(str, folders))} is writable")


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
    kind, source, looked = places.find("dogs", path)
    if kind is None:
        raise places.not_found("dogs", looked)
    root = {"zip": _unzip_dogs, "tar": _untar_dogs}.get(kind, lambda s: s)(source)
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

    if places.offline():
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
    counts, n_classes = trees.count_image_tree(root)
    split_counts = " / ".join(f"{counts.get(s, 0)} {s}" for s in SPLITS)
    if real:
        description = f"Dog-breed images (real, {split_counts}, {n_classes} breeds, from {root})"
    else:
        description = (f"STAND-IN for {title}: generated colour-and-stripe images, one colour per class, "
                       f"{n_classes} classes, {split_counts} (real dogImages not found; "
                       "`python -m cnn_course data fetch dogs` gets it)")
    print(f"Data: {description}")
    return root, description

