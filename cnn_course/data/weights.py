"""The VGG16 ImageNet weights: finding the Keras ``.h5`` files like datasets
and checking them."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .catalog import VGG16_FILES, VGG16_URL
from .errors import DataError, DatasetNotFound, one_line
from .lookup import keras_home, offline, quick_mode
from . import lookup


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# file name -> the md5 Keras checks when it downloads the file
KNOWN_MD5 = {fname: md5 for fname, md5 in VGG16_FILES.values()}


def check_h5_signature(path: Path) -> None:
    """Check that ``path`` starts like an HDF5 file (the signature Keras
    .h5 weights start with). Raises DataError naming the file."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(HDF5_SIGNATURE))
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e})") from None
    if head != HDF5_SIGNATURE:
        raise DataError(f"{path}: not an HDF5 file (no HDF5 signature at its start), so not Keras weights")


def check_no_external_links(f, path: Path) -> None:
    """Refuse an HDF5 file (``f``, open with h5py) that reaches into other
    files: an external link makes a small stub read any file as its weights.
    Walks every group without following links. Returns None. Raises
    DataError naming the file and the link."""
    import h5py

    groups = [f]
    while groups:
        group = groups.pop()
        for name in group:
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise DataError(f"{path}: {group.name.rstrip('/')}/{name} is a link to {link.filename}; "
                                "refusing weights that read other files")
            if isinstance(link, h5py.HardLink) and isinstance(group.get(name), h5py.Group):
                groups.append(group[name])


def file_md5(path: Path) -> str:
    """Return the md5 hex digest of a file. Raises OSError."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(4 * 2**20), b""):
            h.update(block)
    return h.hexdigest()


def check_known_hash(path: Path, fname: str) -> None:
    """Check ``path`` against the known md5 of the official file ``fname``
    (KNOWN_MD5), when there is one. Raises DataError naming both."""
    expected = KNOWN_MD5.get(fname)
    if not expected:
        return
    try:
        got = file_md5(path)
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e})") from None
    if got != expected:
        raise DataError(f"{path}: md5 {got} is not the md5 {expected} of the official {fname}; "
                        "the file is damaged, truncated or not those weights")


def check_vgg16_h5(path: Path, check_hash: bool = True, expected_top: bool | None = None) -> bool:
    """Check that ``path`` holds Keras VGG16 weights: the HDF5 signature, a
    readable file with VGG16's layers and, with ``check_hash``, the md5 of
    the official file (KNOWN_MD5), and no link to another file.
    ``expected_top`` (when not None) is whether it must have the classifier.

    Returns True when it has the classifier (fc1/fc2/predictions), False when
    not. Raises DataError naming the file and what is wrong."""
    check_h5_signature(path)
    try:
        import h5py

        with h5py.File(path, "r") as f:
            check_no_external_links(f, path)
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in f.attrs.get("layer_names", [])]
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{path}: not a readable HDF5 weights file, truncated or corrupt "
                        f"({one_line(e)})") from None
    if "block1_conv1" not in names:
        raise DataError(f"{path}: not VGG16 weights (no block1_conv1 layer)")
    top = "predictions" in names
    if expected_top is not None and top != expected_top:
        raise DataError(f"{path}: VGG16 weights {'with' if top else 'without'} the classifier, "
                        f"expected {'with' if expected_top else 'without'}")
    if check_hash:
        check_known_hash(path, VGG16_FILES[top][0])
    return top


def find_vgg16(include_top: bool) -> tuple[Path | None, list[str]]:
    """Return (path of the weights file or None, places looked)."""
    fname = VGG16_FILES[include_top][0]
    looked = []
    for label, folder in lookup.search_places("vgg16"):
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
    found) naming the file and its URL; DataError naming a file that is
    found but damaged (signature, layers, md5 of the official file)."""
    quick = quick_mode(quick)
    fname = VGG16_FILES[include_top][0]
    path, looked = find_vgg16(include_top)
    if path is not None:
        check_vgg16_h5(path, expected_top=include_top)
        weights, description = str(path), f"VGG16 ImageNet weights (from {path})"
    elif quick:
        weights = None
        description = (f"STAND-IN: random weights (VGG16 ImageNet weights {fname} not found; "
                       "`python -m cnn_course data fetch vgg16` gets them)")
    elif offline():
        lines = [f"The VGG16 ImageNet weights {fname} were not found. Looked in, in order:"]
        lines += [f"  {i}. {p}" for i, p in enumerate(looked, 1)]
        lines.append(f"Nothing was downloaded because CNN_COURSE_OFFLINE={os.environ.get('CNN_COURSE_OFFLINE')}.")
        lines.append(f"Get {fname} ({VGG16_URL}{fname}) and put it in {lookup.import_dir()} or "
                     f"{keras_home() / 'models'}; or run `python -m cnn_course data fetch vgg16`, or "
                     "`python -m cnn_course data import vgg16 PATH`.")
        raise DatasetNotFound("\n".join(lines))
    else:
        weights = "imagenet"
        description = f"VGG16 ImageNet weights (Keras downloads {fname} into {keras_home() / 'models'})"
    print(f"Weights: {description}")
    return weights, description

