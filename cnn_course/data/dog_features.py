"""The original course's precomputed bottleneck features of the dog photos.

The original course offered ``DogVGG16Data.npz`` and ``DogResnet50Data.npz``:
the features of every photo of its ``dogImages.zip`` (keys ``train``,
``valid``, ``test``; 6,680, 835 and 836 rows) computed at 224x224 with
ImageNet weights. They hold no labels and no file names: row i is the i-th
photo in the order the original course listed them, which was
``sklearn.datasets.load_files(<split folder>)`` with its defaults (class
folders and files sorted by name, then shuffled with ``random_state=0``). So
they line up with labels only for the original ``dogImages`` folder, all of
it; `original_dog_features` checks that before using them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .catalog import MAX_DOG_FEATURES_BYTES, SPLITS
from .errors import DataError
from . import formats, install, lookup

# backbone -> (file name, the per-photo shapes its features may have)
DOG_FEATURE_FILES = {
    "VGG16": ("DogVGG16Data.npz", ((7, 7, 512),)),
    # the original's Keras 2 ResNet50 ended in a 7x7 average pooling: 1x1x2048
    "ResNet50": ("DogResnet50Data.npz", ((1, 1, 2048), (7, 7, 2048))),
}
ORIGINAL_COUNTS = {"train": 6680, "valid": 835, "test": 836}  # photos in the original dogImages
_MODEL_NAMES = {"vgg16": "VGG16", "resnet50": "ResNet50"}  # keras.applications model.name -> backbone


def check_dog_features(path, read=False) -> tuple[str, dict]:
    """Check an original-course features file; return (backbone, {split: shape}).

    The checks read the arrays' headers only (`formats.npz_members`); with
    `read` every array is also decompressed once, one at a time, to check
    that its data is whole. Raises DataError (one line) for a file that is
    not a readable ``.npz``, has an encrypted member, lacks one of the keys
    train/valid/test, holds an array over MAX_DOG_FEATURES_BYTES (stored or
    declared), arrays that are not 4-D floating point or have no rows, or
    whose per-photo shapes differ between splits or fit no backbone of
    DOG_FEATURE_FILES. The row counts are checked against the photos when the
    features are used (`original_dog_features`): the original files have
    6,680 / 835 / 836.
    """
    path = Path(path)
    found = formats.npz_members(path, SPLITS, MAX_DOG_FEATURES_BYTES)
    shapes = {s: tuple(shape) for s, (shape, _) in found.items()}
    per_photo = shapes["train"][1:]
    for split, (shape, dtype) in found.items():
        if len(shape) != 4 or not np.issubdtype(dtype, np.floating) or shape[0] == 0:
            raise DataError(f"{path}: {split} is {dtype} of shape {tuple(shape)}; expected "
                            "floating-point features of shape (photos, rows, columns, channels)")
        if shapes[split][1:] != per_photo:
            raise DataError(f"{path}: {split} has features of shape {shapes[split][1:]}, "
                            f"train of {per_photo}")
    for backbone, (_, allowed) in DOG_FEATURE_FILES.items():
        if per_photo in allowed:
            break
    else:
        raise DataError(f"{path}: features of shape {per_photo} per photo are neither VGG16's (7, 7, 512) "
                        "nor ResNet50's (1, 1, 2048)")
    if read:
        for split in SPLITS:
            formats.read_npz(path, (split,), MAX_DOG_FEATURES_BYTES)
    return backbone, shapes


def find_dog_features(backbone) -> Path | None:
    """Return the original course's features file for `backbone` in the data folders, or None.

    Looks for DogVGG16Data.npz or DogResnet50Data.npz in each of
    `lookup.data_dirs`; None for another backbone. Raises nothing.
    """
    if backbone not in DOG_FEATURE_FILES:
        return None
    name = DOG_FEATURE_FILES[backbone][0]
    for folder in lookup.data_dirs():
        if (folder / name).is_file():
            return folder / name
    return None


def original_order(split_dir) -> list[Path]:
    """Return the files of one split folder in the original course's order.

    That is ``sklearn.datasets.load_files(split_dir)``'s order: class folders
    sorted, files sorted within each, then shuffled with ``random_state=0``.
    Raises OSError when the folder cannot be listed.
    """
    from sklearn.datasets import load_files

    listed = load_files(str(split_dir), load_content=False, shuffle=True, random_state=0)
    return [Path(f) for f in listed["filenames"]]


def original_dog_features(paths, model_name, size):
    """Return the original course's features for the photos `paths`, in their order, or None.

    Used when `model_name` (``model.name``: "vgg16" or "resnet50") has a
    features file in the data folders (`find_dog_features`), `size` is
    (224, 224), all `paths` lie in one split folder of a dogImages tree, and
    that folder holds exactly as many files as the file has rows for the split
    (the original dogImages). Then row i of the file belongs to the i-th file
    of `original_order`, and the rows are returned reordered to `paths`.

    Returns (float32 array, description) or None. When a file is there but
    does not fit, prints one ``Features:`` line saying why it is not used.
    Raises DataError when the file itself is not usable (see
    `check_dog_features`).
    """
    backbone = _MODEL_NAMES.get(str(model_name))
    path = find_dog_features(backbone)
    paths = [Path(p) for p in paths]
    if path is None or not paths:
        return None
    split_dir = paths[0].parent.parent
    split = split_dir.name
    note = None
    if tuple(size) != (224, 224):
        note = f"it was computed at 224x224, not {size[0]}x{size[1]}"
    elif split not in SPLITS or any(p.parent.parent != split_dir for p in paths):
        note = "these photos are not one split folder of dogImages"
    if note is None:
        backbone_found, shapes = check_dog_features(path)
        if backbone_found != backbone:
            raise DataError(f"{path}: holds {backbone_found} features, not {backbone}'s")
        order = original_order(split_dir)
        if len(order) != shapes[split][0]:
            note = (f"its {shapes[split][0]} {split} rows belong to the original dogImages' {split} "
                    f"photos ({ORIGINAL_COUNTS[split]} of them), and {split_dir} holds {len(order)} files")
    if note is not None:
        print(f"Features: {path.name} not used: {note}")
        return None
    row = {p.resolve(): i for i, p in enumerate(order)}
    missing = [p for p in paths if p.resolve() not in row]
    if missing:
        print(f"Features: {path.name} not used: {missing[0]} is not one of the original photos")
        return None
    with np.load(path, allow_pickle=False) as stored:
        features = np.asarray(stored[split], dtype=np.float32)[[row[p.resolve()] for p in paths]]
    return features, f"the original course's {path.name} ({path})"


def import_dog_features(src, dest_dir) -> Path:
    """Check the features file `src` and copy it into `dest_dir` under its original name.

    Returns the Path written (DogVGG16Data.npz or DogResnet50Data.npz, chosen
    by the features' shape). Raises DataError as `check_dog_features`, and for
    a folder or a special file (nothing is copied then).
    """
    src = Path(src)
    if src.is_dir():
        raise DataError(f"{src}: a folder; give the file itself (DogVGG16Data.npz or DogResnet50Data.npz)")
    install.check_source(src, folder_ok=False)
    backbone, _ = check_dog_features(src)  # the headers: fails early, before copying
    dest = Path(dest_dir) / DOG_FEATURE_FILES[backbone][0]
    install.check_not_shadowed(dest, [folder / dest.name for folder in lookup.data_dirs()])
    if src.resolve() != dest.resolve():
        install.install_copy(src, dest, lambda p: check_dog_features(p, read=True))
    else:
        check_dog_features(dest, read=True)
    return dest
