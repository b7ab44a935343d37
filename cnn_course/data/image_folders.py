"""Image trees ``<split>/<class>/<image>`` in a folder or a tarball: listing and checking them, and
decoding a CIFAR-10 JPEG tree once into a ``.decoded.npz`` keyed on its size and mtime (the decode cache)."""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
from pathlib import Path, PurePosixPath

import numpy as np

from . import formats, images, install, lookup
from .catalog import CIFAR10_CLASSES, MAX_CIFAR_IMAGE_BYTES, MAX_CIFAR_SIDE, MAX_CIFAR_TREE_BYTES, SPLITS, MiB
from .errors import DataError, DatasetNotFound, one_line

CACHE_VERSION = 1
CIFAR_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _check_tree(names_by_split: dict, source, skipped) -> dict:
    """{split: {class: files}} in split order, checked: classes in every split, none empty, the same."""
    tree = {s: names_by_split[s] for s in SPLITS if s in names_by_split}
    if not tree:
        raise DataError(f"{source}: no train/, valid/ or test/ folder with class folders in it")
    first = set(next(iter(tree.values())))
    for split, classes in tree.items():
        empty = sorted(c for c, files in classes.items() if not files)
        if not classes:
            raise DataError(f"{source}/{split}: no class folders")
        if empty:
            raise DataError(f"{source}/{split}: empty class folder(s) with no images: {', '.join(empty)}")
        if set(classes) != first:
            raise DataError(
                f"{source}: {split}/ and {next(iter(tree))}/ have different class folders "
                f"(only in {split}: {', '.join(sorted(set(classes) - first)) or 'none'}; "
                f"missing from {split}: {', '.join(sorted(first - set(classes))) or 'none'})"
            )
    if skipped:
        warnings.warn(
            f"{source}: skipped {len(skipped)} file(s) that are not images (by extension): "
            f"{', '.join(map(str, skipped))}",
            stacklevel=3,
        )
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
    """The entries of ``folder`` but hidden ones, by name, links checked (install.check_link); DataError
    for a folder that cannot be read."""
    try:
        with os.scandir(folder) as it:
            entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as e:
        raise DataError(f"{folder}: this folder cannot be read ({e.strerror or e})") from None
    for e in (e for e in entries if e.is_symlink()):
        install.check_link(Path(e.path), top)  # refuses links to folders, and out of the tree
    return entries


def load_image_folder(root, shuffle=True, seed=0) -> dict:
    """List the image tree ``root/<split>/<class>/<image>`` without decoding (see read_images).

    Returns {split: {"paths", "labels" (int64), "classes" (sorted folder names)}}, each split shuffled
    with ``seed`` when ``shuffle``. Non-images are skipped with a warning, hidden files ignored, links
    followed only to files inside the tree. Raises DatasetNotFound, or DataError for a bad tree."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetNotFound(f"{root}: no such folder (expected {root}/train/<class>/<image>)")
    if not root.is_dir():
        raise DataError(f"{root}: a file, not a folder; unpack it first")
    top, names_by_split, skipped = root.resolve(), {}, []
    for split in SPLITS:
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
                (classes[entry.name] if f.is_file() and images.is_image_name(f.name) else skipped).append(Path(f.path))
    tree = _check_tree(names_by_split, root, skipped)
    listed = {split: _listing(classes, shuffle, seed + i) for i, (split, classes) in enumerate(tree.items())}
    return {split: dict(zip(("paths", "labels", "classes"), v)) for split, v in listed.items()}


def tar_tree(path: Path, max_member=None, max_total=None, what="a CIFAR-10 image") -> dict:
    """{split: {class: [(member name, bytes)]}} of an image tree in a tarball, read in memory with every
    member checked (install.read_tar); DataError for a tree over ``max_total`` bytes or a bad tree."""
    max_member = MAX_CIFAR_IMAGE_BYTES if max_member is None else max_member
    max_total = MAX_CIFAR_TREE_BYTES if max_total is None else max_total
    names_by_split, skipped, total = {}, [], 0

    def place(member):
        parts = PurePosixPath(member.name).parts
        at = next((i for i, p in enumerate(parts) if p in SPLITS), None)
        hidden = any(p.startswith(".") and p != "." for p in parts)
        return None if at is None or hidden else (parts[at], parts[at + 1 :])

    def wanted(member):
        where = place(member)
        return where is not None and len(where[1]) == 2 and images.is_image_name(where[1][1])

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
    """Decode a CIFAR-10 JPEG tree (folder or tarball) into shuffled arrays with a fixed seed;
    returns (train, test, bad) with bad naming the skipped images. Raises DataError."""
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
        x, bad = images.decode_many(sources, (32, 32, 3), names, MAX_CIFAR_SIDE**2, MAX_CIFAR_IMAGE_BYTES, what)
        images.report_bad_images([b for _, b in bad], len(x), f"{source} ({split})")
        keep = np.ones(len(x), bool)
        keep[[i for i, _ in bad]] = False
        all_bad += [b for _, b in bad]
        order = np.random.default_rng(k).permutation(int(keep.sum()))
        x, labels, where = x[keep][order], labels[keep][order], f"{source} ({split})"
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
    return prefix, f"{prefix}{hashlib.sha1(f'{sig}:{CACHE_VERSION}'.encode()).hexdigest()[:10]}.decoded.npz"


def load_cifar_tree(source: Path, kind: str):
    """(train, test, note) of a CIFAR-10 JPEG tree through its decode cache, looked for (and written atomically
    into the first that takes it) in the repo's data folder, the source's folder and the Keras cache; a
    damaged cache is warned about and decoded again. The note says where the cache is. Raises DataError."""
    (prefix, name), check = _cache_name(source), formats.check_arrays
    dirs = [lookup.REPO_DATA_DIR] if lookup.REPO_DATA_DIR.is_dir() else []
    dirs = list(dict.fromkeys(dirs + [source.parent, lookup.keras_cache_dir()]))
    for path in (d / name for d in dirs):
        install.sweep_stale(path.parent)
        if not path.is_file():
            continue
        try:
            a = formats.read_npz(path, CIFAR_KEYS + ("bad",))
            train, test = (check(a[f"x_{s}"], a[f"y_{s}"], (32, 32, 3), 10, str(path)) for s in ("train", "test"))
        except Exception as e:
            warnings.warn(f"ignoring the damaged decode cache {path} ({one_line(e)}); decoding again", stacklevel=2)
            continue
        if len(a["bad"]):
            bad = f"skipped {len(a['bad'])} unusable image(s) when it was decoded: {images.a_few(list(a['bad']))}"
            warnings.warn(f"{source}: {bad}", stacklevel=2)
        return train, test, f"JPEG copy, decoded cache {path}"
    print(
        f"Decoding the CIFAR-10 JPEG images in {source} once; the arrays are cached for later loads.", file=sys.stderr
    )
    train, test, bad = decode_cifar_tree(source, kind)
    for d in dirs:
        try:
            d.mkdir(parents=True, exist_ok=True)
            with install.temp_file(d, name) as (tmp, f):
                np.savez(
                    f, x_train=train[0], y_train=train[1], x_test=test[0], y_test=test[1], bad=np.asarray(bad, str)
                )
                f.flush()
                os.replace(tmp, d / name)
        except OSError:
            continue
        for old in (old for old in d.glob(f"{prefix}*.decoded.npz") if old.name != name):
            old.unlink(missing_ok=True)
        return train, test, f"JPEG copy, decoded and cached in {d / name}"
    where = ", ".join(map(str, dirs))
    warnings.warn(
        f"could not write a decode cache for {source} in any of {where}; decoding it again next time", stacklevel=2
    )
    return train, test, "JPEG copy, decoded"
