"""``python -m cnn_course data status``: what is found locally, where, and
how to get the rest, without downloading or decoding anything."""

from __future__ import annotations

import pickletools
import tarfile
import time
import warnings
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from .catalog import CIFAR10_PICKLES, DATASETS, GET, MAX_CIFAR_PICKLE_BYTES, MiB, SPLITS
from .errors import DataError, one_line, tar_detail
from . import backbones, dog_features, dogs, formats, image_folders, lookup

# How long `data status` may spend listing one tarball's members (the real
# CIFAR-10 tarball is listed in a second, the course's JPEG copy of 60,000
# images in 2 to 3 s on a busy 2-core machine); past it the tarball is
# reported "found, not checked".
TAR_LISTING_SECONDS = 15.0

# What a CIFAR-10 pickle may import: what the loader's unpickler allows.
_PICKLE_GLOBALS = formats._CifarUnpickler._ALLOWED
_PICKLE_STRINGS = {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "SHORT_BINUNICODE",
                   "BINUNICODE", "BINUNICODE8"}


class NotChecked(Exception):
    """A cheap check could not finish: the dataset is found but not checked."""


def _how(name: str) -> str:
    return (f"get {GET[name]} into {lookup.import_dir()}, or run `python -m cnn_course data fetch {name}` "
            f"or `python -m cnn_course data import {name} PATH`")


def _status_vgg16(name: str) -> tuple[str, str | None, str]:
    """(status, where, how) for the two VGG16 weight files, each checked
    (signature, layers, md5 of the official file)."""
    hits = []
    for top in (False, True):
        path = backbones.find_vgg16(top)[0]
        if path is None:
            continue
        try:
            backbones.check_vgg16_h5(path, expected_top=top)
        except DataError as e:
            return "broken", str(path), f"broken: {e}; {_how(name)}"
        hits.append(path)
    if not hits:
        return "missing", None, _how(name)
    return "found", ", ".join(map(str, hits)), "" if len(hits) == 2 else f"only one of the two files; {_how(name)}"


def _pickle_imports(path: Path):
    """Yield the (module, name) pairs the pickle file ``path`` would import,
    read with pickletools, never unpickled: GLOBAL and INST name them, and
    STACK_GLOBAL takes the last two strings pushed (directly or from the
    memo; anything else gives None). Raises ValueError for a file that is
    not a pickle, OSError when it cannot be read."""
    memo, stack = {}, []  # stack: the last values pushed, a string or None
    with open(path, "rb") as f:
        for op, arg, _ in pickletools.genops(f):
            if op.name in ("GLOBAL", "INST"):
                yield tuple(arg.split(" ", 1))
            elif op.name == "STACK_GLOBAL":
                yield (stack[-2], stack[-1]) if len(stack) >= 2 else (None, None)
            if op.name in _PICKLE_STRINGS:
                stack.append(arg)
            elif op.name == "MEMOIZE":
                memo[len(memo)] = stack[-1] if stack else None
            elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[arg] = stack[-1] if stack else None
            elif op.name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo.get(arg))
            elif op.name not in ("PROTO", "FRAME", "STOP"):
                stack.append(None)
            del stack[:-2]


def _check_pickles(source: Path) -> None:
    """Check a CIFAR-10 pickles folder without unpickling it: every batch
    there, within MAX_CIFAR_PICKLE_BYTES, a well-formed pickle that imports
    only what the loader allows. Raises DataError (or OSError)."""
    missing = [f for f in CIFAR10_PICKLES if not (source / f).is_file()]
    if missing:
        raise DataError(f"{source}: missing {', '.join(missing)}")
    for name in CIFAR10_PICKLES:
        path = source / name
        if path.stat().st_size > MAX_CIFAR_PICKLE_BYTES:
            raise DataError(f"{path}: {path.stat().st_size / MiB:.0f} MiB, over the "
                            f"{MAX_CIFAR_PICKLE_BYTES / MiB:.0f} MiB limit for one CIFAR-10 batch")
        try:
            refused = next((g for g in _pickle_imports(path) if g not in _PICKLE_GLOBALS), None)
        except ValueError as e:
            raise DataError(f"{path}: not a readable pickle ({one_line(e)})") from None
        if refused is not None:
            what = ".".join(str(part) for part in refused)
            raise DataError(f"{path}: would import {what}, which a CIFAR-10 batch never does; "
                            "it is not loaded (it could run code)")


def _tar_members_found(source: Path, needed: set, tokens) -> set:
    """List the members of the tarball ``source`` until each of ``needed``
    has been seen, where ``tokens(member path)`` gives what a member shows.
    Returns the needed tokens seen. Raises DataError for an unreadable
    archive, NotChecked when listing takes over TAR_LISTING_SECONDS."""
    seconds = TAR_LISTING_SECONDS
    seen = set()
    deadline = time.monotonic() + seconds
    try:
        with tarfile.open(source) as tar:
            for member in tar:
                seen.update(needed.intersection(tokens(PurePosixPath(member.name))))
                if seen == needed:
                    break
                if time.monotonic() > deadline:
                    raise NotChecked(f"listing its members took over {seconds:g} s")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{source}: not a readable tar archive, truncated or corrupt{tar_detail(e)}") from None
    return seen


def _check_tarball(name: str, kind: str, source: Path) -> None:
    """Check a tarball by its member names: CIFAR-10's six pickles, or an
    image tree's splits. Raises DataError saying what is missing, NotChecked
    when the listing takes too long."""
    if kind == "pickles-tar":
        needed, what = set(CIFAR10_PICKLES), "CIFAR-10's pickles"

        def tokens(path):
            return (path.name,)
    else:
        needed = {"train", "test"} if name == "cifar10" else set(SPLITS)
        what = f"the image folders {', '.join(s + '/' for s in sorted(needed))}"

        def tokens(path):
            return path.parts[:-1]
    lacking = sorted(needed - _tar_members_found(source, needed, tokens))
    if lacking:
        raise DataError(f"{source}: not {what}: no {', '.join(lacking)} among its members")


def _check_cheaply(name: str, kind: str, source: Path) -> None:
    """Check a found dataset without decoding it: the npz's keys and shapes,
    the pickles' opcodes (never unpickled), the tree's layout, the zip's
    directory, a tarball's member names. Raises DataError (or OSError)
    saying what is wrong, NotChecked when a check would take too long."""
    if kind == "npz":
        formats.check_mnist_npz(source)
    elif kind == "pickles":
        _check_pickles(source)
    elif kind in ("pickles-tar", "tree-tar", "tar"):
        _check_tarball(name, kind, source)
    elif kind == "tree" and name == "cifar10":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image_folders.load_image_folder(source, shuffle=False)
    elif kind == "tree":
        dogs.check_dog_tree(source)
    elif kind == "zip":
        with zipfile.ZipFile(source) as z:
            for info in z.infolist():  # the directory only: what loading would refuse at once
                if info.flag_bits & 0x1:
                    raise DataError(f"{source}: member {info.filename} is encrypted; "
                                    "give an archive without a password")


def _status_found(name: str) -> tuple[str, str | None, str]:
    """(status, where, how) for a dataset found by lookup.find, checked
    cheaply (see _check_cheaply)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kind, source, _ = lookup.find(name)
    except (DataError, OSError) as e:
        return "broken", None, f"broken: {one_line(e)}; {_how(name)}"
    if kind is None:
        return "missing", None, _how(name)
    try:
        _check_cheaply(name, kind, source)
    except NotChecked as e:
        return "found", f"{source} (found, not checked: {e})", ""
    except (DataError, OSError, zipfile.BadZipFile) as e:
        reason = str(e) if isinstance(e, DataError) else f"{source}: not readable ({one_line(e)})"
        return "broken", str(source), f"broken: {reason}; {_how(name)}"
    return "found", str(source), ""


def _first_broken(paths, check) -> str | None:
    """Return the one-line reason ``check(path)`` gives for the first of
    ``paths`` it refuses (DataError or OSError), or None when all pass."""
    for path in paths:
        try:
            check(path)
        except DataError as e:
            return one_line(e)
        except OSError as e:
            return f"{path}: not readable ({one_line(e)})"
    return None


def _check_h5(path: Path) -> None:
    """Check cheaply that ``path`` is an HDF5 file h5py can open. Raises DataError."""
    backbones.check_h5_signature(path)
    try:
        import h5py

        with h5py.File(path, "r"):
            pass
    except Exception as e:  # h5py raises OSError and others for a damaged file
        raise DataError(f"{path}: not a readable HDF5 file, truncated or corrupt ({one_line(e)})") from None


def _status_weights(name: str) -> tuple[str, str | None, str]:
    """(status, where, how) for the backbone weights files found (any
    backbone), each checked to be a readable HDF5 file."""
    found = backbones.found_weights()
    if not found:
        return "missing", None, (f"none found; get {GET[name]} into {lookup.import_dir()}, or run "
                             "`python -m cnn_course data import weights FILE`")
    reason = _first_broken(found, _check_h5)
    if reason:
        return "broken", ", ".join(map(str, found)), f"broken: {reason}; {_how_weights(name)}"
    return "found", ", ".join(map(str, found)), ""


def _how_weights(name: str) -> str:
    return f"get {GET[name]} into {lookup.import_dir()}, or run `python -m cnn_course data import weights FILE`"


def _check_features_npz(path: Path) -> None:
    """Check cheaply, from the array headers, that ``path`` is an .npz with
    the splits' arrays. Raises DataError."""
    formats.npz_members(path, SPLITS, max_bytes=2**62)  # sizes: checked when imported or used


def _status_dog_features(name: str) -> tuple[str, str | None, str]:
    """(status, where, how) for the original course's precomputed dog
    features, each checked to be an .npz holding train, valid and test."""
    found = [p for p in map(dog_features.find_dog_features, dog_features.DOG_FEATURE_FILES) if p]
    how = (f"optional: {GET[name]}, with the original dogImages; "
           "`python -m cnn_course data import dog-features FILE`")
    if not found:
        return "missing", None, how
    reason = _first_broken(found, _check_features_npz)
    if reason:
        return "broken", ", ".join(map(str, found)), f"broken: {reason}; {how}"
    return "found", ", ".join(map(str, found)), ""


# name -> check(name) returning (status, where, how), status one of "found",
# "missing", "broken". A new dataset adds its name to catalog.DATASETS and a
# function here.
STATUS_CHECKS = {
    "mnist": _status_found,
    "cifar10": _status_found,
    "dogs": _status_found,
    "vgg16": _status_vgg16,
    "weights": _status_weights,
    "dog-features": _status_dog_features,
}


def dataset_status() -> list[dict]:
    """Say, for each of DATASETS, whether it is available locally and
    usable, without downloading, decoding or unpickling anything (cheap
    checks only: an npz's keys and shapes, a tree's layout, a pickle's
    opcodes, a tarball's member names, a weights file's HDF5 signature,
    layers and md5). A check that would take too long (a tarball listed for
    over TAR_LISTING_SECONDS) leaves it found, with "(found, not checked:
    why)" after its path in "where".

    Returns one dict per dataset: {"name", "status": "found", "missing" or
    "broken", "found": bool (status == "found"), "where": str or None,
    "how": str} where "how" says how to get it, or for a broken one
    "broken: REASON; how to get it". Raises SettingError for a bad
    CNN_COURSE_DATA (a usage error, not a dataset's)."""
    out = []
    for name in DATASETS:
        status, where, how = STATUS_CHECKS[name](name)
        out.append({"name": name, "status": status, "found": status == "found", "where": where, "how": how})
    return out
