"""Image trees ``<split>/<class>/<image>`` in a folder or a tarball: listing
them, checking their layout, and decoding a CIFAR-10 JPEG tree to arrays,
once: the arrays are kept in a ``.decoded.npz`` keyed on the source's size
and mtime (the decode cache)."""

from __future__ import annotations

import hashlib
import os
import sys
import tarfile
import warnings
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from .catalog import (CIFAR10_CLASSES, MAX_CIFAR_IMAGE_BYTES, MAX_CIFAR_SIDE, MAX_CIFAR_TREE_BYTES,
                      SPLITS, MiB)
from .errors import DataError, DatasetNotFound, one_line, tar_detail
from . import formats, images, install, lookup


def _tree_entries(names_by_split: dict, source) -> dict:
    """Check {split: {class: [files]}} read from a tree and return it with
    the splits in train, valid, test order. Raises DataError when there is no
    split, a split has no class folders or an empty one, or the splits have
    different classes."""
    tree = {s: names_by_split[s] for s in SPLITS if s in names_by_split}
    if not tree:
        raise DataError(f"{source}: no train/, valid/ or test/ folder with class folders in it")
    for split, classes in tree.items():
        if not classes:
            raise DataError(f"{source}/{split}: no class folders")
        empty = sorted(c for c, files in classes.items() if not files)
        if empty:
            raise DataError(f"{source}/{split}: empty class folder(s) with no images: {', '.join(empty)}")
    reference_split = next(iter(tree))
    reference = set(tree[reference_split])
    for split, classes in tree.items():
        if set(classes) != reference:
            extra = sorted(set(classes) - reference)
            missing = sorted(reference - set(classes))
            raise DataError(f"{source}: {split}/ and {reference_split}/ have different class folders "
                            f"(only in {split}: {', '.join(extra) or 'none'}; "
                            f"missing from {split}: {', '.join(missing) or 'none'})")
    return tree


def _warn_skipped_files(skipped, source) -> None:
    if skipped:
        warnings.warn(f"{source}: skipped {len(skipped)} file(s) that are not images "
                      f"(by extension): {', '.join(map(str, skipped))}", stacklevel=3)


def split_result(classes_files: dict, shuffle: bool, seed: int, key_of=lambda f: f):
    """Return (files, labels int64, classes) with classes sorted, files sorted
    within a class and then shuffled with ``seed`` when asked."""
    classes = sorted(classes_files)
    files, labels = [], []
    for label, c in enumerate(classes):
        members = sorted(classes_files[c], key=key_of)
        files += members
        labels += [label] * len(members)
    labels = np.asarray(labels, np.int64)
    if shuffle:
        order = np.random.default_rng(seed).permutation(len(files))
        files = [files[i] for i in order]
        labels = labels[order]
    return files, labels, classes


def load_image_folder(root, shuffle=True, seed=0) -> dict:
    """List an image tree ``root/<split>/<class>/<image file>`` (split is
    train, valid or test). Nothing is decoded: pass the paths to
    :func:`read_images` for batches of decoded, resized images.

    Returns {split: {"paths": [Path], "labels": int64 array, "classes":
    [str]}} for the splits present; classes are the sorted class-folder names
    (the same in every split) and a label is an index into them. With
    ``shuffle`` each split's order is mixed with a fixed ``seed``. Files that
    are not images by extension are skipped with a warning naming them;
    hidden files are ignored. Raises DatasetNotFound when ``root`` does not
    exist, DataError when it is not such a tree, a class folder is empty, or
    the splits have different classes, or a folder cannot be read or holds a
    symbolic link to a folder or out of the tree (links are not followed
    out of or around a tree)."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetNotFound(f"{root}: no such folder (expected {root}/train/<class>/<image>)")
    if not root.is_dir():
        raise DataError(f"{root}: a file, not a folder; unpack it first "
                        "(`python -m cnn_course data import NAME PATH` does that for known datasets)")
    top = root.resolve()
    names_by_split, skipped = {}, []
    for split in SPLITS:
        folder = root / split
        if folder.is_symlink():
            install.check_link(folder, top)  # a link to a folder: refused
        if not folder.is_dir():
            continue
        classes = {}
        for entry in sorted(_scan(folder), key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            if entry.is_symlink():
                install.check_link(Path(entry.path), top)  # refuses links to folders
            if not entry.is_dir(follow_symlinks=False):
                skipped.append(Path(entry.path))
                continue
            found = []
            for f in _scan(entry.path):
                if f.name.startswith("."):
                    continue
                if f.is_symlink():
                    install.check_link(Path(f.path), top)  # only files inside the tree pass
                if f.is_file() and images.is_image_name(f.name):
                    found.append(Path(f.path))
                else:
                    skipped.append(Path(f.path))
            classes[entry.name] = found
        names_by_split[split] = classes
    tree = _tree_entries(names_by_split, root)
    _warn_skipped_files(skipped, root)
    out = {}
    for i, (split, classes_files) in enumerate(tree.items()):
        paths, labels, classes = split_result(classes_files, shuffle, seed + i)
        out[split] = {"paths": paths, "labels": labels, "classes": classes}
    return out


def _scan(folder) -> list:
    """os.scandir(folder) as a list. Raises DataError (not PermissionError)
    naming a folder that cannot be read."""
    try:
        with os.scandir(folder) as it:
            return list(it)
    except OSError as e:
        raise DataError(f"{folder}: this folder cannot be read ({e.strerror or e})") from None


def tar_tree(path: Path, max_member=None, max_total=None, what="a CIFAR-10 image") -> dict:
    """Read an image tree from a tarball: {split: {class: [(member name,
    bytes)]}}. Files that are not images are skipped with a warning. Nothing
    is written to disk; still, members that are links, absolute or lead out
    with ``..`` are refused, and so is an image over ``max_member`` bytes
    (``what`` names whose limit) or a tree over ``max_total`` bytes (None:
    MAX_CIFAR_IMAGE_BYTES and MAX_CIFAR_TREE_BYTES). Raises
    DataError for those, a corrupt archive or a tree without splits."""
    max_member = MAX_CIFAR_IMAGE_BYTES if max_member is None else max_member
    max_total = MAX_CIFAR_TREE_BYTES if max_total is None else max_total
    names_by_split, skipped, total = {}, [], 0
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                install.check_member(path, member.name, 0, max_member, what,
                                   is_file=member.isfile() or member.isdir())
                parts = PurePosixPath(member.name).parts
                if any(p.startswith(".") and p != "." for p in parts):
                    continue
                split_at = [i for i, p in enumerate(parts) if p in SPLITS]
                if not split_at:
                    continue
                i = split_at[0]
                rest = parts[i + 1:]
                if member.isdir() and len(rest) == 1:
                    names_by_split.setdefault(parts[i], {}).setdefault(rest[0], [])
                    continue
                if not member.isfile():
                    continue
                if len(rest) != 2 or not images.is_image_name(rest[1]):
                    skipped.append(member.name)
                    continue
                install.check_member(path, member.name, member.size, max_member, what)
                total += member.size
                if total > max_total:
                    raise DataError(f"{path}: its images add up to over the {max_total / MiB:.0f} MiB "
                                    f"limit for {what}s; refusing to read more")
                data = tar.extractfile(member).read()
                names_by_split.setdefault(parts[i], {}).setdefault(rest[0], []).append((member.name, data))
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a readable tar archive, truncated or corrupt{tar_detail(e)}") from None
    tree = _tree_entries(names_by_split, path)
    _warn_skipped_files(skipped, path)
    return tree


def count_image_tree(root: Path) -> tuple[dict, int]:
    """Count the image files of ``root/<split>/<class>/`` without decoding
    them. Returns ({split: number of images}, number of class folders in the
    first split). Hidden files and non-image names are not counted, links to
    folders are not followed. Raises DataError for an unreadable folder."""
    counts, n_classes = {}, None
    for split in SPLITS:
        folder = root / split
        if not folder.is_dir():
            continue
        classes = [e for e in _scan(folder) if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")]
        if n_classes is None:
            n_classes = len(classes)
        counts[split] = sum(1 for c in classes for f in _scan(c.path)
                            if not f.name.startswith(".") and f.is_file() and images.is_image_name(f.name))
    return counts, n_classes or 0


def decode_cifar_tree(source: Path, kind: str):
    """Decode a CIFAR-10 JPEG tree (folder or tarball) into arrays, sorted by
    class and file name and then shuffled with a fixed seed. Returns
    ((x_train, y_train), (x_test, y_test), bad) where bad lists
    "<file> <reason>" for skipped images. Raises DataError."""
    if kind == "tree":
        listing = load_image_folder(source, shuffle=False)
        tree = {s: (v["paths"], v["labels"], v["classes"]) for s, v in listing.items()}
        names_of = {s: [str(p) for p in v[0]] for s, v in tree.items()}
        srcs_of = {s: v[0] for s, v in tree.items()}
    else:
        raw = tar_tree(source)
        tree, names_of, srcs_of = {}, {}, {}
        for split, classes_files in raw.items():
            files, labels, classes = split_result(classes_files, False, 0, key_of=lambda f: f[0])
            tree[split] = (files, labels, classes)
            names_of[split] = [f"{source}:{f[0]}" for f in files]
            srcs_of[split] = [f[1] for f in files]
    for split in ("train", "test"):
        if split not in tree:
            raise DataError(f"{source}: no {split}/ folder (CIFAR-10 needs train/<class>/ and test/<class>/)")
        classes = tree[split][2]
        if tuple(classes) != CIFAR10_CLASSES:
            raise DataError(f"{source}/{split}: class folders are {', '.join(classes)}; "
                            f"CIFAR-10 needs exactly {', '.join(CIFAR10_CLASSES)}")
    if "valid" in tree:
        warnings.warn(f"{source}: ignoring valid/ (CIFAR-10 has train and test only)", stacklevel=3)
    out, all_bad = [], []
    for k, split in enumerate(("train", "test")):
        labels = tree[split][1]
        x, bad = images.decode_many(srcs_of[split], (32, 32, 3), names_of[split],
                                    MAX_CIFAR_SIDE ** 2, MAX_CIFAR_IMAGE_BYTES,
                                    "a CIFAR-10 image (they are 32x32)")
        images.report_bad_images([b for _, b in bad], len(x), f"{source} ({split})")
        if bad:
            keep = np.ones(len(x), bool)
            keep[[i for i, _ in bad]] = False
            x, labels = x[keep], labels[keep]
            all_bad += [b for _, b in bad]
        order = np.random.default_rng(k).permutation(len(x))
        out.append(formats.check_arrays(x[order], labels[order], (32, 32, 3), 10,
                                 f"{source} ({split})", CIFAR10_CLASSES))
    return out[0], out[1], all_bad


_CACHE_VERSION = 1


def _source_key(source: Path) -> str:
    """Return a short hash of a source's size and modification time (for a
    folder: the count, total size and latest mtime of its files), so a
    changed source gets a new cache. Raises DataError for a folder holding
    links out of or around it (see install.tree_files)."""
    if source.is_file():
        st = source.stat()
        sig = f"{st.st_size}:{st.st_mtime_ns}"
    else:
        count = size = latest = 0
        for f in install.tree_files(source)[0]:
            st = f.stat()
            count, size, latest = count + 1, size + st.st_size, max(latest, st.st_mtime_ns)
        sig = f"{count}:{size}:{latest}"
    return hashlib.sha1(f"{sig}:{_CACHE_VERSION}".encode()).hexdigest()[:10]


def _cache_name(source: Path) -> tuple[str, str]:
    """Return (prefix shared by every cache of this source, full file name)."""
    where = hashlib.sha1(str(source.resolve()).encode()).hexdigest()[:8]
    prefix = f"{source.name}.{where}."
    return prefix, f"{prefix}{_source_key(source)}.decoded.npz"


def cache_dirs(source: Path) -> list[Path]:
    """Folders for a source's decode cache, most preferred first: the repo's
    data folder (git-ignored; keeps shared or read-only source folders
    clean), the source's own folder, then the Keras cache."""
    dirs = [lookup.REPO_DATA_DIR] if lookup.REPO_DATA_DIR.is_dir() else []
    for d in (source.parent, lookup.keras_cache_dir()):
        if d not in dirs:
            dirs.append(d)
    return dirs


def read_cache(source: Path):
    """Return (train, test, cache path) from a valid cache of ``source``, or
    None when there is none. A damaged cache is reported and ignored."""
    _, name = _cache_name(source)
    for d in cache_dirs(source):
        install.sweep_stale(d)
        path = d / name
        if not path.is_file():
            continue
        try:
            a = formats.read_npz(path, ("x_train", "y_train", "x_test", "y_test", "bad"))
            train = formats.check_arrays(a["x_train"], a["y_train"], (32, 32, 3), 10, str(path), CIFAR10_CLASSES)
            test = formats.check_arrays(a["x_test"], a["y_test"], (32, 32, 3), 10, str(path), CIFAR10_CLASSES)
        except Exception as e:
            warnings.warn(f"ignoring the damaged decode cache {path} ({one_line(e)}); decoding again",
                          stacklevel=3)
            continue
        if len(a["bad"]):
            warnings.warn(f"{source}: skipped {len(a['bad'])} unusable image(s) when it was decoded: "
                          f"{images.a_few(list(a['bad']))}", stacklevel=3)
        return train, test, path
    return None


def write_cache(source: Path, train, test, bad) -> Path | None:
    """Write the decoded arrays to the first cache folder that takes them
    (atomically, through a temporary name that is removed on every way out,
    Ctrl-C included), removing older caches of the same source there.
    Returns the cache path, or None when no folder was writable (warned)."""
    prefix, name = _cache_name(source)
    for d in cache_dirs(source):
        try:
            d.mkdir(parents=True, exist_ok=True)
            with install.temp_file(d, name) as (tmp, f):
                np.savez(f, x_train=train[0], y_train=train[1], x_test=test[0], y_test=test[1],
                         bad=np.asarray(bad, dtype=str))
                f.flush()
                os.replace(tmp, d / name)
        except OSError:
            continue
        for old in d.glob(f"{prefix}*.decoded.npz"):
            if old.name != name:
                old.unlink(missing_ok=True)
        return d / name
    warnings.warn(f"could not write a decode cache for {source} in any of "
                  f"{', '.join(map(str, cache_dirs(source)))}; it will be decoded again next time",
                  stacklevel=3)
    return None


def load_cifar_tree(source: Path, kind: str):
    """Load a CIFAR-10 JPEG tree through its decode cache. Returns (train,
    test, note) where note says where the cache is."""
    cached = read_cache(source)
    if cached:
        return cached[0], cached[1], f"JPEG copy, decoded cache {cached[2]}"
    print(f"Decoding the CIFAR-10 JPEG images in {source} once; the arrays are cached "
          "for later loads.", file=sys.stderr)
    train, test, bad = decode_cifar_tree(source, kind)
    path = write_cache(source, train, test, bad)
    return train, test, f"JPEG copy, decoded{f' and cached in {path}' if path else ''}"

