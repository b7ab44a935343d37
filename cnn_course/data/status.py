"""``python -m cnn_course data status``: what is found locally, where, and
how to get the rest, without downloading or decoding anything."""

from __future__ import annotations

import warnings

from .catalog import DATASETS, GET
from .errors import DataError
from . import backbones, dog_features, places, weights


def _how(name: str) -> str:
    return (f"get {GET[name]} into {places.import_dir()}, or run `python -m cnn_course data fetch {name}` "
            f"or `python -m cnn_course data import {name} PATH`")


def _status_vgg16(name: str) -> tuple[bool, str | None, str]:
    """(found, where, how) for the two VGG16 weight files."""
    hits = [p for p in (weights.find_vgg16(False)[0], weights.find_vgg16(True)[0]) if p]
    if not hits:
        return False, None, _how(name)
    return True, ", ".join(map(str, hits)), "" if len(hits) == 2 else f"only one of the two files; {_how(name)}"


def _status_found(name: str) -> tuple[bool, str | None, str]:
    """(found, where, how) for a dataset found by places.find."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kind, source, _ = places.find(name)
    except (DataError, OSError) as e:
        return False, None, f"unusable: {e}; {_how(name)}"
    if kind is None:
        return False, None, _how(name)
    return True, str(source), ""


def _status_weights(name: str) -> tuple[bool, str | None, str]:
    """(found, where, how) for the backbone weights files found (any backbone)."""
    found = backbones.found_weights()
    if not found:
        return False, None, (f"none found; get {GET[name]} into {places.import_dir()}, or run "
                             "`python -m cnn_course data import weights FILE`")
    return True, ", ".join(map(str, found)), ""


def _status_dog_features(name: str) -> tuple[bool, str | None, str]:
    """(found, where, how) for the original course's precomputed dog features."""
    found = [p for p in map(dog_features.find_dog_features, dog_features.DOG_FEATURE_FILES) if p]
    if not found:
        return False, None, (f"optional: {GET[name]}, with the original dogImages; "
                             "`python -m cnn_course data import dog-features FILE`")
    return True, ", ".join(map(str, found)), ""


# name -> check(name) returning (found, where, how). A new dataset adds its
# name to catalog.DATASETS and a function here.
STATUS_CHECKS = {
    "mnist": _status_found,
    "cifar10": _status_found,
    "dogs": _status_found,
    "vgg16": _status_vgg16,
    "weights": _status_weights,
    "dog-features": _status_dog_features,
}


def dataset_status() -> list[dict]:
    """Say, for each of DATASETS, whether it is available locally, without
    downloading or decoding anything.

    Returns one dict per dataset: {"name", "found": bool, "where": str or
    None, "how": str} where "how" says how to get it (or, for something found
    but unusable, what is wrong). Raises nothing."""
    out = []
    for name in DATASETS:
        found, where, how = STATUS_CHECKS[name](name)
        out.append({"name": name, "found": found, "where": where, "how": how})
    return out
