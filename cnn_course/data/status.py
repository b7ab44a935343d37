"""``python -m cnn_course data status``: what is found locally, where, and
how to get the rest, without downloading or decoding anything."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

from .catalog import CIFAR10_PICKLES, DATASETS, GET
from .errors import DataError, one_line
from . import backbones, dog_features, dogs, formats, places, trees, weights


def _how(name: str) -> str:
    return (f"get {GET[name]} into {places.import_dir()}, or run `python -m cnn_course data fetch {name}` "
            f"or `python -m cnn_course data import {name} PATH`")


def _status_vgg16(name: str) -> tuple[str, str | None, str]:
    """(status, where, how) for the two VGG16 weight files, each checked
    (signature, layers, md5 of the official file)."""
    hits = []
    for top in (False, True):
        path = weights.find_vgg16(top)[0]
        if path is None:
            continue
        try:
            weights.check_vgg16_h5(path, expected_top=top)
        except DataError as e:
            return "broken", str(path), f"broken: {e}; {_how(name)}"
        hits.append(path)
    if not hits:
        return "missing", None, _how(name)
    return "found", ", ".join(map(str, hits)), "" if len(hits) == 2 else f"only one of the two files; {_how(name)}"


def _check_cheaply(name: str, kind: str, source: Path) -> None:
    """Check a found dataset without decoding it: the npz's keys and shapes,
    the pickles' presence, the tree's layout, the zip's directory. Raises
    DataError (or OSError) saying what is wrong."""
    if kind == "npz":
        formats.check_mnist_npz(source)
    elif kind == "pickles":
        missing = [f for f in CIFAR10_PICKLES if not (source / f).is_file()]
        if missing:
            raise DataError(f"{source}: missing {', '.join(missing)}")
    elif kind == "tree" and name == "cifar10":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trees.load_image_folder(source, shuffle=False)
    elif kind == "tree":
        dogs.check_dog_tree(source)
    elif kind == "zip":
        with zipfile.ZipFile(source) as z:
            z.infolist()
    # tarballs: places.detect has opened them and read their first members


def _status_found(name: str) -> tuple[str, str | None, str]:
    """(status, where, how) for a dataset found by places.find, checked
    cheaply (see _check_cheaply)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kind, source, _ = places.find(name)
    except (DataError, OSError) as e:
        return "broken", None, f"broken: {one_line(e)}; {_how(name)}"
    if kind is None:
        return "missing", None, _how(name)
    try:
        _check_cheaply(name, kind, source)
    except (DataError, OSError, zipfile.BadZipFile) as e:
        reason = str(e) if isinstance(e, DataError) else f"{source}: not readable ({one_line(e)})"
        return "broken", str(source), f"broken: {reason}; {_how(name)}"
    return "found", str(source), ""


def _status_weights(name: str) -> tuple[str, str | None, str]:
    """(status, where, how) for the backbone weights files found (any backbone)."""
    found = backbones.found_weights()
    if not found:
        return "missing", None, (f"none found; get {GET[name]} into {places.import_dir()}, or run "
                             "`python -m cnn_course data import weights FILE`")
    return "found", ", ".join(map(str, found)), ""


def _status_dog_features(name: str) -> tuple[str, str | None, str]:
    """(status, where, how) for the original course's precomputed dog features."""
    found = [p for p in map(dog_features.find_dog_features, dog_features.DOG_FEATURE_FILES) if p]
    if not found:
        return "missing", None, (f"optional: {GET[name]}, with the original dogImages; "
                             "`python -m cnn_course data import dog-features FILE`")
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
    usable, without downloading or decoding anything (cheap checks only:
    an npz's keys and shapes, a tree's layout, a weights file's signature,
    layers and md5).

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
