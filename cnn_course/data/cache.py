"""The decode cache: a CIFAR-10 JPEG tree is decoded once and its arrays
are kept in an ``.decoded.npz`` keyed on the source's size and mtime."""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from .catalog import CIFAR10_CLASSES
from .errors import one_line
from .lookup import keras_cache_dir
from . import formats, image_folders, images, install, lookup


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
    for d in (source.parent, keras_cache_dir()):
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
    train, test, bad = image_folders.decode_cifar_tree(source, kind)
    path = write_cache(source, train, test, bad)
    return train, test, f"JPEG copy, decoded{f' and cached in {path}' if path else ''}"

