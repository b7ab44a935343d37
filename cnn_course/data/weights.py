"""The VGG16 ImageNet weights: finding the Keras ``.h5`` files like datasets
and checking them."""

from __future__ import annotations

import os
from pathlib import Path

from .catalog import VGG16_FILES, VGG16_URL
from .errors import DataError, DatasetNotFound
from .places import keras_home, offline, quick_mode
from . import places


def check_vgg16_h5(path: Path) -> bool:
    """Check that ``path`` holds Keras VGG16 weights. Returns True when it has
    the classifier (fc1/fc2/predictions), False when not. Raises DataError."""
    try:
        import h5py

        with h5py.File(path, "r") as f:
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in f.attrs.get("layer_names", [])]
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{path}: not a readable HDF5 weights file ({type(e).__name__}: {e})") from None
    if "block1_conv1" not in names:
        raise DataError(f"{path}: not VGG16 weights (no block1_conv1 layer)")
    return "predictions" in names


def find_vgg16(include_top: bool) -> tuple[Path | None, list[str]]:
    """Return (path of the weights file or None, places looked)."""
    fname = VGG16_FILES[include_top][0]
    looked = []
    for label, folder in places.search_places("vgg16"):
        looked.append(f"{folder / fname} ({label})")
        if (folder / fname).is_file():
            return folder / fname, looked
    return None, looked


def vgg16_weights(include_top=True, quick=None):
    """Choose the VGG16 ImageNet weights for ``keras.applications.VGG16``:
    the Keras .h5 file from the data folders or ``$KERAS_HOME/models``; else
    "imagenet" (Keras downloads them) unless CNN_COURSE_OFFLINE=1 or
    ``quick``; in quick mode with nothing found, None (random weights, a
    stand-in). Prints one line ``Weights: <description>``.

    Returns (weights, description) with weights a file path (str),
    "imagenet" or None. Raises DatasetNotFound (offline, not quick, not
    found) naming the file and its URL."""
    quick = quick_mode(quick)
    fname = VGG16_FILES[include_top][0]
    path, looked = find_vgg16(include_top)
    if path is not None:
        weights, description = str(path), f"VGG16 ImageNet weights (from {path})"
    elif quick:
        weights = None
        description = (f"STAND-IN: random weights (VGG16 ImageNet weights {fname} not found; "
                       "`python -m cnn_course data fetch vgg16` gets them)")
    elif offline():
        lines = [f"The VGG16 ImageNet weights {fname} were not found. Looked in, in order:"]
        lines += [f"  {i}. {p}" for i, p in enumerate(looked, 1)]
        lines.append(f"Nothing was downloaded because CNN_COURSE_OFFLINE={os.environ.get('CNN_COURSE_OFFLINE')}.")
        lines.append(f"Get {fname} ({VGG16_URL}{fname}) and put it in {places.import_dir()} or "
                     f"{keras_home() / 'models'}; or run `python -m cnn_course data fetch vgg16`, or "
                     "`python -m cnn_course data import vgg16 PATH`.")
        raise DatasetNotFound("\n".join(lines))
    else:
        weights = "imagenet"
        description = f"VGG16 ImageNet weights (Keras downloads {fname} into {keras_home() / 'models'})"
    print(f"Weights: {description}")
    return weights, description

