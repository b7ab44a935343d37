"""A few photos to look at, each at its own size: scikit-learn's two
bundled sample photos, or the user's own files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .catalog import IMAGE_EXTENSIONS
from .errors import DataError, DatasetNotFound
from . import images


SAMPLE_PHOTOS = ("china.jpg", "flower.jpg")  # bundled with scikit-learn, no download


def _photo_files(item: Path) -> list[Path]:
    """Return the image files ``item`` names: itself, or for a folder its
    image files (by extension, hidden ones left out) sorted by name. Raises
    DatasetNotFound when ``item`` does not exist, DataError for a folder
    without images."""
    if not item.exists():
        raise DatasetNotFound(f"{item}: no such file or folder")
    if not item.is_dir():
        return [item]
    files = sorted((p for p in item.iterdir()
                    if p.is_file() and not p.name.startswith(".") and images.is_image_name(p.name)),
                   key=lambda p: p.name)
    if not files:
        raise DataError(f"{item}: no image files in this folder (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return files


def load_sample_photos(paths=None):
    """Load a few photos to look at, each at its own size.

    ``paths`` is an image file or a folder, or a list of them; a folder
    gives its image files (by extension, see IMAGE_EXTENSIONS) in name order.
    With ``paths`` None, scikit-learn's two bundled sample photos
    (SAMPLE_PHOTOS: china.jpg, a temple, and flower.jpg) are used; nothing is
    downloaded. Prints exactly one line ``Data: <description>``.

    Returns (photos, names, description): a list of RGB uint8 arrays
    (H, W, 3), their file names, and the description. Raises DatasetNotFound
    naming a path that does not exist, DataError naming a folder without
    images or a file that cannot be read as an image."""
    if paths is None:
        from sklearn.datasets import load_sample_image

        names = list(SAMPLE_PHOTOS)
        photos = [np.ascontiguousarray(load_sample_image(name), dtype=np.uint8) for name in names]
        where = "scikit-learn"
    else:
        items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        if not items:
            raise DataError("load_sample_photos: an empty list of paths")
        files = [f for item in items for f in _photo_files(Path(item).expanduser())]
        photos = []
        for f in files:
            img = images.decode_one(f)
            if isinstance(img, str):
                raise DataError(f"{f} {img}")
            photos.append(img)
        names = [f.name for f in files]
        where = ", ".join(str(Path(item).expanduser()) for item in items)
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    description = f"{len(names)} photo{'s' if len(names) != 1 else ''} from {where}: {shown}"
    print(f"Data: {description}")
    return photos, names, description

