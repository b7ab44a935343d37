"""Decoding image files to RGB arrays (OpenCV, Pillow as a fallback) on a
small thread pool, after checking their size from the header (Pillow), and
a few photos to look at (scikit-learn's two sample photos, or the user's)."""

from __future__ import annotations

import io
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .catalog import IMAGE_EXTENSIONS, MAX_PHOTO_BYTES, MAX_PHOTO_PIXELS, MiB
from .errors import DataError, DatasetNotFound


def is_image_name(name: str) -> bool:
    """Return whether a file name has one of IMAGE_EXTENSIONS (any case)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def header_size(buf) -> tuple[int, int] | None:
    """Return (width, height) of the image in ``buf`` (bytes or a uint8 array)
    from its header, through Pillow's lazy ``Image.open`` (nothing decoded);
    None when Pillow cannot read it. Raises PIL.Image.DecompressionBombError
    for an image over twice ``Image.MAX_IMAGE_PIXELS``."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(bytes(memoryview(buf)))) as im:
                return im.size
    except Image.DecompressionBombError:
        raise
    except Exception:
        return None


def decode_one(src, size=None, max_pixels=None, max_bytes=None, what="a photo"):
    """Decode one image (bytes or a Path) to RGB uint8 (H, W, 3), resized to
    ``size`` (height, width) when given. A file over ``max_bytes`` or an
    image over ``max_pixels`` (from its header, before decoding) is refused
    (None: MAX_PHOTO_BYTES, MAX_PHOTO_PIXELS); ``what`` names whose limits.

    Returns the array, or a string saying what is wrong. Raises nothing."""
    import cv2
    from PIL import Image

    max_pixels = MAX_PHOTO_PIXELS if max_pixels is None else max_pixels
    max_bytes = MAX_PHOTO_BYTES if max_bytes is None else max_bytes
    try:
        if isinstance(src, Path) and src.stat().st_size > max_bytes:
            return f"is {src.stat().st_size / MiB:.1f} MiB, over the {max_bytes / MiB:.0f} MiB limit for {what}"
        buf = np.fromfile(src, np.uint8) if isinstance(src, Path) else np.frombuffer(src, np.uint8)
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    if buf.size > max_bytes:
        return f"is {buf.size / MiB:.1f} MiB, over the {max_bytes / MiB:.0f} MiB limit for {what}"
    if not buf.size:
        return "is empty (0 bytes)"
    limit = f"over the limit of {_pixels(max_pixels)} for {what}; not decoded"
    try:
        wh = header_size(buf)
    except Image.DecompressionBombError:  # over 2 * Image.MAX_IMAGE_PIXELS, far over ours
        return f"is over {_pixels(2 * Image.MAX_IMAGE_PIXELS)}, {limit}"
    if wh is None:
        return "is not a readable image"
    if wh[0] * wh[1] > max_pixels:
        return f"is {wh[0]}x{wh[1]} pixels, {limit}"
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is not None:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    else:
        try:  # formats OpenCV lacks (GIF on some builds)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Image.open(io.BytesIO(buf.tobytes())) as im:
                    img = np.asarray(im.convert("RGB"))
        except Exception:
            return "is not a readable image"
    if size is not None and img.shape[:2] != tuple(size):
        h, w = size
        # Area averaging only where bilinear would alias (shrinking over 2x):
        # OpenCV's INTER_AREA is ~10x slower than INTER_LINEAR.
        far = img.shape[0] > 2 * h or img.shape[1] > 2 * w
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if far else cv2.INTER_LINEAR)
    return img


def _pixels(n: int) -> str:
    """A pixel count in words: "50 megapixels", "65536 pixels (256x256)"."""
    if n >= 1_000_000:
        return f"{n / 1_000_000:g} megapixels"
    side = int(round(n ** 0.5))
    return f"{side}x{side} pixels" if side * side == n else f"{n} pixels"


def check_size(size) -> tuple[int, int]:
    """Return ``size`` as (height, width) of positive ints (at most 8192).
    Raises ValueError for anything else."""
    try:
        h, w = size
        ok = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 1 <= v <= 8192 for v in (h, w))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"size must be (height, width), two whole numbers from 1 to 8192; got {size!r}")
    return int(h), int(w)


def _workers() -> int:
    """Threads for decoding: OpenCV releases the GIL while it decodes."""
    return max(1, min(4, os.cpu_count() or 1))


def decode_many(sources, shape, names, max_pixels, max_bytes, what):
    """Decode images into one (N, *shape) uint8 array with a thread pool.
    Each must already be ``shape`` (no resizing); ``max_pixels``,
    ``max_bytes`` and ``what`` are decode_one's limits. Returns (x, bad) where bad is
    a list of (index, "<name> <reason>") for images that could not be used
    (their rows are left zero)."""
    n = len(sources)
    x = np.zeros((n, *shape), np.uint8)
    bad = []

    def work(lo, hi):
        found = []
        for i in range(lo, hi):
            img = decode_one(sources[i], max_pixels=max_pixels, max_bytes=max_bytes, what=what)
            if isinstance(img, str):
                found.append((i, img))
            elif img.shape != tuple(shape):
                found.append((i, f"is {img.shape[1]}x{img.shape[0]}, expected {shape[1]}x{shape[0]}"))
            else:
                x[i] = img
        return found

    step = 2000
    with ThreadPoolExecutor(_workers()) as pool:
        for found in pool.map(lambda lo: work(lo, min(lo + step, n)), range(0, n, step)):
            bad += [(i, f"{names[i]} {why}") for i, why in found]
    return x, bad


def undecodable(paths, what="a photo") -> list[str]:
    """Decode every image file in ``paths`` (with a small thread pool, within
    decode_one's limits for ``what``) and keep nothing. Returns "<file>
    <reason>" for each one that cannot be used, in ``paths``' order. Raises
    nothing."""

    def reason(path):
        img = decode_one(path, what=what)
        return f"{path} {img}" if isinstance(img, str) else None

    with ThreadPoolExecutor(_workers()) as pool:
        return [r for r in pool.map(reason, paths) if r is not None]


def a_few(items, shown=5) -> str:
    """Return the first ``shown`` of ``items`` joined by "; ", and how many
    more there are, so a message stays one readable line."""
    more = f"; and {len(items) - shown} more" if len(items) > shown else ""
    return "; ".join(map(str, items[:shown])) + more


BAD_IMAGE_LIMIT = 0.01  # more than this fraction unreadable -> DataError


def report_bad_images(bad, total: int, source) -> None:
    """Warn about unusable images (``bad``: "<file> <reason>" strings; the
    count, and a few named); raise DataError when more than 1% of ``total``
    are bad."""
    if not bad:
        return
    if len(bad) > BAD_IMAGE_LIMIT * total:
        raise DataError(f"{source}: {len(bad)} of {total} images are unusable "
                        f"(more than {BAD_IMAGE_LIMIT:.0%}): {a_few(bad)}")
    warnings.warn(f"{source}: skipped {len(bad)} unusable image(s) of {total}: {a_few(bad)}",
                  stacklevel=3)


def read_images(paths, size=(224, 224), batch_size=64):
    """Decode image files in batches with a small thread pool, prefetching the
    next batch while the caller works on the current one.

    Yields uint8 arrays (B, height, width, 3), RGB, each image resized to
    ``size`` = (height, width); the last batch may be smaller. A file over
    MAX_PHOTO_BYTES or an image over MAX_PHOTO_PIXELS is refused before it
    is decoded. Raises ValueError for a bad ``size`` or ``batch_size`` (at
    once, before anything is read), DataError naming the first file that
    cannot be read or decoded."""
    paths = [Path(p) for p in paths]
    size = check_size(size)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number of at least 1, got {batch_size!r}")
    return _batches(paths, size, batch_size)


def _batches(paths, size, batch_size):
    """The generator behind read_images (arguments already checked)."""

    def batch(lo):
        out = np.empty((min(batch_size, len(paths) - lo), size[0], size[1], 3), np.uint8)
        for j, p in enumerate(paths[lo:lo + len(out)]):
            img = decode_one(p, size)
            if isinstance(img, str):
                raise DataError(f"{p} {img}")
            out[j] = img
        return out

    with ThreadPoolExecutor(_workers()) as pool:
        starts = range(0, len(paths), batch_size)
        # Several batches in flight at once: each decodes on its own thread.
        ahead = [pool.submit(batch, lo) for lo in starts[:_workers()]]
        for k in range(len(starts)):
            nxt = k + _workers()
            if nxt < len(starts):
                ahead.append(pool.submit(batch, starts[nxt]))
            yield ahead[k].result()
            ahead[k] = None


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
                    if p.is_file() and not p.name.startswith(".") and is_image_name(p.name)),
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
            img = decode_one(f)
            if isinstance(img, str):
                raise DataError(f"{f} {img}")
            photos.append(img)
        names = [f.name for f in files]
        where = ", ".join(str(Path(item).expanduser()) for item in items)
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    description = f"{len(names)} photo{'s' if len(names) != 1 else ''} from {where}: {shown}"
    print(f"Data: {description}")
    return photos, names, description

