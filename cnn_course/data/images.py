"""Decoding image files to RGB arrays (OpenCV, Pillow as a fallback) on a
small thread pool, after checking their size from the header."""

from __future__ import annotations

import io
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .catalog import IMAGE_EXTENSIONS, MAX_PHOTO_BYTES, MAX_PHOTO_PIXELS, MiB
from .errors import DataError


def is_image_name(name: str) -> bool:
    """Return whether a file name has one of IMAGE_EXTENSIONS (any case)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def header_size(buf) -> tuple[int, int] | None:
    """Return (width, height) read from an image's header (PNG, JPEG, GIF,
    BMP, WebP; others through Pillow, which reads only the header), without
    decoding it; None when the header cannot be read. Raises nothing."""
    b = bytes(memoryview(buf)[:32]) if len(buf) else b""
    if b.startswith(b"\x89PNG\r\n\x1a\n") and len(b) >= 24:
        return int.from_bytes(b[16:20], "big"), int.from_bytes(b[20:24], "big")
    if b[:6] in (b"GIF87a", b"GIF89a") and len(b) >= 10:
        return int.from_bytes(b[6:8], "little"), int.from_bytes(b[8:10], "little")
    if b.startswith(b"BM") and len(b) >= 26:
        return (abs(int.from_bytes(b[18:22], "little", signed=True)),
                abs(int.from_bytes(b[22:26], "little", signed=True)))
    if b.startswith(b"\xff\xd8"):
        return _jpeg_size(memoryview(buf))
    if b[:4] == b"RIFF" and b[8:12] == b"WEBP" and len(b) >= 30:
        chunk = b[12:16]
        if chunk == b"VP8X":
            return int.from_bytes(b[24:27], "little") + 1, int.from_bytes(b[27:30], "little") + 1
        if chunk == b"VP8 ":
            return int.from_bytes(b[26:28], "little") & 0x3FFF, int.from_bytes(b[28:30], "little") & 0x3FFF
        if chunk == b"VP8L":
            bits = int.from_bytes(b[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(bytes(memoryview(buf)))) as im:
                return im.size
    except Image.DecompressionBombError:
        return (2**31, 1)  # Pillow refuses even to open it: far too big
    except Exception:
        return None


def _jpeg_size(b) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame marker, or None."""
    i, n = 2, len(b)
    while i + 9 < n:
        if b[i] != 0xFF:
            return None
        marker = b[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            i += 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return (b[i + 7] << 8) | b[i + 8], (b[i + 5] << 8) | b[i + 6]
        i += 2 + ((b[i + 2] << 8) | b[i + 3])
    return None


def decode_one(src, size=None, max_pixels=None, max_bytes=None, what="a photo"):
    """Decode one image (bytes or a Path) to RGB uint8 (H, W, 3), resized to
    ``size`` (height, width) when given. A file over ``max_bytes`` or an
    image over ``max_pixels`` (read from its header, before decoding) is
    refused (None: MAX_PHOTO_BYTES, MAX_PHOTO_PIXELS); ``what`` names whose
    limits they are in the message.

    Returns the array, or a string saying what is wrong."""
    import cv2

    max_pixels = MAX_PHOTO_PIXELS if max_pixels is None else max_pixels
    max_bytes = MAX_PHOTO_BYTES if max_bytes is None else max_bytes

    try:
        if isinstance(src, Path):
            n = src.stat().st_size
            if n > max_bytes:
                return f"is {n / MiB:.1f} MiB, over the {max_bytes / MiB:.0f} MiB limit for {what}"
            buf = np.fromfile(src, np.uint8)
        else:
            buf = np.frombuffer(src, np.uint8)
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    if buf.size > max_bytes:
        return f"is {buf.size / MiB:.1f} MiB, over the {max_bytes / MiB:.0f} MiB limit for {what}"
    wh = header_size(buf)
    if wh is not None and wh[0] * wh[1] > max_pixels:
        return (f"is {wh[0]}x{wh[1]} pixels, over the limit of {_pixels(max_pixels)} for {what}; "
                "not decoded")
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size and wh is not None else None
    if img is not None:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    else:
        try:  # formats OpenCV lacks (GIF on some builds): try Pillow
            from PIL import Image

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Image.open(io.BytesIO(buf.tobytes())) as im:
                    if im.size[0] * im.size[1] > max_pixels:
                        return (f"is {im.size[0]}x{im.size[1]} pixels, over the limit of "
                                f"{_pixels(max_pixels)} for {what}; not decoded")
                    img = np.asarray(im.convert("RGB"))
        except Exception:
            return "is not a readable image" if buf.size else "is empty (0 bytes)"
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
