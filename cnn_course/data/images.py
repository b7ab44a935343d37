"""Image files and trees: decoding with Pillow within size limits read from the header (before decoding),
``<split>/<class>/<image>`` trees in a folder or a tarball, a CIFAR-10 JPEG tree decoded once into a
``.decoded.npz`` keyed on its size and mtime (the decode cache), and a few photos to look at."""

from __future__ import annotations

import hashlib
import io
import os
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

import numpy as np

from . import catalog, formats, install, lookup
from .catalog import CIFAR10_CLASSES, IMAGE_EXTENSIONS, MAX_CIFAR_IMAGE_BYTES, DataError, DatasetNotFound, MiB, one_line

SAMPLE_PHOTOS = ("china.jpg", "flower.jpg")  # bundled with scikit-learn, no download
BAD_IMAGE_LIMIT = 0.01  # more than this fraction unreadable -> DataError
MAX_PIXELS = catalog.MAX_PHOTO_PIXELS
WORKERS = max(1, min(4, os.cpu_count() or 1))  # Pillow releases the GIL while it decodes and resizes


def is_image_name(name: str) -> bool:
    """Whether a file name has one of IMAGE_EXTENSIONS (any case)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _pixels(n: int) -> str:
    side = int(round(n**0.5))
    return f"{n / 1e6:g} megapixels" if n >= 1e6 else f"{side}x{side} pixels" if side * side == n else f"{n} pixels"


def decode_one(src, size=None, max_pixels=MAX_PIXELS, max_bytes=catalog.MAX_PHOTO_BYTES, what="a photo"):
    """One image (bytes or a Path) as RGB uint8 (H, W, 3), resized to ``size`` (h, w) when given, or a
    string saying what is wrong; files over ``max_bytes`` or ``max_pixels`` (``what``'s) are not decoded."""
    from PIL import Image

    try:
        n_bytes = src.stat().st_size if isinstance(src, Path) else len(src)
        if n_bytes > max_bytes:
            return f"is {n_bytes / MiB:.1f} MiB, over the {max_bytes / MiB:.0f} MiB limit for {what}"
        buf = src.read_bytes() if isinstance(src, Path) else bytes(src)
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    if not buf:
        return "is empty (0 bytes)"
    limit = f"over the limit of {_pixels(max_pixels)} for {what}; not decoded"
    try:
        with Image.open(io.BytesIO(buf)) as im:  # reads the header only
            if im.width * im.height > max_pixels:
                return f"is {im.width}x{im.height} pixels, {limit}"
            img = im.convert("RGB")
    except Image.DecompressionBombError:  # over twice Image.MAX_IMAGE_PIXELS: no size given
        return f"is over {_pixels(2 * Image.MAX_IMAGE_PIXELS)}, {limit}"
    except Exception:
        return "is not a readable image"
    if size is not None and img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.BILINEAR)  # widened when shrinking: no aliasing
    return np.array(img)


def decode_many(sources, names, shape=None, what="a photo", max_pixels=MAX_PIXELS, max_bytes=catalog.MAX_PHOTO_BYTES):
    """Decode images on a thread pool into one uint8 array when ``shape`` is given (each must be of it), else
    only to check them; returns (x or None, bad) with bad a list of (index, "<name> <reason>")."""
    x = np.zeros((len(sources), *shape), np.uint8) if shape else None

    def one(i):
        img = decode_one(sources[i], max_pixels=max_pixels, max_bytes=max_bytes, what=what)
        if isinstance(img, str):
            return i, f"{names[i]} {img}"
        if shape and img.shape != tuple(shape):
            return i, f"{names[i]} is {img.shape[1]}x{img.shape[0]}, expected {shape[1]}x{shape[0]}"
        if shape:
            x[i] = img

    def work(lo):
        return [b for b in map(one, range(lo, min(lo + 500, len(sources)))) if b]

    with warnings.catch_warnings(), ThreadPoolExecutor(WORKERS) as pool:  # set here: catch_warnings is not thread-safe
        warnings.simplefilter("ignore")  # Pillow's notes on odd files: what is wrong is returned instead
        return x, [b for found in pool.map(work, range(0, len(sources), 500)) for b in found]


def a_few(items, shown=5) -> str:
    """The first ``shown`` items joined by "; ", and how many more, so a message stays one line."""
    return "; ".join(map(str, items[:shown])) + (f"; and {len(items) - shown} more" if len(items) > shown else "")


def read_images(paths, size=(224, 224), batch_size=64):
    """Yield uint8 RGB batches (B, h, w, 3) of the images ``paths`` resized to ``size`` (h, w), decoded ahead on
    a thread pool. ValueError (at once) for a bad size or batch_size, DataError naming a file it cannot decode."""
    paths = [Path(p) for p in paths]
    whole = lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, bool)
    if not (isinstance(size, (tuple, list)) and len(size) == 2 and all(whole(v) and 1 <= v <= 8192 for v in size)):
        raise ValueError(f"size must be (height, width), two whole numbers from 1 to 8192; got {size!r}")
    if not whole(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number of at least 1, got {batch_size!r}")
    return _batches(paths, (int(size[0]), int(size[1])), batch_size)


def _batches(paths, size, batch_size):
    def batch(lo):
        out = np.empty((min(batch_size, len(paths) - lo), size[0], size[1], 3), np.uint8)
        for j, p in enumerate(paths[lo : lo + len(out)]):
            img = decode_one(p, size)
            if isinstance(img, str):
                raise DataError(f"{p} {img}")
            out[j] = img
        return out

    with ThreadPoolExecutor(WORKERS) as pool:
        starts = range(0, len(paths), batch_size)
        ahead = [pool.submit(batch, lo) for lo in starts[:WORKERS]]  # several batches in flight
        for k in range(len(starts)):
            if k + WORKERS < len(starts):
                ahead.append(pool.submit(batch, starts[k + WORKERS]))
            yield ahead[k].result()
            ahead[k] = None


def _photo_files(item: Path) -> list[Path]:
    """The image files ``item`` names: itself, or a folder's (by extension, not hidden) in name order."""
    if not item.exists():
        raise DatasetNotFound(f"{item}: no such file or folder")
    if not item.is_dir():
        return [item]
    files = sorted(p for p in item.iterdir() if p.is_file() and not p.name.startswith(".") and is_image_name(p.name))
    if not files:
        raise DataError(f"{item}: no image files in this folder (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return files


def load_sample_photos(paths=None):
    """Load photos at their own size, ``paths`` (files or folders) or scikit-learn's SAMPLE_PHOTOS, and print one
    ``Data:`` line; returns (photos, names, description). DatasetNotFound for a missing path, else DataError."""
    if paths is None:
        from sklearn.datasets import load_sample_image

        names = list(SAMPLE_PHOTOS)
        photos = [np.ascontiguousarray(load_sample_image(name), dtype=np.uint8) for name in names]
        where = "scikit-learn"
    else:
        items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        if not items:
            raise DataError("load_sample_photos: an empty list of paths")
        files = [f for item in items for f in _photo_files(Path(item).expanduser())]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's notes on odd files
            photos = [decode_one(f) for f in files]
        for f, img in zip(files, photos):
            if isinstance(img, str):
                raise DataError(f"{f} {img}")
        names = [f.name for f in files]
        where = ", ".join(str(Path(item).expanduser()) for item in items)
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    description = f"{len(names)} photo{'s' if len(names) != 1 else ''} from {where}: {shown}"
    print(f"Data: {description}")
    return photos, names, description


def _check_tree(names_by_split: dict, source, skipped) -> dict:
    """{split: {class: files}} in split order, checked: classes in every split, none empty, the same."""
    tree = {s: names_by_split[s] for s in catalog.SPLITS if s in names_by_split}
    if not tree:
        raise DataError(f"{source}: no train/, valid/ or test/ folder with class folders in it")
    first = set(next(iter(tree.values())))
    for split, classes in tree.items():
        empty = sorted(c for c, files in classes.items() if not files)
        if not classes:
            raise DataError(f"{source}/{split}: no class folders")
        if empty:
            raise DataError(f"{source}/{split}: empty class folder(s) with no images: {', '.join(empty)}")
        only, lacks = (", ".join(sorted(a - b)) or "none" for a, b in ((set(classes), first), (first, set(classes))))
        if set(classes) != first:
            first_name = next(iter(tree))
            raise DataError(
                f"{source}: {split}/ and {first_name}/ have different class folders (only in {split}: "
                f"{only}; missing from {split}: {lacks})"
            )
    if skipped:
        text = f"skipped {len(skipped)} file(s) that are not images (by extension): {', '.join(map(str, skipped))}"
        warnings.warn(f"{source}: {text}", stacklevel=3)
    return tree


def _listing(classes_files: dict, shuffle: bool, seed: int, key=None):
    """(files, int64 labels, sorted classes): files sorted within a class, then shuffled with ``seed``."""
    classes = sorted(classes_files)
    files = [f for c in classes for f in sorted(classes_files[c], key=key)]
    labels = np.repeat(np.arange(len(classes), dtype=np.int64), [len(classes_files[c]) for c in classes])
    if shuffle:
        order = np.random.default_rng(seed).permutation(len(files))
        files, labels = [files[i] for i in order], labels[order]
    return files, labels, classes


def _entries(folder, top: Path) -> list:
    """The entries of ``folder`` but hidden ones, by name, links checked (install.check_link); DataError."""
    try:
        with os.scandir(folder) as it:
            entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as e:
        raise DataError(f"{folder}: this folder cannot be read ({e.strerror or e})") from None
    for e in (e for e in entries if e.is_symlink()):
        install.check_link(Path(e.path), top)  # refuses links to folders, and out of the tree
    return entries


def load_image_folder(root, shuffle=True, seed=0) -> dict:
    """List the image tree ``root/<split>/<class>/<image>`` without decoding: {split: {"paths", "labels" (int64),
    "classes" (sorted)}}, shuffled with ``seed`` when ``shuffle``; non-images skipped with a warning, hidden files
    ignored, links followed only to files in the tree. Raises DatasetNotFound, DataError for a bad tree."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetNotFound(f"{root}: no such folder (expected {root}/train/<class>/<image>)")
    if not root.is_dir():
        raise DataError(f"{root}: a file, not a folder; unpack it first")
    top, names_by_split, skipped = root.resolve(), {}, []
    for split in catalog.SPLITS:
        if (root / split).is_symlink():
            install.check_link(root / split, top)  # a link to a folder: refused
        if not (root / split).is_dir():
            continue
        classes = names_by_split[split] = {}
        for entry in _entries(root / split, top):
            if not entry.is_dir(follow_symlinks=False):
                skipped.append(Path(entry.path))
                continue
            classes[entry.name] = []
            for f in _entries(entry.path, top):
                (classes[entry.name] if f.is_file() and is_image_name(f.name) else skipped).append(Path(f.path))
    tree = _check_tree(names_by_split, root, skipped)
    listed = {split: _listing(classes, shuffle, seed + i) for i, (split, classes) in enumerate(tree.items())}
    return {split: dict(zip(("paths", "labels", "classes"), v)) for split, v in listed.items()}


def tar_tree(path: Path, max_member=None, max_total=None, what="a CIFAR-10 image") -> dict:
    """{split: {class: [(member name, bytes)]}} of an image tree in a tarball, read in memory with every
    member checked (install.read_tar); DataError for a tree over ``max_total`` bytes or a bad tree."""
    max_member = MAX_CIFAR_IMAGE_BYTES if max_member is None else max_member
    max_total = catalog.MAX_CIFAR_TREE_BYTES if max_total is None else max_total
    names_by_split, skipped, total = {}, [], 0

    def place(member):
        parts = PurePosixPath(member.name).parts
        at = next((i for i, p in enumerate(parts) if p in catalog.SPLITS), None)
        hidden = any(p.startswith(".") and p != "." for p in parts)
        return None if at is None or hidden else (parts[at], parts[at + 1 :])

    def wanted(member):
        where = place(member)
        return where is not None and len(where[1]) == 2 and is_image_name(where[1][1])

    for member, data in install.read_tar(path, wanted, max_member, what):
        split, rest = place(member) or (None, ())
        if split and member.isdir() and len(rest) == 1:
            names_by_split.setdefault(split, {}).setdefault(rest[0], [])
        elif data is not None:
            total += member.size
            if total > max_total:
                raise DataError(f"{path}: its images add up to over the {max_total / MiB:.0f} MiB limit for {what}s")
            names_by_split.setdefault(split, {}).setdefault(rest[0], []).append((member.name, data))
        elif split and member.isfile():
            skipped.append(member.name)
    return _check_tree(names_by_split, path, skipped)


def decode_cifar_tree(source: Path, kind: str):
    """(train, test, names of the skipped images) of a CIFAR-10 JPEG tree, decoded and shuffled; DataError."""
    if kind == "tree":
        listing = load_image_folder(source, shuffle=False)
        tree = {s: (v["labels"], v["classes"], [str(p) for p in v["paths"]], v["paths"]) for s, v in listing.items()}
    else:
        listing = {s: _listing(classes, False, 0, key=lambda f: f[0]) for s, classes in tar_tree(source).items()}
        tree = {s: (y, c, [f"{source}:{n}" for n, _ in f], [b for _, b in f]) for s, (f, y, c) in listing.items()}
    for split in ("train", "test"):
        if split not in tree:
            raise DataError(f"{source}: no {split}/ folder (CIFAR-10 needs train/<class>/ and test/<class>/)")
        if tuple(tree[split][1]) != CIFAR10_CLASSES:
            found, needed = ", ".join(tree[split][1]), ", ".join(CIFAR10_CLASSES)
            raise DataError(f"{source}/{split}: class folders are {found}; CIFAR-10 needs exactly {needed}")
    if "valid" in tree:
        warnings.warn(f"{source}: ignoring valid/ (CIFAR-10 has train and test only)", stacklevel=3)
    out, all_bad, what = [], [], "a CIFAR-10 image (they are 32x32)"
    for k, split in enumerate(("train", "test")):
        labels, _, names, sources = tree[split]
        x, bad = decode_many(sources, names, (32, 32, 3), what, catalog.MAX_CIFAR_SIDE**2, MAX_CIFAR_IMAGE_BYTES)
        texts, where = [b for _, b in bad], f"{source} ({split})"
        if len(bad) > BAD_IMAGE_LIMIT * len(x):
            raise DataError(f"{where}: {len(bad)} of {len(x)} images are unusable (more than 1%): {a_few(texts)}")
        if bad:
            warnings.warn(f"{where}: skipped {len(bad)} unusable image(s) of {len(x)}: {a_few(texts)}", stacklevel=3)
        keep = np.ones(len(x), bool)
        keep[[i for i, _ in bad]] = False
        all_bad += texts
        order = np.random.default_rng(k).permutation(int(keep.sum()))
        x, labels = x[keep][order], labels[keep][order]
        out.append(formats.check_arrays(x, labels, (32, 32, 3), 10, where, CIFAR10_CLASSES))
    return out[0], out[1], all_bad


def _cache_name(source: Path) -> tuple[str, str]:
    """(prefix of every cache of this source, file name for its current size and mtime)."""
    if source.is_file():
        sig = f"{source.stat().st_size}:{source.stat().st_mtime_ns}"
    else:
        stats = [os.lstat(os.path.join(d, f)) for d, _, files in os.walk(source) for f in files]
        sig = f"{len(stats)}:{sum(s.st_size for s in stats)}:{max((s.st_mtime_ns for s in stats), default=0)}"
    prefix = f"{source.name}.{hashlib.sha1(str(source.resolve()).encode()).hexdigest()[:8]}."
    return prefix, f"{prefix}{hashlib.sha1(f'{sig}:1'.encode()).hexdigest()[:10]}.decoded.npz"


def load_cifar_tree(source: Path, kind: str):
    """(train, test, note on the cache) of a CIFAR-10 JPEG tree through its decode cache: the first valid one of the
    repo's data folder, the source's and the Keras cache, else decoded and written to the first that takes it."""
    (prefix, name), check = _cache_name(source), formats.check_arrays
    dirs = [lookup.REPO_DATA_DIR] if lookup.REPO_DATA_DIR.is_dir() else []
    dirs = list(dict.fromkeys(dirs + [source.parent, lookup.keras_cache_dir()]))
    for path in (d / name for d in dirs):
        install.sweep_stale(path.parent)
        if not path.is_file():
            continue
        try:
            a = formats.read_npz(path, formats.MNIST_KEYS + ("bad",))
            train, test = (check(a[f"x_{s}"], a[f"y_{s}"], (32, 32, 3), 10, str(path)) for s in ("train", "test"))
        except Exception as e:
            warnings.warn(f"ignoring the damaged decode cache {path} ({one_line(e)}); decoding again", stacklevel=2)
            continue
        if len(a["bad"]):
            bad = f"skipped {len(a['bad'])} unusable image(s) when it was decoded: {a_few(list(a['bad']))}"
            warnings.warn(f"{source}: {bad}", stacklevel=2)
        return train, test, f"JPEG copy, decoded cache {path}"
    print(f"Decoding the CIFAR-10 JPEG images in {source} once; the arrays are cached.", file=sys.stderr)
    train, test, bad = decode_cifar_tree(source, kind)
    for d in dirs:
        try:
            d.mkdir(parents=True, exist_ok=True)
            with install.temp_file(d, name) as (tmp, f):
                arrays = dict(zip(formats.MNIST_KEYS, (*train, *test)), bad=np.asarray(bad, str))
                np.savez(f, **arrays)
                f.flush()
                os.replace(tmp, d / name)
        except OSError:
            continue
        for old in (old for old in d.glob(f"{prefix}*.decoded.npz") if old.name != name):
            old.unlink(missing_ok=True)
        return train, test, f"JPEG copy, decoded and cached in {d / name}"
    where = ", ".join(map(str, dirs))
    warnings.warn(f"no decode cache for {source} could be written in {where}; it is decoded again next time")
    return train, test, "JPEG copy, decoded"
