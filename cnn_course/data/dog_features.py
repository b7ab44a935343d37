"""The original course's precomputed bottleneck features of the dog photos (``DogVGG16Data.npz``,
``DogResnet50Data.npz``; keys train/valid/test of 6,680/835/836 rows, at 224x224). They hold no labels:
row i is the i-th photo in ``sklearn.datasets.load_files(<split folder>)``'s order (classes and files
sorted, then shuffled with ``random_state=0``), so they fit only the whole original dogImages."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .catalog import MAX_DOG_FEATURES_BYTES, SPLITS
from .errors import DataError
from . import formats, install, lookup

DOG_FEATURE_FILES = {  # backbone -> (file name, the per-photo shapes its features may have)
    "VGG16": ("DogVGG16Data.npz", ((7, 7, 512),)),
    "ResNet50": ("DogResnet50Data.npz", ((1, 1, 2048), (7, 7, 2048))),  # Keras 2 pooled 7x7 to 1x1
}
ORIGINAL_COUNTS = {"train": 6680, "valid": 835, "test": 836}
MODEL_NAMES = {"vgg16": "VGG16", "resnet50": "ResNet50"}  # keras.applications model.name -> backbone


def check_dog_features(path, read=False) -> tuple[str, dict]:
    """(backbone, {split: shape}) of a features file, from its array headers (``read``: every array also
    decompressed once). Raises DataError for a file that is not 4-D float train/valid/test of one backbone."""
    path = Path(path)
    found = formats.npz_members(path, SPLITS, MAX_DOG_FEATURES_BYTES)
    shapes = {s: tuple(shape) for s, (shape, _) in found.items()}
    per_photo = shapes["train"][1:]
    for split, (shape, dtype) in found.items():
        if len(shape) != 4 or not np.issubdtype(dtype, np.floating) or shape[0] == 0:
            raise DataError(f"{path}: {split} is {dtype} of shape {tuple(shape)}; expected "
                            "floating-point features of shape (photos, rows, columns, channels)")
        if shapes[split][1:] != per_photo:
            raise DataError(f"{path}: {split} has features of shape {shapes[split][1:]}, train of {per_photo}")
    backbone = next((b for b, (_, allowed) in DOG_FEATURE_FILES.items() if per_photo in allowed), None)
    if backbone is None:
        raise DataError(f"{path}: features of shape {per_photo} per photo are neither VGG16's (7, 7, 512) "
                        "nor ResNet50's (1, 1, 2048)")
    for split in SPLITS if read else ():
        formats.read_npz(path, (split,), MAX_DOG_FEATURES_BYTES)
    return backbone, shapes


def find_dog_features(backbone) -> Path | None:
    """The original features file of ``backbone`` in the data folders, or None."""
    name = DOG_FEATURE_FILES.get(backbone, (None,))[0]
    return next((d / name for d in lookup.data_dirs() if name and (d / name).is_file()), None)


def original_dog_features(paths, model_name, size):
    """The original course's features of the photos ``paths`` (one split folder of the whole original
    dogImages, at 224x224) for ``model_name`` ("vgg16" or "resnet50"), as (float32 array, description);
    None (with a ``Features:`` line saying why when a file is there) otherwise. DataError for a bad file."""
    backbone = MODEL_NAMES.get(str(model_name))
    path = find_dog_features(backbone)
    paths = [Path(p) for p in paths]
    if path is None or not paths:
        return None
    split_dir = paths[0].parent.parent
    split, note = split_dir.name, None
    if tuple(size) != (224, 224):
        note = f"it was computed at 224x224, not {size[0]}x{size[1]}"
    elif split not in SPLITS or any(p.parent.parent != split_dir for p in paths):
        note = "these photos are not one split folder of dogImages"
    if note is None:
        backbone_found, shapes = check_dog_features(path)
        if backbone_found != backbone:
            raise DataError(f"{path}: holds {backbone_found} features, not {backbone}'s")
        from sklearn.datasets import load_files

        order = [Path(f) for f in load_files(str(split_dir), load_content=False, shuffle=True,
                                             random_state=0)["filenames"]]
        if len(order) != shapes[split][0]:
            note = (f"its {shapes[split][0]} {split} rows belong to the original dogImages' {split} "
                    f"photos ({ORIGINAL_COUNTS[split]} of them), and {split_dir} holds {len(order)} files")
    if note is None:
        row = {p.resolve(): i for i, p in enumerate(order)}
        missing = [p for p in paths if p.resolve() not in row]
        note = missing and f"{missing[0]} is not one of the original photos"
    if note:
        print(f"Features: {path.name} not used: {note}")
        return None
    with np.load(path, allow_pickle=False) as stored:
        features = np.asarray(stored[split], dtype=np.float32)[[row[p.resolve()] for p in paths]]
    return features, f"the original course's {path.name} ({path})"


def import_dog_features(src, dest_dir) -> Path:
    """Check the features file ``src`` and copy it into ``dest_dir`` under its original name; DataError."""
    src = Path(src)
    if src.is_dir():
        raise DataError(f"{src}: a folder; give the file itself (DogVGG16Data.npz or DogResnet50Data.npz)")
    install.check_source(src, folder_ok=False)
    dest = Path(dest_dir) / DOG_FEATURE_FILES[check_dog_features(src)[0]][0]  # headers: fails before copying
    install.check_not_shadowed(dest, [folder / dest.name for folder in lookup.data_dirs()])
    if src.resolve() != dest.resolve():
        install.install_copy(src, dest, lambda p: check_dog_features(p, read=True))
    else:
        check_dog_features(dest, read=True)
    return dest
