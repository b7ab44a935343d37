"""ImageNet weights of the transfer-learning backbones (VGG16, ResNet50, MobileNetV2), found like datasets,
and the ``vgg16`` dataset of ``data fetch/import/status`` (the two official VGG16 files, md5-checked).

`backbone_weights` picks what to pass as ``weights=`` to
``keras.applications.VGG16``, ``ResNet50`` or ``MobileNetV2``: a Keras
weights file found in the course's data folders or Keras's model cache, else
"imagenet" (Keras downloads it) where downloads are allowed, else, in a quick
run only, None (random weights, a labelled stand-in). `found_weights` lists the
files found for ``data status``; `import_weights` copies a file in for
``data import weights FILE``; `install_class_index` puts the ImageNet class
names where Keras's ``decode_predictions`` reads them.

A weights file is looked for in: ``$CNN_COURSE_DATA`` and its ``keras-models/``
and ``models/`` subfolders; the repository's ``data/`` (and the same two
subfolders); then ``$KERAS_HOME/models`` (``~/.keras/models``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from .catalog import VGG16_FILES, VGG16_URL
from .errors import DataError, DatasetNotFound, one_line
from .lookup import keras_home, offline, quick_mode
from . import install, lookup

BACKBONES = ("VGG16", "ResNet50", "MobileNetV2")
MOBILENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
MOBILENET_SIZES = (96, 128, 160, 192, 224)  # input sizes with published MobileNetV2 weights
BASE_URLS = {
    "VGG16": "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/",
    "ResNet50": "https://storage.googleapis.com/tensorflow/keras-applications/resnet/",
    "MobileNetV2": "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/",
}
# The layer that tells each backbone's weights file apart, and the MobileNetV2
# layer whose width gives alpha: block_16_project has make_divisible(320 * alpha, 8) filters.
_FIRST_LAYER = {"VGG16": "block1_conv1", "ResNet50": "conv1_conv", "MobileNetV2": "Conv1"}
_MOBILENET_WIDTHS = {112: 0.35, 160: 0.5, 240: 0.75, 320: 1.0, 416: 1.3, 448: 1.4}
CLASS_INDEX_FILE = "imagenet_class_index.json"
_NAME_RE = re.compile(
    r"^(?:(vgg16|resnet50)_weights_tf_dim_ordering_tf_kernels(_notop)?"
    r"|mobilenet_v2_weights_tf_dim_ordering_tf_kernels_([0-9.]+)_(\d+)(_no_top)?)\.h5$")


def check_backbone(backbone, alpha=1.0):
    """Return (backbone, alpha) normalised: alpha is a float for MobileNetV2, None otherwise.

    Raises ValueError (one line) for an unknown backbone, or a MobileNetV2
    alpha without published ImageNet weights.
    """
    if backbone not in BACKBONES:
        raise ValueError(f"BACKBONE must be one of {', '.join(BACKBONES)}, not {backbone!r}")
    if backbone != "MobileNetV2":
        return backbone, None
    try:
        alpha = float(alpha)
    except (TypeError, ValueError):
        alpha = None
    if alpha not in MOBILENET_ALPHAS:
        raise ValueError(f"ALPHA for MobileNetV2 must be one of {', '.join(map(str, MOBILENET_ALPHAS))} "
                         "(the widths with ImageNet weights)")
    return backbone, alpha


def weights_file_name(backbone, include_top=False, alpha=1.0, size=224):
    """Return the file name Keras downloads for these weights (str).

    For MobileNetV2 the name carries alpha and the input size (96-224; other
    sizes use the 224 file, as Keras does). Raises ValueError as check_backbone.
    """
    backbone, alpha = check_backbone(backbone, alpha)
    if backbone == "MobileNetV2":
        rows = int(size) if int(size) in MOBILENET_SIZES else 224
        return (f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_{rows}"
                f"{'' if include_top else '_no_top'}.h5")
    return f"{backbone.lower()}_weights_tf_dim_ordering_tf_kernels{'' if include_top else '_notop'}.h5"


def describe(backbone, alpha):
    """Return the backbone's name as printed, e.g. "MobileNetV2 (alpha 0.35)" or "VGG16"."""
    return f"{backbone} (alpha {alpha})" if backbone == "MobileNetV2" else backbone


def weights_folders():
    """Return the (label, folder) places searched for weights files, in order.
    Raises SettingError for a ``~user`` path variable naming no user."""
    found = []
    env = os.environ.get("CNN_COURSE_DATA")
    roots = ([("$CNN_COURSE_DATA", lookup.user_path(env, "CNN_COURSE_DATA"))] if env else []) + \
        [(lookup.REPO_DATA_LABEL, lookup.REPO_DATA_DIR)]
    for label, root in roots:
        found += [(label, root), (label, root / "keras-models"), (label, root / "models")]
    found.append(("the Keras models cache", lookup.keras_home() / "models"))
    return found


def find_weights(backbone, include_top=False, alpha=1.0, size=224):
    """Return (path of the weights file or None, list of the places looked).

    Raises ValueError as check_backbone.
    """
    name = weights_file_name(backbone, include_top, alpha, size)
    looked = []
    for label, folder in weights_folders():
        looked.append(f"{folder / name} ({label})")
        if (folder / name).is_file():
            return folder / name, looked
    return None, looked


def backbone_weights(backbone="VGG16", alpha=1.0, include_top=False, size=224, quick=None,
                     required=True):
    """Choose ``weights=`` for ``keras.applications.<backbone>`` and print one ``Weights:`` line.

    In order: the Keras weights file from `weights_folders`; "imagenet" (Keras
    downloads it into ``$KERAS_HOME/models``) unless CNN_COURSE_OFFLINE=1 or
    quick mode; in quick mode (`quick`, or ``CNN_COURSE_QUICK`` when None),
    None: random weights, described as a STAND-IN. With `required` False a
    missing file gives None and a line saying so, in any mode.

    Returns (weights, description): weights a path (str), "imagenet" or None.
    Raises ValueError for an unknown backbone or alpha; DataError naming a
    found file that is not HDF5 (truncated or replaced), before Keras reads
    it; DatasetNotFound (required, not quick, offline, not found) naming the
    file, its URL and where to put it.
    """
    backbone, alpha = check_backbone(backbone, alpha)
    name = weights_file_name(backbone, include_top, alpha, size)
    what = f"{describe(backbone, alpha)} ImageNet weights{' with the top' if include_top else ''}"
    path, looked = find_weights(backbone, include_top, alpha, size)
    if path is not None and include_top and not install_class_index():
        path = None  # decode_predictions could not name the classes offline
        name = f"{name} and {CLASS_INDEX_FILE}"
    if path is not None:
        check_h5_signature(path)  # a damaged file is named here, not deep inside Keras
        weights, description = str(path), f"{what} (real, from {path})"
    elif not lookup.quick_mode(quick) and not lookup.offline():
        weights = "imagenet"
        description = f"{what} (real; Keras downloads {name} into {lookup.keras_home() / 'models'})"
    elif not required:
        weights, description = None, f"{what}: not found ({name}), so this step is left out"
    elif lookup.quick_mode(quick):
        weights = None
        description = (f"STAND-IN: random weights for {describe(backbone, alpha)} ({name} not found; "
                       f"`python -m cnn_course data import weights FILE` brings it in)")
    else:
        lines = [f"The {what} were not found: {name}. Looked in, in order:"]
        lines += [f"  {i}. {p}" for i, p in enumerate(looked, 1)]
        lines.append(f"Nothing was downloaded because CNN_COURSE_OFFLINE={os.environ.get('CNN_COURSE_OFFLINE')}.")
        lines.append(f"Get {name} ({BASE_URLS[backbone]}{name}) and put it in one of those folders, "
                     "or run `python -m cnn_course data import weights FILE`.")
        raise DatasetNotFound("\n".join(lines))
    print(f"Weights: {description}")
    return weights, description


def read_class_index(path):
    """Return the 1,000 ImageNet class names in a class-index JSON file, in output order.

    Raises ValueError when the file cannot be read or is not a complete class index.
    """
    try:
        index = json.loads(Path(path).read_text(encoding="utf-8"))
        return [index[str(i)][1] for i in range(1000)]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"{path} is not an ImageNet class index ({exc})") from None


def install_class_index():
    """Make ``imagenet_class_index.json`` available to Keras's ``decode_predictions`` offline.

    Keras reads it from ``$KERAS_HOME/models`` and downloads it when it is not
    there. When it is missing there but found (complete) in another of
    `weights_folders`, it is copied in. Returns True when it is there now or
    Keras may download it (not offline), False otherwise. Raises nothing.
    """
    target = lookup.keras_home() / "models" / CLASS_INDEX_FILE
    if target.is_file():
        return True
    for _, folder in weights_folders():
        candidate = folder / CLASS_INDEX_FILE
        try:
            read_class_index(candidate)
            target.parent.mkdir(parents=True, exist_ok=True)
            install.install_copy(candidate, target, read_class_index)
            return True
        except (ValueError, OSError):
            continue
    return not lookup.offline()


def identify_weights_file(path):
    """Return (backbone, include_top, alpha) of a Keras ``.h5`` weights file, read from its layers.

    alpha is None except for MobileNetV2. Raises DataError (one line) for a
    file that is not readable HDF5, links to another file, or is not the
    weights of one of BACKBONES.
    """
    path = Path(path)
    try:
        import h5py

        with h5py.File(path, "r") as f:
            check_no_external_links(f, path)
            names = [n.decode() if isinstance(n, bytes) else str(n)
                     for n in f.attrs.get("layer_names", [])]
            width = None
            if "block_16_project" in names:
                group = f["block_16_project"]
                kernel = [group[k] for k in group.attrs.get("weight_names", [])]
                width = int(kernel[0].shape[-1]) if kernel else None
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{path}: not a readable Keras .h5 weights file ({type(e).__name__})") from None
    for backbone, layer in _FIRST_LAYER.items():
        if layer in names:
            break
    else:
        raise DataError(f"{path}: not the weights of {', '.join(BACKBONES)} "
                             f"(none of the layers {', '.join(_FIRST_LAYER.values())})")
    include_top = "predictions" in names
    alpha = None
    if backbone == "MobileNetV2":
        alpha = _MOBILENET_WIDTHS.get(width)
        if alpha is None:
            raise DataError(f"{path}: MobileNetV2 weights of a width without ImageNet weights "
                                 f"(block_16_project has {width} filters)")
    return backbone, include_top, alpha


def found_weights():
    """Return the Keras weights files of BACKBONES found in `weights_folders`, as Paths.

    Recognised by their Keras file names; nothing is opened. Raises nothing.
    """
    found = []
    for _, folder in weights_folders():
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue
        found += [p for p in entries if p.is_file() and _NAME_RE.match(p.name) and p not in found]
    return found


def check_loads(path, backbone, include_top, alpha):
    """Load the weights file `path` into the model it is named for, as a
    lesson will: ``keras.applications.<backbone>(weights=path)``, so every
    layer's shapes must match. Returns None. Raises DataError (one line)
    naming the file and Keras's reason."""
    from ..keras_check import import_keras

    keras = import_keras()
    build = getattr(keras.applications, backbone)
    kwargs = {"alpha": alpha} if backbone == "MobileNetV2" else {}
    try:
        build(weights=str(path), include_top=include_top, **kwargs)
    except Exception as e:
        raise DataError(f"{path}: does not load into {describe(backbone, alpha)} "
                        f"{'with' if include_top else 'without'} the top: {one_line(e)[:300]}") from None
    finally:
        keras.backend.clear_session()


def import_weights(src, dest_dir):
    """Copy the weights file `src` into `dest_dir` under the name Keras looks for; return that Path.

    The file is checked first (`identify_weights_file`); a MobileNetV2 file
    keeps the input size of its name when it has a Keras name, else 224.
    The copy must load into the model it is named for (`check_loads`) before
    it replaces anything. Raises DataError for a file that is not such
    weights, or that a file earlier in `weights_folders` would hide
    (nothing is copied).
    """
    src = Path(src)
    if src.is_dir():
        raise DataError(f"{src}: a folder; give the weights file itself (a Keras .h5 file)")
    if not src.is_file():
        raise DataError(f"{src}: expected a Keras .h5 weights file of {', '.join(BACKBONES)}")
    backbone, include_top, alpha = identify_weights_file(src)
    match = _NAME_RE.match(src.name)
    size = int(match.group(4)) if match and match.group(4) else 224
    dest = Path(dest_dir) / weights_file_name(backbone, include_top, alpha or 1.0, size)
    install.check_not_shadowed(dest, [folder / dest.name for _, folder in weights_folders()])

    def check(path):
        identify_weights_file(path)
        check_loads(path, backbone, include_top, alpha)

    if src.resolve() != dest.resolve():
        install.install_copy(src, dest, check)
    else:
        check(dest)
    return dest


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

