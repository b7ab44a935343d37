"""Decoding image files to RGB arrays with Pillow on a small thread pool, within size limits read from
the header before anything is decoded, and a few photos to look at."""

from __future__ import annotations

import io
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .catalog import IMAGE_EXTENSIONS, MAX_PHOTO_BYTES, MAX_PHOTO_PIXELS, MiB
from .errors import DataError, DatasetNotFound

SAMPLE_PHOTOS = ("china.jpg", "flower.jpg")  # bundled with scikit-learn, no download
BAD_IMAGE_LIMIT = 0.01  # more than this fraction unreadable -> DataError
WORKERS = max(1, min(4, os.cpu_count() or 1))  # Pillow releases the GIL while it decodes and resizes


def is_image_name(name: str) -> bool:
    """Whether a file name has one of IMAGE_EXTENSIONS (any case)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _pixels(n: int) -> str:
    side = int(round(n**0.5))
    return f"{n / 1e6:g} megapixels" if n >= 1e6 else f"{side}x{side} pixels" if side * side == n else f"{n} pixels"


def decode_one(src, size=None, max_pixels=MAX_PHOTO_PIXELS, max_bytes=MAX_PHOTO_BYTES, what="a photo"):
    """One image (bytes or a Path) as RGB uint8 (H, W, 3), resized to ``size`` (h, w) when given, or a
    string saying what is wrong; files over ``max_bytes`` or ``max_pixels`` (``what``'s) are not decoded."""
    from PIL import Image

    try:
        n_bytes = src.stat().st_size if isinstance(src, Path) else len(src)
        if n_bytes > max_bytes:
            return f"is {n_bytes / MiB:.1f} MiB, over the {max_bytes / MiB:.0f} MiB limit for {what}"
        buf = src.read_bytes() if isinstance(src, Path) else bytes(src)
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    if not buf:
        return "is empty (0 bytes)"
    limit = f"over the limit of {_pixels(max_pixels)} for {what}; not decoded"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(buf)) as im:  # reads the header only
                if im.width * im.height > max_pixels:
                    return f"is {im.width}x{im.height} pixels, {limit}"
                img = im.convert("RGB")
    except Image.DecompressionBombError:  # over twice Image.MAX_IMAGE_PIXELS: no size given
        return f"is over {_pixels(2 * Image.MAX_IMAGE_PIXELS)}, {limit}"
    except Exception:
        return "is not a readable image"
    if size is not None and img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.BILINEAR)  # widened when shrinking: no aliasing
    return np.array(img)


def decode_many(sources, shape, names, max_pixels, max_bytes, what):
    """Decode images already of ``shape`` into one uint8 array on a thread pool; return (x, bad) with
    bad a list of (index, "<name> <reason>") for images left as zeros."""
    x, h, w = np.zeros((len(sources), *shape), np.uint8), *shape[:2]

    def one(i):
        img = decode_one(sources[i], max_pixels=max_pixels, max_bytes=max_bytes, what=what)
        if isinstance(img, str):
            return i, f"{names[i]} {img}"
        if img.shape != tuple(shape):
            return i, f"{names[i]} is {img.shape[1]}x{img.shape[0]}, expected {w}x{h}"
        x[i] = img

    def work(lo):
        return [b for b in map(one, range(lo, min(lo + 2000, len(x)))) if b]

    with ThreadPoolExecutor(WORKERS) as pool:
        return x, [b for found in pool.map(work, range(0, len(x), 2000)) for b in found]


def undecodable(paths, what="a photo") -> list[str]:
    """ "<file> <reason>" for each image in ``paths`` that cannot be decoded (within ``what``'s limits)."""
    with ThreadPoolExecutor(WORKERS) as pool:
        found = pool.map(lambda p: decode_one(p, what=what), paths)
        return [f"{p} {r}" for p, r in zip(paths, found) if isinstance(r, str)]


def a_few(items, shown=5) -> str:
    """The first ``shown`` items joined by "; ", and how many more, so a message stays one line."""
    return "; ".join(map(str, items[:shown])) + (f"; and {len(items) - shown} more" if len(items) > shown else "")


def report_bad_images(bad, total: int, source) -> None:
    """Warn about unusable images (``bad``), or raise DataError when over 1% of ``total``."""
    if len(bad) > BAD_IMAGE_LIMIT * total:
        raise DataError(f"{source}: {len(bad)} of {total} images are unusable (more than 1%): {a_few(bad)}")
    if bad:
        warnings.warn(f"{source}: skipped {len(bad)} unusable image(s) of {total}: {a_few(bad)}", stacklevel=3)


def read_images(paths, size=(224, 224), batch_size=64):
    """Yield uint8 RGB batches (B, h, w, 3) of the image files ``paths`` resized to ``size`` = (h, w),
    decoded ahead on a thread pool. ValueError for a bad ``size`` or ``batch_size`` (at once),
    DataError naming the first file that cannot be decoded (or is over the photo limits)."""
    paths = [Path(p) for p in paths]
    whole = lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, bool)
    if not (isinstance(size, (tuple, list)) and len(size) == 2 and all(whole(v) and 1 <= v <= 8192 for v in size)):
        raise ValueError(f"size must be (height, width), two whole numbers from 1 to 8192; got {size!r}")
    if not whole(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number of at least 1, got {batch_size!r}")
    return _batches(paths, (int(size[0]), int(size[1])), batch_size)


def _batches(paths, size, batch_size):
    def batch(lo):
        out = np.empty((min(batch_size, len(paths) - lo), size[0], size[1], 3), np.uint8)
        for j, p in enumerate(paths[lo : lo + len(out)]):
            img = decode_one(p, size)
            if isinstance(img, str):
                raise DataError(f"{p} {img}")
            out[j] = img
        return out

    with ThreadPoolExecutor(WORKERS) as pool:
        starts = range(0, len(paths), batch_size)
        ahead = [pool.submit(batch, lo) for lo in starts[:WORKERS]]  # several batches in flight
        for k in range(len(starts)):
            if k + WORKERS < len(starts):
                ahead.append(pool.submit(batch, starts[k + WORKERS]))
            yield ahead[k].result()
            ahead[k] = None


def _photo_files(item: Path) -> list[Path]:
    """The image files ``item`` names: itself, or a folder's (by extension, not hidden) in name order."""
    if not item.exists():
        raise DatasetNotFound(f"{item}: no such file or folder")
    if not item.is_dir():
        return [item]
    files = sorted(p for p in item.iterdir() if p.is_file() and not p.name.startswith(".") and is_image_name(p.name))
    if not files:
        raise DataError(f"{item}: no image files in this folder (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return files


def load_sample_photos(paths=None):
    """Load a few photos at their own size and print one ``Data:`` line: ``paths`` (files or folders),
    or scikit-learn's bundled SAMPLE_PHOTOS. Returns (photos, names, description).
    Raises DatasetNotFound for a missing path, DataError for a folder without images or a bad image."""
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
        photos = [decode_one(f) for f in files]
        for f, img in zip(files, photos):
            if isinstance(img, str):
                raise DataError(f"{f} {img}")
        names = [f.name for f in files]
        where = ", ".join(str(Path(item).expanduser()) for item in items)
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    description = f"{len(names)} photo{'s' if len(names) != 1 else ''} from {where}: {shown}"
    print(f"Data: {description}")
    return photos, names, description
