"""ImageNet weights of the transfer-learning backbones (VGG16, ResNet50, MobileNetV2) for ``keras.applications``:
looked for under their Keras names in the data folders (and their ``keras-models/`` and ``models/``), then
``$KERAS_HOME/models``; else downloaded through Keras where allowed."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from . import install, lookup
from .catalog import LESSON_ALPHA, LESSON_BACKBONE, RESNET50_MD5, VGG16_MD5, DataError, DatasetNotFound, one_line

BACKBONES = ("VGG16", "ResNet50", "MobileNetV2")
MOBILENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
MOBILENET_SIZES = (96, 128, 160, 192, 224)  # input sizes with published MobileNetV2 weights
BASE_URLS = {
    name: f"https://storage.googleapis.com/tensorflow/keras-applications/{folder}/"
    for name, folder in (("VGG16", "vgg16"), ("ResNet50", "resnet"), ("MobileNetV2", "mobilenet_v2"))
}
CLASS_INDEX_FILE = "imagenet_class_index.json"
NAME_RE = re.compile(
    r"^(?:(vgg16|resnet50)_weights_tf_dim_ordering_tf_kernels(_notop)?"
    r"|mobilenet_v2_weights_tf_dim_ordering_tf_kernels_([0-9.]+)_(\d+)(_no_top)?)\.h5$"
)


def check_backbone(backbone, alpha=1.0):
    """(backbone, alpha as a float for MobileNetV2, else None); ValueError for an unknown one."""
    if backbone not in BACKBONES:
        raise ValueError(f"BACKBONE must be one of {', '.join(BACKBONES)}, not {backbone!r}")
    if backbone != "MobileNetV2":
        return backbone, None
    if not isinstance(alpha, (int, float)) or float(alpha) not in MOBILENET_ALPHAS:
        raise ValueError(f"ALPHA for MobileNetV2 must be one of {', '.join(map(str, MOBILENET_ALPHAS))} (with weights)")
    return backbone, float(alpha)


def weights_file_name(backbone, include_top=False, alpha=1.0, size=224):
    """The file name Keras downloads for these weights (MobileNetV2: other sizes use 224's, as Keras)."""
    backbone, alpha = check_backbone(backbone, alpha)
    if backbone == "MobileNetV2":
        rows = int(size) if int(size) in MOBILENET_SIZES else 224
        return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_{rows}{'' if include_top else '_no_top'}.h5"
    return f"{backbone.lower()}_weights_tf_dim_ordering_tf_kernels{'' if include_top else '_notop'}.h5"


def weights_folders():
    """The (label, folder) places searched for weights files, in order."""
    places = [
        (label, root / sub) for label, root in lookup.search_places()[:-1] for sub in ("", "keras-models", "models")
    ]
    return places + [("the Keras models cache", lookup.keras_home() / "models")]


def backbone_weights(backbone="VGG16", alpha=1.0, include_top=False, size=224, quick=None, required=True):
    """Choose ``weights=`` for ``keras.applications.<backbone>`` and print one ``Weights:`` line: a found file
    (check_h5), else one downloaded through Keras unless offline or quick, else in quick mode None (random
    weights, a STAND-IN); with ``required`` False, None in any mode. Returns (weights, description). Raises
    ValueError (backbone, alpha), DataError (a damaged file), DatasetNotFound (not quick, no file)."""
    backbone, alpha = check_backbone(backbone, alpha)
    name = weights_file_name(backbone, include_top, alpha, size)
    shown = f"{backbone} (alpha {alpha})" if alpha else backbone  # as printed: "MobileNetV2 (alpha 0.35)"
    what = f"{shown} ImageNet weights{' with the top' if include_top else ''}"
    url, quick = BASE_URLS[backbone] + name, lookup.quick_mode(quick)
    looked = [(folder / name, label) for label, folder in weights_folders()]
    path = next((p for p, _ in looked if p.is_file()), None)
    if path is not None:
        check_h5(path)  # a damaged file is named here, not deep inside Keras
        if include_top and not install_class_index():
            path, name = None, f"{name} and {CLASS_INDEX_FILE}"  # decode_predictions could not name the classes
    failed = f"Nothing was downloaded because CNN_COURSE_OFFLINE={os.environ.get('CNN_COURSE_OFFLINE')}."
    if path is None and not quick and not lookup.offline():
        try:
            md5 = {"VGG16": VGG16_MD5, "ResNet50": RESNET50_MD5}.get(backbone, (None, None))[0 if include_top else 1]
            path = install.get_file(name, url, md5, "models")
            check_h5(path)
        except DatasetNotFound as e:
            failed = f"The download failed: {e}."
    if path is not None:
        weights, description = str(path), f"{what} (real, from {path})"
    elif not required:
        reason = "" if quick or lookup.offline() else f"; {failed[:-1]}"
        weights, description = None, f"{what}: not found ({name}{reason}), so this step is left out"
    elif quick:
        default = (backbone, alpha) == (LESSON_BACKBONE, LESSON_ALPHA)
        how = "`python -m cnn_course data fetch weights` gets it" if default else f"get it from {url}"
        weights, description = None, f"STAND-IN: random weights for {shown} ({name} not found; {how})"
    else:
        lines = [f"The {what} were not found: {name}. Looked in, in order:"]
        lines += [f"  {i}. {p} ({label})" for i, (p, label) in enumerate(looked, 1)] + [failed]
        raise DatasetNotFound("\n".join(lines + [f"Get {name} ({url}) and put it in one of those folders."]))
    print(f"Weights: {description}")
    return weights, description


def read_class_index(path):
    """The 1,000 ImageNet class names of a class-index JSON file; DataError (a ValueError) for anything else."""
    try:
        index = json.loads(Path(path).read_text(encoding="utf-8"))
        return [index[str(i)][1] for i in range(1000)]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise DataError(f"{path} is not an ImageNet class index ({exc})") from None


def install_class_index():
    """Copy a complete ``imagenet_class_index.json`` found in weights_folders into ``$KERAS_HOME/models``
    (where decode_predictions reads it) when missing there; True when it is there or may be downloaded."""
    target = lookup.keras_home() / "models" / CLASS_INDEX_FILE
    for folder in [target.parent] + [folder for _, folder in weights_folders()]:
        try:
            read_class_index(folder / CLASS_INDEX_FILE)
            if folder != target.parent:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(folder / CLASS_INDEX_FILE, target)  # checked again when next read
            return True
        except (ValueError, OSError):
            continue
    return not lookup.offline()


def check_h5(path: Path) -> None:
    """Check a Keras .h5 weights file before Keras reads it: the HDF5 signature, readable, no external
    links (a small stub could read any file as its weights). Raises DataError naming the file."""
    try:
        with open(path, "rb") as f:
            if f.read(8) != b"\x89HDF\r\n\x1a\n":
                raise DataError(f"{path}: not a readable Keras .h5 weights file: not an HDF5 file (no HDF5 signature)")
        import h5py

        with h5py.File(path, "r") as f:
            link = f.visititems_links(lambda name, link: name if isinstance(link, h5py.ExternalLink) else None)
            if link:
                target = f.get(link, getlink=True).filename
                raise DataError(f"{path}: /{link} is a link to {target}; refusing weights that read other files")
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{path}: not a readable HDF5 weights file, truncated or corrupt ({one_line(e)})") from None


def found_weights():
    """The Keras weights files of BACKBONES in weights_folders, by their Keras names (nothing opened)."""
    found = []
    for folder in (folder for _, folder in weights_folders() if folder.is_dir()):
        found += [p for p in sorted(folder.iterdir()) if p.is_file() and NAME_RE.match(p.name) and p not in found]
    return found
