"""Finding, loading, checking and caching the course's datasets.

Named datasets (MNIST, CIFAR-10, the dog images, the VGG16 weights) are
looked for in this order:

1. the ``path`` argument (a file, or a folder holding one);
2. the folder named by the environment variable ``CNN_COURSE_DATA``;
3. the repo's ``data/`` folder;
4. the Keras cache (``$KERAS_HOME/datasets`` or ``~/.keras/datasets``), in
   both the ``cifar-10-batches-py/`` layout and the
   ``cifar-10-batches-py-target/cifar-10-batches-py/`` layout of Keras 3;
5. a download through Keras (with its progress bar), unless
   ``CNN_COURSE_OFFLINE=1``;
6. one :class:`DatasetNotFound` error that lists every place looked.

Everything that is read is checked (shapes, dtype, label range, classes);
problems raise :class:`DataError` naming the file and what is wrong. A
CIFAR-10 JPEG tree is decoded once and the arrays are cached (see
:func:`load_cifar10`). Stand-ins for quick offline runs are only used when
asked for, and whatever uses one says ``STAND-IN`` in its ``Data:`` line.

Heavy libraries (Keras, OpenCV, Pillow, scikit-learn) are imported inside the
functions that need them, so ``import cnn_course.data`` stays fast.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import sys
import tarfile
import tempfile
import warnings
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
REPO_DATA_DIR = REPO_ROOT / "data"

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
DATASETS = ("mnist", "cifar10", "dogs", "vgg16")
SPLITS = ("train", "valid", "test")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")

MNIST_FILE = "mnist.npz"
MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
CIFAR10_FILE = "cifar-10-python.tar.gz"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
CIFAR10_PICKLES = ("data_batch_1", "data_batch_2", "data_batch_3",
                   "data_batch_4", "data_batch_5", "test_batch")
DOGS_FILE = "dogImages.zip"
DOGS_URL = "https://s3-us-west-1.amazonaws.com/udacity-aind/dog-project/dogImages.zip"
VGG16_URL = "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
# include_top -> (file name, md5 that Keras checks)
VGG16_FILES = {
    True: ("vgg16_weights_tf_dim_ordering_tf_kernels.h5", "64373286793e3c8b2b4e3219cbf3544b"),
    False: ("vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", "6d6bbae143d832006294945121d1f1fc"),
}

# What is looked for inside each place, in order.
_NAMES = {
    "mnist": (MNIST_FILE,),
    "cifar10": ("cifar-10-batches-py",
                "cifar-10-batches-py-target/cifar-10-batches-py",
                CIFAR10_FILE, "cifar10-jpeg", "cifar10-jpeg.tar.gz"),
    "dogs": ("dogImages", DOGS_FILE),
}
_TITLES = {"mnist": "MNIST", "cifar10": "CIFAR-10", "dogs": "Dog-breed images (dogImages)",
           "vgg16": "The VGG16 ImageNet weights"}
_GET = {
    "mnist": f"{MNIST_FILE} ({MNIST_URL})",
    "cifar10": (f"{CIFAR10_FILE} ({CIFAR10_URL}; its unpacked cifar-10-batches-py/ "
                "folder, or a JPEG tree cifar10-jpeg/ or cifar10-jpeg.tar.gz, works too)"),
    "dogs": f"{DOGS_FILE} ({DOGS_URL}; the unzipped dogImages/ folder works too)",
    "vgg16": (f"{VGG16_FILES[True][0]} and/or {VGG16_FILES[False][0]} "
              f"({VGG16_URL}<file>)"),
}
_CACHE_VERSION = 1
_BAD_IMAGE_LIMIT = 0.01  # more than this fraction unreadable -> DataError


class DataError(ValueError):
    """A dataset file is there but unusable: corrupt, truncated, wrong shape
    or dtype, labels out of range, unreadable images. The message names the
    file and what is wrong."""


class DatasetNotFound(FileNotFoundError):
    """A dataset is in none of the places looked. The message says which
    dataset, what file to get and from where, every place looked, where to put
    the file, and the ``python -m cnn_course data`` commands that help."""


# --------------------------------------------------------------------------
# Where things are


def data_dirs() -> list[Path]:
    """Return the folders searched for datasets, in order: ``$CNN_COURSE_DATA``
    (when set) and the repo's ``data/`` folder. Raises nothing."""
    dirs = []
    env = os.environ.get("CNN_COURSE_DATA")
    if env:
        dirs.append(Path(env).expanduser())
    if REPO_DATA_DIR not in dirs:
        dirs.append(REPO_DATA_DIR)
    return dirs


def keras_home() -> Path:
    """Return the Keras home folder as Keras picks it: ``$KERAS_HOME``, else
    ``~/.keras`` (``/tmp/.keras`` when the home folder is not writable)."""
    env = os.environ.get("KERAS_HOME")
    if env:
        return Path(env).expanduser()
    home = Path("~").expanduser()
    return (home if os.access(home, os.W_OK) else Path("/tmp")) / ".keras"


def keras_cache_dir() -> Path:
    """Return the folder where Keras keeps downloaded datasets:
    ``$KERAS_HOME/datasets`` or ``~/.keras/datasets``."""
    return keras_home() / "datasets"


def offline() -> bool:
    """Return True when ``CNN_COURSE_OFFLINE`` is set to 1/true/yes/on."""
    return os.environ.get("CNN_COURSE_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def quick_mode(quick=None) -> bool:
    """Return whether this is a quick (smoke) run that may use labelled stand-ins.

    An explicit ``quick`` (True/False) wins; ``None`` reads ``CNN_COURSE_QUICK``,
    which the runner sets for ``run --quick`` so that notebooks need no quick
    flag of their own. Raises nothing."""
    if quick is not None:
        return bool(quick)
    return os.environ.get("CNN_COURSE_QUICK", "").strip().lower() in ("1", "true", "yes", "on")


def _places(name: str) -> list[tuple[str, Path]]:
    """Return the (label, folder) places searched for ``name`` after the path
    argument, in order."""
    places = []
    env = os.environ.get("CNN_COURSE_DATA")
    if env:
        places.append(("$CNN_COURSE_DATA", Path(env).expanduser()))
    places.append(("the repo's data folder", REPO_DATA_DIR))
    if name == "vgg16":
        places.append(("the Keras models cache", keras_home() / "models"))
    else:
        places.append(("the Keras cache", keras_cache_dir()))
    return places


def _import_dir() -> Path:
    """Return where fetched-by-hand files should go: ``data_dirs()[0]``."""
    return data_dirs()[0]


def _not_found(name: str, looked: list[str], note: str = "") -> DatasetNotFound:
    """Build the one clear DatasetNotFound for ``name``."""
    lines = [f"{_TITLES[name]} not found. Looked in, in order:"]
    lines += [f"  {i}. {place}" for i, place in enumerate(looked, 1)]
    if note:
        lines.append(note)
    lines.append(
        f"Get {_GET[name]} and put it in {_import_dir()} (or in the folder named by "
        f"CNN_COURSE_DATA); or run `python -m cnn_course data fetch {name}` to download it, "
        f"or `python -m cnn_course data import {name} PATH` to bring in a copy you already have."
    )
    return DatasetNotFound("\n".join(lines))


def _detect(name: str, p: Path) -> str | None:
    """Return the format of candidate ``p`` for dataset ``name`` ("npz",
    "pickles", "pickles-tar", "tree", "tree-tar", "zip"), or None when ``p``
    is not one. Raises DataError for an unreadable archive."""
    if name == "mnist":
        return "npz" if p.is_file() else None
    if name == "dogs":
        if p.is_dir():
            return "tree" if (p / "train").is_dir() else None
        return "zip" if p.is_file() and zipfile.is_zipfile(p) else None
    # cifar10
    if p.is_dir():
        if any((p / f).exists() for f in CIFAR10_PICKLES):
            return "pickles"
        if (p / "train").is_dir() or (p / "test").is_dir():
            return "tree"
        return None
    if not p.is_file():
        return None
    if "cifar-10-python" in p.name:
        return "pickles-tar"
    if "jpeg" in p.name.lower() and ".tar" in p.name:
        return "tree-tar"
    try:
        with tarfile.open(p) as tar:
            for i, member in enumerate(tar):
                parts = Path(member.name).parts
                if parts and (parts[-1] in CIFAR10_PICKLES or parts[-1] == "batches.meta"):
                    return "pickles-tar"
                if "train" in parts or "test" in parts:
                    return "tree-tar"
                if i > 50:
                    break
    except tarfile.ReadError:
        return None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{p}: not a readable tar archive ({e})") from None
    return None


def _find(name: str, path=None) -> tuple[str | None, Path | None, list[str]]:
    """Look for ``name`` in the search order without downloading or decoding.

    Returns (format, source, looked): format and source are None when nothing
    was found; looked lists every place tried, for the error message. Raises
    DataError when a place holds something by the expected name that is not
    usable (nothing is skipped silently)."""
    names = _NAMES[name]
    looked = []
    if path is not None:
        p = Path(path).expanduser()
        looked.append(f"{p} (the path argument)")
        if p.exists():
            kind = _detect(name, p)
            if kind:
                return kind, p, looked
            if p.is_dir():
                for n in names:
                    if (p / n).exists():
                        kind = _detect(name, p / n)
                        if kind:
                            return kind, p / n, looked
            raise DataError(f"{p} holds no {_TITLES[name]} data: expected {_GET[name]}")
        warnings.warn(f"{p} does not exist; looking for {_TITLES[name]} in the usual places",
                      stacklevel=3)
    for label, folder in _places(name):
        looked.append(f"{folder}: {', '.join(names)} ({label})")
        for n in names:
            c = folder / n
            if c.exists():
                kind = _detect(name, c)
                if kind is None:
                    raise DataError(f"{c} is not usable {_TITLES[name]} data: expected {_GET[name]}")
                return kind, c, looked
    return None, None, looked


# --------------------------------------------------------------------------
# Checking arrays


def _check_arrays(x, y, image_shape, n_classes, what: str, class_names=None):
    """Check one split: x uint8 of (N, *image_shape), y integer (N,) or (N, 1)
    in 0..n_classes-1, every class present. Returns (x, y) with y flattened to
    uint8 (N,). Raises DataError naming ``what`` (file and split)."""
    x = np.asarray(x)
    y = np.asarray(y)
    if x.dtype != np.uint8:
        raise DataError(f"{what}: images have dtype {x.dtype}, expected uint8")
    if x.ndim != 1 + len(image_shape) or tuple(x.shape[1:]) != tuple(image_shape):
        raise DataError(f"{what}: images have shape {x.shape}, expected (N, {', '.join(map(str, image_shape))})")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{what}: labels have shape {y.shape}, expected (N,) or (N, 1)")
    if len(y) != len(x):
        raise DataError(f"{what}: {len(x)} images but {len(y)} labels")
    if len(x) == 0:
        raise DataError(f"{what}: no images")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{what}: labels have dtype {y.dtype}, expected integers")
    bad = np.flatnonzero((y < 0) | (y >= n_classes))
    if bad.size:
        raise DataError(f"{what}: {bad.size} labels out of range 0-{n_classes - 1} "
                        f"(first at index {bad[0]}: {y[bad[0]]})")
    counts = np.bincount(y.astype(np.int64), minlength=n_classes)
    missing = np.flatnonzero(counts == 0)
    if missing.size:
        names = [class_names[i] if class_names else str(i) for i in missing]
        raise DataError(f"{what}: no images of class {', '.join(names)}")
    return x, y.astype(np.uint8)


# --------------------------------------------------------------------------
# MNIST


def _read_mnist_npz(path: Path):
    """Read and check a Keras-layout mnist.npz. Returns the two splits.
    Raises DataError for a truncated/corrupt file, missing keys, wrong shapes,
    dtype or labels."""
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path, allow_pickle=False) as f:
            if not hasattr(f, "files"):
                raise DataError(f"{path}: a single array, not an .npz with {', '.join(keys)}")
            missing = [k for k in keys if k not in f.files]
            if missing:
                raise DataError(f"{path}: missing arrays {', '.join(missing)} "
                                f"(a Keras mnist.npz holds {', '.join(keys)})")
            a = {k: f[k] for k in keys}
    except DataError:
        raise
    except Exception as e:  # zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError
        raise DataError(f"{path}: not a readable .npz file, truncated or corrupt "
                        f"({type(e).__name__}: {e})") from None
    train = _check_arrays(a["x_train"], a["y_train"], (28, 28), 10, f"{path} (train)")
    test = _check_arrays(a["x_test"], a["y_test"], (28, 28), 10, f"{path} (test)")
    return train, test


# --------------------------------------------------------------------------
# CIFAR-10 pickles


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that only builds dicts, lists, strings and NumPy arrays, so a
    file found in a data folder cannot run code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
        ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
        ("__builtin__", "object"), ("builtins", "object"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _read_cifar_batch(data: bytes, where: str):
    """Decode one CIFAR-10 pickle (bytes). Returns (x (N,32,32,3) uint8,
    labels (N,)). Raises DataError naming ``where``."""
    try:
        d = _CifarUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as e:
        raise DataError(f"{where}: not a readable CIFAR-10 pickle ({type(e).__name__}: {e})") from None
    if not isinstance(d, dict):
        raise DataError(f"{where}: holds a {type(d).__name__}, expected a dict with 'data' and 'labels'")
    d = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in d.items()}
    if "data" not in d or "labels" not in d:
        raise DataError(f"{where}: no 'data' and 'labels' entries (has {', '.join(map(str, d))})")
    x = np.asarray(d["data"])
    labels = np.asarray(d["labels"])
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
        raise DataError(f"{where}: 'data' is {x.dtype} {x.shape}, expected uint8 (N, 3072)")
    if labels.shape != (len(x),):
        raise DataError(f"{where}: {len(x)} images but labels of shape {labels.shape}")
    return x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _cifar_from_batches(batches: dict, source: Path):
    """Assemble and check the splits from {file name: bytes}. Raises
    DataError naming a missing or bad batch."""
    missing = [f for f in CIFAR10_PICKLES if f not in batches]
    if missing:
        raise DataError(f"{source}: missing {', '.join(missing)} (CIFAR-10 has "
                        f"{', '.join(CIFAR10_PICKLES)})")
    parts = [_read_cifar_batch(batches[f], f"{source}/{f}") for f in CIFAR10_PICKLES]
    x_train = np.concatenate([p[0] for p in parts[:5]])
    y_train = np.concatenate([p[1] for p in parts[:5]])
    x_test = np.ascontiguousarray(parts[5][0])
    train = _check_arrays(x_train, y_train, (32, 32, 3), 10, f"{source} (train)", CIFAR10_CLASSES)
    test = _check_arrays(x_test, parts[5][1], (32, 32, 3), 10, f"{source} (test)", CIFAR10_CLASSES)
    return train, test


def _read_cifar_pickles_dir(folder: Path):
    """Read the CIFAR-10 pickles folder. Returns the two splits; raises DataError."""
    batches = {f: (folder / f).read_bytes() for f in CIFAR10_PICKLES if (folder / f).is_file()}
    return _cifar_from_batches(batches, folder)


def _cifar_pickles_in_tar(path: Path) -> dict:
    """Return {batch name: bytes} of the CIFAR-10 pickles inside a tarball.
    Raises DataError for a corrupt archive."""
    batches = {}
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                base = Path(member.name).name
                if member.isfile() and (base in CIFAR10_PICKLES or base == "batches.meta"):
                    batches[base] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a readable tar archive, truncated or corrupt ({e})") from None
    return batches


def write_cifar10_pickles(folder, train, test, protocol=4) -> Path:
    """Write arrays in the official CIFAR-10 Python layout: ``data_batch_1``..
    ``data_batch_5`` (the training set split in five) and ``test_batch``, each
    a pickle of {b"data": (N, 3072) uint8, b"labels": [int]}. Pickle
    ``protocol`` 4 stores the pixels as raw bytes (2 is several times slower).

    Returns the folder. Raises DataError for arrays of the wrong shape."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (x_train, y_train), (x_test, y_test) = train, test
    chunks = list(zip(np.array_split(np.asarray(x_train), 5), np.array_split(np.asarray(y_train).ravel(), 5)))
    for name, (x, y) in zip(CIFAR10_PICKLES, chunks + [(np.asarray(x_test), np.asarray(y_test).ravel())]):
        if x.dtype != np.uint8 or x.shape[1:] != (32, 32, 3):
            raise DataError(f"cannot write {name}: images are {x.dtype} {x.shape}, expected uint8 (N, 32, 32, 3)")
        d = {b"batch_label": name.encode(), b"labels": [int(v) for v in y],
             b"data": np.ascontiguousarray(x.transpose(0, 3, 1, 2)).reshape(len(x), 3072)}
        with open(folder / name, "wb") as f:
            pickle.dump(d, f, protocol=protocol)
    return folder


# --------------------------------------------------------------------------
# Image decoding


def _decode_one(src, size=None):
    """Decode one image (bytes or a Path) to RGB uint8 (H, W, 3), resized to
    ``size`` (height, width) when given. Returns the array, or a string saying
    what is wrong."""
    import cv2

    try:
        buf = np.fromfile(src, np.uint8) if isinstance(src, Path) else np.frombuffer(src, np.uint8)
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    if img is not None:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    else:
        try:  # formats OpenCV lacks (GIF on some builds): try Pillow
            from PIL import Image

            with Image.open(io.BytesIO(buf.tobytes())) as im:
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


def _workers() -> int:
    """Threads for decoding: OpenCV releases the GIL while it decodes."""
    return max(1, min(4, os.cpu_count() or 1))


def _decode_many(sources, shape, names):
    """Decode images into one (N, *shape) uint8 array with a thread pool.
    Each must already be ``shape`` (no resizing). Returns (x, bad) where bad is
    a list of (index, "<name> <reason>") for images that could not be used
    (their rows are left zero)."""
    n = len(sources)
    x = np.zeros((n, *shape), np.uint8)
    bad = []

    def work(lo, hi):
        found = []
        for i in range(lo, hi):
            img = _decode_one(sources[i])
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


def _report_bad_images(bad, total: int, source) -> None:
    """Warn about a few unusable images (``bad``: "<file> <reason>" strings,
    each named, with the count); raise DataError when more than 1% of
    ``total`` are bad."""
    if not bad:
        return
    listing = "; ".join(bad)
    if len(bad) > _BAD_IMAGE_LIMIT * total:
        shown = "; ".join(bad[:20])
        more = f"; and {len(bad) - 20} more" if len(bad) > 20 else ""
        raise DataError(f"{source}: {len(bad)} of {total} images are unusable "
                        f"(more than {_BAD_IMAGE_LIMIT:.0%}): {shown}{more}")
    warnings.warn(f"{source}: skipped {len(bad)} unusable image(s) of {total}: {listing}",
                  stacklevel=3)


def read_images(paths, size=(224, 224), batch_size=64):
    """Decode image files in batches with a small thread pool, prefetching the
    next batch while the caller works on the current one.

    Yields uint8 arrays (B, height, width, 3), RGB, each image resized to
    ``size`` = (height, width); the last batch may be smaller. Raises
    DataError naming the first file that cannot be read or decoded."""
    paths = [Path(p) for p in paths]
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")

    def batch(lo):
        out = np.empty((min(batch_size, len(paths) - lo), size[0], size[1], 3), np.uint8)
        for j, p in enumerate(paths[lo:lo + len(out)]):
            img = _decode_one(p, size)
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


# --------------------------------------------------------------------------
# Image folders


def _tree_entries(names_by_split: dict, source) -> dict:
    """Check {split: {class: [files]}} read from a tree and return it with
    the splits in train, valid, test order. Raises DataError when there is no
    split, a split has no class folders or an empty one, or the splits have
    different classes."""
    tree = {s: names_by_split[s] for s in SPLITS if s in names_by_split}
    if not tree:
        raise DataError(f"{source}: no train/, valid/ or test/ folder with class folders in it")
    for split, classes in tree.items():
        if not classes:
            raise DataError(f"{source}/{split}: no class folders")
        empty = sorted(c for c, files in classes.items() if not files)
        if empty:
            raise DataError(f"{source}/{split}: empty class folder(s) with no images: {', '.join(empty)}")
    reference_split = next(iter(tree))
    reference = set(tree[reference_split])
    for split, classes in tree.items():
        if set(classes) != reference:
            extra = sorted(set(classes) - reference)
            missing = sorted(reference - set(classes))
            raise DataError(f"{source}: {split}/ and {reference_split}/ have different class folders "
                            f"(only in {split}: {extra or 'none'}; missing from {split}: {missing or 'none'})")
    return tree


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _warn_skipped_files(skipped, source) -> None:
    if skipped:
        warnings.warn(f"{source}: skipped {len(skipped)} file(s) that are not images "
                      f"(by extension): {', '.join(map(str, skipped))}", stacklevel=3)


def _split_result(classes_files: dict, shuffle: bool, seed: int, key_of=lambda f: f):
    """Return (files, labels int64, classes) with classes sorted, files sorted
    within a class and then shuffled with ``seed`` when asked."""
    classes = sorted(classes_files)
    files, labels = [], []
    for label, c in enumerate(classes):
        members = sorted(classes_files[c], key=key_of)
        files += members
        labels += [label] * len(members)
    labels = np.asarray(labels, np.int64)
    if shuffle:
        order = np.random.default_rng(seed).permutation(len(files))
        files = [files[i] for i in order]
        labels = labels[order]
    return files, labels, classes


def load_image_folder(root, shuffle=True, seed=0) -> dict:
    """List an image tree ``root/<split>/<class>/<image file>`` (split is
    train, valid or test). Nothing is decoded: pass the paths to
    :func:`read_images` for batches of decoded, resized images.

    Returns {split: {"paths": [Path], "labels": int64 array, "classes":
    [str]}} for the splits present; classes are the sorted class-folder names
    (the same in every split) and a label is an index into them. With
    ``shuffle`` each split's order is mixed with a fixed ``seed``. Files that
    are not images by extension are skipped with a warning naming them;
    hidden files are ignored. Raises DatasetNotFound when ``root`` does not
    exist, DataError when it is not such a tree, a class folder is empty, or
    the splits have different classes."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetNotFound(f"{root}: no such folder (expected {root}/train/<class>/<image>)")
    if not root.is_dir():
        raise DataError(f"{root}: a file, not a folder; unpack it first "
                        "(`python -m cnn_course data import NAME PATH` does that for known datasets)")
    names_by_split, skipped = {}, []
    for split in SPLITS:
        folder = root / split
        if not folder.is_dir():
            continue
        classes = {}
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            if not entry.is_dir():
                skipped.append(Path(entry.path))
                continue
            files = []
            for f in os.scandir(entry.path):
                if f.name.startswith("."):
                    continue
                if f.is_file() and _is_image_name(f.name):
                    files.append(Path(f.path))
                else:
                    skipped.append(Path(f.path))
            classes[entry.name] = files
        names_by_split[split] = classes
    tree = _tree_entries(names_by_split, root)
    _warn_skipped_files(skipped, root)
    out = {}
    for i, (split, classes_files) in enumerate(tree.items()):
        paths, labels, classes = _split_result(classes_files, shuffle, seed + i)
        out[split] = {"paths": paths, "labels": labels, "classes": classes}
    return out


def _tar_tree(path: Path) -> dict:
    """Read an image tree from a tarball: {split: {class: [(member name,
    bytes)]}}. Files that are not images are skipped with a warning. Raises
    DataError for a corrupt archive or a tree without splits."""
    names_by_split, skipped = {}, []
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                parts = Path(member.name).parts
                if any(p.startswith(".") for p in parts):
                    continue
                split_at = [i for i, p in enumerate(parts) if p in SPLITS]
                if not split_at:
                    continue
                i = split_at[0]
                rest = parts[i + 1:]
                if member.isdir() and len(rest) == 1:
                    names_by_split.setdefault(parts[i], {}).setdefault(rest[0], [])
                    continue
                if not member.isfile():
                    continue
                if len(rest) != 2 or not _is_image_name(rest[1]):
                    skipped.append(member.name)
                    continue
                data = tar.extractfile(member).read()
                names_by_split.setdefault(parts[i], {}).setdefault(rest[0], []).append((member.name, data))
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a readable tar archive, truncated or corrupt ({e})") from None
    tree = _tree_entries(names_by_split, path)
    _warn_skipped_files(skipped, path)
    return tree


def _decode_cifar_tree(source: Path, kind: str):
    """Decode a CIFAR-10 JPEG tree (folder or tarball) into arrays, sorted by
    class and file name and then shuffled with a fixed seed. Returns
    ((x_train, y_train), (x_test, y_test), bad) where bad lists
    "<file> <reason>" for skipped images. Raises DataError."""
    if kind == "tree":
        listing = load_image_folder(source, shuffle=False)
        tree = {s: (v["paths"], v["labels"], v["classes"]) for s, v in listing.items()}
        names_of = {s: [str(p) for p in v[0]] for s, v in tree.items()}
        srcs_of = {s: v[0] for s, v in tree.items()}
    else:
        raw = _tar_tree(source)
        tree, names_of, srcs_of = {}, {}, {}
        for split, classes_files in raw.items():
            files, labels, classes = _split_result(classes_files, False, 0, key_of=lambda f: f[0])
            tree[split] = (files, labels, classes)
            names_of[split] = [f"{source}:{f[0]}" for f in files]
            srcs_of[split] = [f[1] for f in files]
    for split in ("train", "test"):
        if split not in tree:
            raise DataError(f"{source}: no {split}/ folder (CIFAR-10 needs train/<class>/ and test/<class>/)")
        classes = tree[split][2]
        if tuple(classes) != CIFAR10_CLASSES:
            raise DataError(f"{source}/{split}: class folders are {', '.join(classes)}; "
                            f"CIFAR-10 needs exactly {', '.join(CIFAR10_CLASSES)}")
    if "valid" in tree:
        warnings.warn(f"{source}: ignoring valid/ (CIFAR-10 has train and test only)", stacklevel=3)
    out, all_bad = [], []
    for k, split in enumerate(("train", "test")):
        labels = tree[split][1]
        x, bad = _decode_many(srcs_of[split], (32, 32, 3), names_of[split])
        _report_bad_images([b for _, b in bad], len(x), f"{source} ({split})")
        if bad:
            keep = np.ones(len(x), bool)
            keep[[i for i, _ in bad]] = False
            x, labels = x[keep], labels[keep]
            all_bad += [b for _, b in bad]
        order = np.random.default_rng(k).permutation(len(x))
        out.append(_check_arrays(x[order], labels[order], (32, 32, 3), 10,
                                 f"{source} ({split})", CIFAR10_CLASSES))
    return out[0], out[1], all_bad


# --------------------------------------------------------------------------
# The decode cache of JPEG trees


def _source_key(source: Path) -> str:
    """Return a short hash of a source's size and modification time (for a
    folder: the count, total size and latest mtime of its files), so a
    changed source gets a new cache."""
    if source.is_file():
        st = source.stat()
        sig = f"{st.st_size}:{st.st_mtime_ns}"
    else:
        count = size = latest = 0
        stack = [source]
        while stack:
            for entry in os.scandir(stack.pop()):
                if entry.is_dir():
                    stack.append(entry.path)
                else:
                    st = entry.stat()
                    count, size, latest = count + 1, size + st.st_size, max(latest, st.st_mtime_ns)
        sig = f"{count}:{size}:{latest}"
    return hashlib.sha1(f"{sig}:{_CACHE_VERSION}".encode()).hexdigest()[:10]


def _cache_name(source: Path) -> tuple[str, str]:
    """Return (prefix shared by every cache of this source, full file name)."""
    where = hashlib.sha1(str(source.resolve()).encode()).hexdigest()[:8]
    prefix = f"{source.name}.{where}."
    return prefix, f"{prefix}{_source_key(source)}.decoded.npz"


def _cache_dirs(source: Path) -> list[Path]:
    """Folders for a source's decode cache, most preferred first: the repo's
    data folder (git-ignored; keeps shared or read-only source folders
    clean), the source's own folder, then the Keras cache."""
    dirs = [REPO_DATA_DIR] if REPO_DATA_DIR.is_dir() else []
    for d in (source.parent, keras_cache_dir()):
        if d not in dirs:
            dirs.append(d)
    return dirs


def _read_cache(source: Path):
    """Return (train, test, cache path) from a valid cache of ``source``, or
    None when there is none. A damaged cache is reported and ignored."""
    _, name = _cache_name(source)
    for d in _cache_dirs(source):
        path = d / name
        if not path.is_file():
            continue
        try:
            with np.load(path, allow_pickle=False) as f:
                a = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test", "bad")}
            train = _check_arrays(a["x_train"], a["y_train"], (32, 32, 3), 10, str(path), CIFAR10_CLASSES)
            test = _check_arrays(a["x_test"], a["y_test"], (32, 32, 3), 10, str(path), CIFAR10_CLASSES)
        except Exception as e:
            warnings.warn(f"ignoring the damaged decode cache {path} ({e}); decoding again", stacklevel=3)
            continue
        if len(a["bad"]):
            warnings.warn(f"{source}: skipped {len(a['bad'])} unusable image(s) when it was decoded: "
                          f"{'; '.join(map(str, a['bad']))}", stacklevel=3)
        return train, test, path
    return None


def _write_cache(source: Path, train, test, bad) -> Path | None:
    """Write the decoded arrays to the first cache folder that takes them
    (atomically), removing older caches of the same source there. Returns the
    cache path, or None when no folder was writable (warned)."""
    prefix, name = _cache_name(source)
    for d in _cache_dirs(source):
        tmp = d / f".tmp-{os.getpid()}-{name}"
        try:
            d.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:  # not mkstemp: keep the umask's permissions
                np.savez(f, x_train=train[0], y_train=train[1], x_test=test[0], y_test=test[1],
                         bad=np.asarray(bad, dtype=str))
            os.replace(tmp, d / name)
        except OSError:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            continue
        for old in d.glob(f"{prefix}*.decoded.npz"):
            if old.name != name:
                old.unlink(missing_ok=True)
        return d / name
    warnings.warn(f"could not write a decode cache for {source} in any of "
                  f"{', '.join(map(str, _cache_dirs(source)))}; it will be decoded again next time",
                  stacklevel=3)
    return None


def _load_cifar_tree(source: Path, kind: str):
    """Load a CIFAR-10 JPEG tree through its decode cache. Returns (train,
    test, note) where note says where the cache is."""
    cached = _read_cache(source)
    if cached:
        return cached[0], cached[1], f"JPEG copy, decoded cache {cached[2]}"
    print(f"Decoding the CIFAR-10 JPEG images in {source} once; the arrays are cached "
          "for later loads.", file=sys.stderr)
    train, test, bad = _decode_cifar_tree(source, kind)
    path = _write_cache(source, train, test, bad)
    return train, test, f"JPEG copy, decoded{f' and cached in {path}' if path else ''}"


# --------------------------------------------------------------------------
# Downloads


def _get_file(fname: str, url: str, file_hash, subdir: str = "datasets", name: str = "NAME") -> Path:
    """Download ``url`` into the Keras cache with Keras's progress bar (or
    reuse a copy there whose hash matches). Returns the local path. Raises
    DatasetNotFound for a network failure, DataError for a bad download."""
    import keras

    try:
        return Path(keras.utils.get_file(fname=fname, origin=url, file_hash=file_hash,
                                         cache_dir=str(keras_home()), cache_subdir=subdir))
    except ValueError as e:
        raise DataError(f"the download of {url} is corrupt or incomplete ({e})") from None
    except Exception as e:  # Keras wraps HTTPError/URLError in a plain Exception
        raise DatasetNotFound(f"Could not download {fname} from {url}: {e}. Check the network, "
                              f"or get the file by other means and run "
                              f"`python -m cnn_course data import {name} PATH`.") from None


def _offline_refusal(name: str) -> DatasetNotFound:
    """The error fetch raises when downloads are switched off."""
    return DatasetNotFound(
        f"Not downloading {_TITLES[name]}: CNN_COURSE_OFFLINE={os.environ.get('CNN_COURSE_OFFLINE')} "
        f"is set. Get {_GET[name]} by other means and run "
        f"`python -m cnn_course data import {name} PATH`, or unset CNN_COURSE_OFFLINE.")


def _safe_member_path(dest: Path, name: str) -> Path:
    """Return dest/name, refusing names that would land outside ``dest``."""
    target = (dest / name).resolve()
    if not str(target).startswith(str(dest.resolve()) + os.sep):
        raise DataError(f"refusing to unpack {name!r}: it points outside {dest}")
    return target


def _write_pickles_folder(batches: dict, dest: Path) -> Path:
    """Write {name: bytes} into the folder ``dest`` (through a temporary
    folder, replacing what was there). Returns dest. Raises OSError."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".tmp-", dir=dest.parent))
    try:
        (work / dest.name).mkdir()
        for name, data in batches.items():
            (work / dest.name / name).write_bytes(data)
        _replace_with(work / dest.name, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


def _unpack_cifar_pickles(tarball: Path, dest: Path) -> Path:
    """Check the CIFAR-10 pickles in ``tarball`` and write them into the
    folder ``dest``. Returns dest; raises DataError."""
    batches = _cifar_pickles_in_tar(tarball)
    _cifar_from_batches(batches, tarball)  # check before writing anything
    return _write_pickles_folder(batches, dest)


def fetch(name: str) -> Path:
    """Download dataset ``name`` (one of DATASETS) into the Keras cache with
    Keras's progress bar, from the official URL with its hash, and check it.

    Returns the local file or folder: mnist.npz; the cifar-10-batches-py
    folder; the dogImages folder; the Keras models folder holding both VGG16
    weight files. Raises DatasetNotFound when CNN_COURSE_OFFLINE=1 or the
    download fails (one clear sentence), DataError when what arrived is
    corrupt, ValueError for an unknown name."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if offline():
        raise _offline_refusal(name)
    if name == "mnist":
        path = _get_file(MNIST_FILE, MNIST_URL, MNIST_SHA256, name="mnist")
        _read_mnist_npz(path)
        return path
    if name == "cifar10":
        tarball = _get_file(CIFAR10_FILE, CIFAR10_URL, CIFAR10_SHA256, name="cifar10")
        return _unpack_cifar_pickles(tarball, tarball.parent / "cifar-10-batches-py")
    if name == "dogs":
        return find_dog_images(_get_file(DOGS_FILE, DOGS_URL, None, name="dogs"))
    for include_top in (False, True):
        fname, md5 = VGG16_FILES[include_top]
        path = _get_file(fname, VGG16_URL + fname, md5, subdir="models", name="vgg16")
        _check_h5(path)
    return path.parent


# --------------------------------------------------------------------------
# MNIST and CIFAR-10


def _load_named(name: str, path=None, download: bool = True):
    """Find, load and check MNIST or CIFAR-10. Returns (data, source, note).
    Raises DataError, DatasetNotFound."""
    kind, source, looked = _find(name, path)
    note = ""
    if kind is None:
        if not download:
            raise _not_found(name, looked, "No download was tried.")
        if offline():
            raise _not_found(name, looked, "Nothing was downloaded because CNN_COURSE_OFFLINE="
                                           f"{os.environ.get('CNN_COURSE_OFFLINE')}.")
        try:
            source = fetch(name)
        except DatasetNotFound as e:
            raise _not_found(name, looked, f"The download failed: {e}") from None
        kind, note = ("npz" if name == "mnist" else "pickles"), "downloaded"
    if kind == "npz":
        train, test = _read_mnist_npz(source)
    elif kind == "pickles":
        train, test = _read_cifar_pickles_dir(source)
    elif kind == "pickles-tar":
        train, test = _cifar_from_batches(_cifar_pickles_in_tar(source), source)
    else:
        train, test, note = _load_cifar_tree(source, kind)
    return (train, test), source, note


def load_mnist(path=None, download=True):
    """Load MNIST from a Keras-layout ``mnist.npz``, searched for in the
    module's order (see the module docstring); downloads it when it is found
    nowhere, ``download`` is true and CNN_COURSE_OFFLINE is not set.

    Returns ((x_train, y_train), (x_test, y_test)): uint8 (60000, 28, 28),
    (60000,), (10000, 28, 28), (10000,) for the real data. Raises
    DatasetNotFound (nothing found) or DataError (found but unusable)."""
    return _load_named("mnist", path, download)[0]


def load_cifar10(path=None, download=True):
    """Load CIFAR-10 from the Python pickles (a folder or the official
    cifar-10-python.tar.gz) or a JPEG tree (``train/<class>/``,
    ``test/<class>/``, a folder or a .tar.gz), searched for in the module's
    order. A JPEG tree is decoded once (a few seconds) and the arrays are
    cached in the repo's data folder (else beside the source, else the Keras
    cache), keyed on the source's size and mtime; its images are shuffled with
    a fixed seed. Downloads when found nowhere, ``download`` is true and
    CNN_COURSE_OFFLINE is not set.

    Returns ((x_train, y_train), (x_test, y_test)): uint8 (50000, 32, 32, 3),
    (50000,), (10000, 32, 32, 3), (10000,) for the real data, labels 0-9 in
    the order of CIFAR10_CLASSES (Keras's (N, 1) labels are flattened).
    Raises DatasetNotFound or DataError."""
    return _load_named("cifar10", path, download)[0]


def load_digits28(seed=0):
    """A stand-in for MNIST: scikit-learn's bundled handwritten digits (1,797
    real 8x8 images, no download), scaled to 0-255 and resized to 20x20 inside
    a 28x28 frame as MNIST's digits are, split 80/20 stratified by class.

    Returns ((x_train, y_train), (x_test, y_test)), uint8, x of shape
    (N, 28, 28). Raises nothing of its own."""
    import cv2
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = np.zeros((len(digits.images), 28, 28), np.uint8)
    for i, img in enumerate(digits.images):
        big = cv2.resize((img * (255 / 16)).astype(np.float32), (20, 20), interpolation=cv2.INTER_CUBIC)
        x[i, 4:24, 4:24] = np.clip(big, 0, 255).round().astype(np.uint8)
    y = digits.target.astype(np.uint8)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=seed)
    return (x_train, y_train), (x_test, y_test)


def _cifar_like_images(labels, rng, size=(32, 32)):
    """Generate RGB uint8 images whose colour and stripe pattern depend on the
    class (noisy, so it is not trivial, but a small CNN learns it fast)."""
    palette = np.array([
        [230, 60, 60], [60, 180, 75], [70, 90, 230], [240, 200, 40], [150, 60, 200],
        [60, 210, 210], [240, 130, 40], [240, 90, 190], [130, 130, 130], [140, 90, 40],
    ], np.float32)
    h, w = size
    n = len(labels)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = (labels * (np.pi / 10))[:, None, None]
    freq = (0.35 + 0.08 * (labels % 5))[:, None, None]
    phase = rng.uniform(0, 2 * np.pi, n)[:, None, None]
    stripes = np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy) + phase)
    base = palette[labels] * rng.uniform(0.6, 1.0, (n, 1))
    img = base[:, None, None, :] * (0.75 + 0.25 * stripes[..., None])
    img += rng.normal(0, 18, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_cifar10_standin(n_train=2000, n_test=500, seed=0):
    """A generated CIFAR-shaped stand-in: 32x32 RGB images whose colour and
    stripe direction depend on the class (labels balanced, 0-9), so a small
    CNN learns it in one or two epochs. Not real data.

    Returns ((x_train, y_train), (x_test, y_test)), x uint8 (N, 32, 32, 3),
    y uint8 (N,). Raises ValueError for sizes under 10."""
    if n_train < 10 or n_test < 10:
        raise ValueError("the stand-in needs at least 10 train and 10 test images (one per class)")
    rng = np.random.default_rng(seed)
    out = []
    for n in (n_train, n_test):
        y = rng.permutation(np.arange(n) % 10).astype(np.uint8)
        out.append((_cifar_like_images(y, rng), y))
    return out[0], out[1]


def load_lesson_data(name, path=None, quick=None):
    """Load the data a lesson trains on and say what it is.

    ``name`` is "mnist" or "cifar10". Real data found in any local place is
    used (also in quick mode). When none is found: with ``quick`` the
    labelled stand-in (load_digits28 / make_cifar10_standin) is used and
    nothing is downloaded; otherwise it is downloaded through Keras unless
    CNN_COURSE_OFFLINE=1. Prints exactly one line ``Data: <description>``.

    Returns (((x_train, y_train), (x_test, y_test)), description). Raises
    ValueError for an unknown name, DatasetNotFound, DataError."""
    if name not in ("mnist", "cifar10"):
        raise ValueError(f"unknown lesson dataset {name!r}; choose mnist or cifar10")
    quick = quick_mode(quick)
    title = _TITLES[name]
    try:
        data, source, note = _load_named(name, path, download=not quick)
    except DatasetNotFound:
        if not quick:
            raise
        if name == "mnist":
            data = load_digits28()
            what = "scikit-learn digits resized to 28x28"
        else:
            # 7,000 training images: the lessons hold out the first 5,000 for validation,
            # as with the real CIFAR-10, and still have 2,000 to train on
            data = make_cifar10_standin(n_train=7000, n_test=1000)
            what = "generated 32x32 colour-and-stripe images, one colour per class"
        description = (f"STAND-IN for {title}: {what}, {len(data[0][0])} train / {len(data[1][0])} test "
                       f"(real {title} not found; `python -m cnn_course data fetch {name}` gets it)")
    else:
        description = (f"{title} (real, {len(data[0][0])} train / {len(data[1][0])} test, "
                       f"from {source}{f'; {note}' if note else ''})")
    print(f"Data: {description}")
    return data, description


def standin_note(description):
    """Return what to add after an accuracy measured on the data `description` names.

    `description` is what `load_lesson_data` returned. For real data, "";
    for a labelled stand-in, " (STAND-IN data: this number says nothing about
    <dataset>)", so a smoke run's accuracy is never read as the lesson's
    result. Raises nothing.
    """
    text = str(description or "")
    if not text.startswith("STAND-IN"):
        return ""
    title = text.split(":", 1)[0].replace("STAND-IN for ", "").strip() or "the real data"
    return f" (STAND-IN data: this number says nothing about {title})"


# --------------------------------------------------------------------------
# The dog images


def _unzip_to(zip_path: Path, folder: Path) -> Path:
    """Unzip dogImages.zip into ``folder``/dogImages (through a temporary
    folder, replacing what was there). Returns that path. Raises DataError for
    a corrupt zip or one without train/, OSError when ``folder`` is not
    writable."""
    try:
        with zipfile.ZipFile(zip_path) as z:
            members = [m for m in z.infolist() if not m.filename.startswith("__MACOSX")]
            tops = {Path(m.filename).parts[0] for m in members if Path(m.filename).parts}
            prefix = "dogImages/" if tops == {"dogImages"} else ""
            if not any(m.filename.startswith(prefix + "train/") for m in members):
                raise DataError(f"{zip_path}: no train/ folder inside (expected dogImages/train/<breed>/)")
            folder.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=".tmp-unzip-", dir=folder))
            try:
                print(f"Unzipping {zip_path} into {folder / 'dogImages'} (once).", file=sys.stderr)
                tmp = work / "dogImages"
                tmp.mkdir()
                for m in members:
                    if m.is_dir() or not m.filename.startswith(prefix):
                        continue
                    target = _safe_member_path(tmp, m.filename[len(prefix):])
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with z.open(m) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                _replace_with(tmp, folder / "dogImages")
            finally:
                shutil.rmtree(work, ignore_errors=True)
    except (zipfile.BadZipFile, EOFError, zlib.error) as e:
        raise DataError(f"{zip_path}: not a readable zip file, truncated or corrupt ({e})") from None
    return folder / "dogImages"


def _unzip_dogs(zip_path: Path) -> Path:
    """Unzip dogImages.zip once, into the first writable of: the repo's data
    folder, the zip's folder, the Keras cache (an earlier unzipped copy in
    one of them is reused). Returns the dogImages root. Raises DataError."""
    for d in _cache_dirs(zip_path):
        if (d / "dogImages" / "train").is_dir():
            return d / "dogImages"
    for d in _cache_dirs(zip_path):
        try:
            return _unzip_to(zip_path, d)
        except OSError:
            continue
    raise DataError(f"could not unzip {zip_path}: none of {', '.join(map(str, _cache_dirs(zip_path)))} is writable")


def find_dog_images(path=None) -> Path:
    """Find the dog-breed images: a ``dogImages`` folder
    (train/valid/test/<NNN.Breed>/...) or ``dogImages.zip`` (unzipped once,
    into the repo's data folder when writable), from ``path``, then the data
    folders, then the Keras cache. Never downloads (see fetch).

    Returns the dogImages root folder. Raises DatasetNotFound naming
    dogImages.zip and its URL, DataError for a corrupt zip or a root without
    train/, valid/ and test/."""
    kind, source, looked = _find("dogs", path)
    if kind is None:
        raise _not_found("dogs", looked)
    root = _unzip_dogs(source) if kind == "zip" else source
    missing = [s for s in SPLITS if not (root / s).is_dir()]
    if missing:
        raise DataError(f"{root}: no {', '.join(s + '/' for s in missing)} folder "
                        "(expected train/, valid/ and test/ with one folder per breed)")
    return root


def make_image_folder_standin(root, n_classes=5, per_split=None, size=(64, 64), seed=0) -> Path:
    """Write a small generated JPEG tree ``root/<split>/<NNN.Name>/<i>.jpg``
    shaped like dogImages, with class-dependent colours and stripes, for quick
    runs and tests. ``per_split`` maps split to images per class (default
    {"train": 12, "valid": 4, "test": 4}); ``size`` is (height, width).

    Returns ``root`` as a Path. Raises OSError when it cannot be written."""
    import cv2

    per_split = {"train": 12, "valid": 4, "test": 4} if per_split is None else per_split
    root = Path(root)
    rng = np.random.default_rng(seed)
    names = ["Red", "Green", "Blue", "Yellow", "Purple", "Cyan", "Orange", "Pink", "Grey", "Brown"]
    for split, count in per_split.items():
        for c in range(n_classes):
            folder = root / split / f"{c + 1:03d}.Standin_{names[c % 10]}{'' if c < 10 else c}"
            folder.mkdir(parents=True, exist_ok=True)
            labels = np.full(count, c % 10)
            for i, img in enumerate(_cifar_like_images(labels, rng, size)):
                ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                                       [cv2.IMWRITE_JPEG_QUALITY, 90])
                (folder / f"{split}_{c:03d}_{i:04d}.jpg").write_bytes(buf.tobytes())
    return root


def _count_image_tree(root: Path) -> tuple[dict, int]:
    """Count the image files of ``root/<split>/<class>/`` without decoding
    them. Returns ({split: number of images}, number of class folders in the
    first split). Hidden files and non-image names are not counted."""
    counts, n_classes = {}, None
    for split in SPLITS:
        folder = root / split
        if not folder.is_dir():
            continue
        classes = [e for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")]
        if n_classes is None:
            n_classes = len(classes)
        counts[split] = sum(1 for c in classes for f in os.scandir(c.path)
                            if not f.name.startswith(".") and f.is_file() and _is_image_name(f.name))
    return counts, n_classes or 0


def _dog_standin_root(seed: int) -> Path:
    """Build (once) the generated dog-images stand-in for ``seed`` in the
    temp folder and return its root. It is built under a temporary name and
    renamed, so a half-written stand-in is never used. Raises OSError when
    the temp folder is not writable."""
    target = Path(tempfile.gettempdir()) / f"cnn-course-dogimages-standin-{int(seed)}"
    if (target / "test").is_dir():
        return target
    work = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        make_image_folder_standin(work / "dogImages", seed=seed)
        try:
            os.rename(work / "dogImages", target)
        except OSError:  # another run built it at the same time: use theirs
            if not (target / "test").is_dir():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def load_dog_images(path=None, quick=None, seed=0):
    """Find the dog-breed images for a lesson and say what they are.

    The real ``dogImages`` tree (or ``dogImages.zip``) is found with
    :func:`find_dog_images` (``path``, then the data folders, then the Keras
    cache; never downloaded). When it is missing and ``quick`` is true, a
    small generated tree of the same layout (colour-and-stripe images, one
    colour per class; :func:`make_image_folder_standin` with ``seed``) is
    built once in the temp folder and used instead. Prints exactly one line
    ``Data: <description>``; a stand-in says ``STAND-IN`` in it.

    Returns (root Path of the train/valid/test tree, description). Raises
    DatasetNotFound (not quick and not found) naming dogImages.zip, its URL
    and where to put it; DataError for a corrupt zip or an incomplete tree;
    OSError when the stand-in cannot be written."""
    quick = quick_mode(quick)
    title = _TITLES["dogs"]
    try:
        root = find_dog_images(path)
        real = True
    except DatasetNotFound:
        if not quick:
            raise
        root = _dog_standin_root(seed)
        real = False
    counts, n_classes = _count_image_tree(root)
    split_counts = " / ".join(f"{counts.get(s, 0)} {s}" for s in SPLITS)
    if real:
        description = f"Dog-breed images (real, {split_counts}, {n_classes} breeds, from {root})"
    else:
        description = (f"STAND-IN for {title}: generated colour-and-stripe images, one colour per class, "
                       f"{n_classes} classes, {split_counts} (real dogImages not found; "
                       "`python -m cnn_course data fetch dogs` gets it)")
    print(f"Data: {description}")
    return root, description


# --------------------------------------------------------------------------
# Sample photos


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
                    if p.is_file() and not p.name.startswith(".") and _is_image_name(p.name)),
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
            img = _decode_one(f)
            if isinstance(img, str):
                raise DataError(f"{f} {img}")
            photos.append(img)
        names = [f.name for f in files]
        where = ", ".join(str(Path(item).expanduser()) for item in items)
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    description = f"{len(names)} photo{'s' if len(names) != 1 else ''} from {where}: {shown}"
    print(f"Data: {description}")
    return photos, names, description


# --------------------------------------------------------------------------
# VGG16 weights


def _check_h5(path: Path) -> bool:
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


def _find_vgg16(include_top: bool) -> tuple[Path | None, list[str]]:
    """Return (path of the weights file or None, places looked)."""
    fname = VGG16_FILES[include_top][0]
    looked = []
    for label, folder in _places("vgg16"):
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
    path, looked = _find_vgg16(include_top)
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
        lines.append(f"Get {fname} ({VGG16_URL}{fname}) and put it in {_import_dir()} or "
                     f"{keras_home() / 'models'}; or run `python -m cnn_course data fetch vgg16`, or "
                     "`python -m cnn_course data import vgg16 PATH`.")
        raise DatasetNotFound("\n".join(lines))
    else:
        weights = "imagenet"
        description = f"VGG16 ImageNet weights (Keras downloads {fname} into {keras_home() / 'models'})"
    print(f"Weights: {description}")
    return weights, description


# --------------------------------------------------------------------------
# Status and import


def _how(name: str) -> str:
    return (f"get {_GET[name]} into {_import_dir()}, or run `python -m cnn_course data fetch {name}` "
            f"or `python -m cnn_course data import {name} PATH`")


def dataset_status() -> list[dict]:
    """Say, for each of DATASETS, whether it is available locally, without
    downloading or decoding anything.

    Returns one dict per dataset: {"name", "found": bool, "where": str or
    None, "how": str} where "how" says how to get it (or, for something found
    but unusable, what is wrong). Raises nothing."""
    out = []
    for name in DATASETS:
        found, where, how = False, None, _how(name)
        if name == "vgg16":
            hits = [p for p in (_find_vgg16(False)[0], _find_vgg16(True)[0]) if p]
            if hits:
                found, where = True, ", ".join(map(str, hits))
                how = "" if len(hits) == 2 else (f"only one of the two files; {_how(name)}")
        else:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    kind, source, _ = _find(name)
                if kind is not None:
                    found, where, how = True, str(source), ""
            except (DataError, OSError) as e:
                how = f"unusable: {e}; {_how(name)}"
        out.append({"name": name, "found": found, "where": where, "how": how})
    return out


def _replace_with(new: Path, dest: Path) -> None:
    """Move ``new`` to ``dest``, replacing whatever is there."""
    _remove(dest)
    os.replace(new, dest)


def _remove(path: Path) -> None:
    """Delete a file or folder if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _writable_import_dir() -> Path:
    """Return data_dirs()[0] (created if needed) when writable, else the
    repo's data folder. Raises DataError when neither is writable."""
    for d in dict.fromkeys([data_dirs()[0], REPO_DATA_DIR]):
        try:
            d.mkdir(parents=True, exist_ok=True)
            probe = tempfile.TemporaryFile(dir=d)
            probe.close()
            return d
        except OSError:
            continue
    raise DataError(f"no writable data folder among {', '.join(map(str, data_dirs()))}")


def _copy_in(src: Path, dest: Path) -> None:
    """Copy a file or folder to ``dest`` through a temporary name beside it,
    replacing what was there."""
    work = Path(tempfile.mkdtemp(prefix=".tmp-import-", dir=dest.parent))
    try:
        if src.is_dir():
            shutil.copytree(src, work / dest.name)
        else:
            shutil.copyfile(src, work / dest.name)
        _replace_with(work / dest.name, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _import_cifar10(src: Path, dest_dir: Path) -> Path:
    kind = _detect("cifar10", src)
    if kind is None and src.is_dir() and (src / "cifar-10-batches-py").is_dir():
        src, kind = src / "cifar-10-batches-py", "pickles"
    if kind is None:
        raise DataError(f"{src} is not CIFAR-10 data: expected {_GET['cifar10']}")
    if kind in ("pickles", "pickles-tar"):
        if kind == "pickles-tar":
            batches = _cifar_pickles_in_tar(src)
        else:
            batches = {f.name: f.read_bytes() for f in src.iterdir()
                       if f.is_file() and (f.name in CIFAR10_PICKLES or f.name == "batches.meta")}
        _cifar_from_batches(batches, src)
        return _write_pickles_folder(batches, dest_dir / "cifar-10-batches-py")
    dest = dest_dir / ("cifar10-jpeg" if kind == "tree" else "cifar10-jpeg.tar.gz")
    _copy_in(src, dest)
    try:
        _load_cifar_tree(dest, kind)  # checks it, and leaves the decode cache
    except DataError:
        _remove(dest)
        raise
    return dest


def _import_dogs(src: Path, dest_dir: Path) -> Path:
    kind = _detect("dogs", src)
    if kind is None and (src / "dogImages").is_dir():
        src, kind = src / "dogImages", "tree"
    if kind is None:
        raise DataError(f"{src} is not the dog images: expected {_GET['dogs']}")
    if kind == "tree":
        load_image_folder(src)  # checks the layout without decoding
        dest = dest_dir / "dogImages"
        _copy_in(src, dest)
    else:
        dest = _unzip_to(src, dest_dir)
    try:
        find_dog_images(dest)
        load_image_folder(dest)
    except DataError:
        _remove(dest)
        raise
    return dest


def import_dataset(name: str, src) -> Path:
    """Copy (or unpack) a local copy of dataset ``name`` into the data folder
    (``data_dirs()[0]``, or the repo's data folder when that is not
    writable), check it by loading it once, and return where it went.

    Accepts: mnist: mnist.npz (or a folder holding it). cifar10:
    cifar-10-python.tar.gz or its pickles folder (stored unpacked as
    cifar-10-batches-py/), or a JPEG tree folder or .tar.gz (stored as
    cifar10-jpeg/ or cifar10-jpeg.tar.gz, and decoded and cached once). dogs:
    a dogImages folder or dogImages.zip (stored unzipped as dogImages/).
    vgg16: a VGG16 .h5 weights file (stored under its Keras file name).
    Raises ValueError for an unknown name, DatasetNotFound when ``src`` does
    not exist, DataError when it is not the dataset or fails the checks (then
    nothing is left behind)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    src = Path(src).expanduser()
    if not src.exists():
        raise DatasetNotFound(f"{src}: no such file or folder")
    dest_dir = _writable_import_dir()
    if name == "mnist":
        if src.is_dir():
            if not (src / MNIST_FILE).is_file():
                raise DataError(f"{src}: no {MNIST_FILE} in this folder")
            src = src / MNIST_FILE
        _read_mnist_npz(src)
        dest = dest_dir / MNIST_FILE
    elif name == "cifar10":
        return _import_cifar10(src, dest_dir)
    elif name == "dogs":
        return _import_dogs(src, dest_dir)
    else:
        if not src.is_file():
            raise DataError(f"{src}: expected a VGG16 .h5 weights file")
        dest = dest_dir / VGG16_FILES[_check_h5(src)][0]
    if src.resolve() != dest.resolve():
        _copy_in(src, dest)
    return dest
