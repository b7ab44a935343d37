"""Reading and checking the array formats: MNIST's ``mnist.npz`` and the
CIFAR-10 Python pickles (a folder or the official tarball), and writing
the pickles. Every array read is checked (shape, dtype, labels, classes)."""

from __future__ import annotations

import io
import pickle
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from .catalog import CIFAR10_CLASSES, CIFAR10_PICKLES, MAX_CIFAR_PICKLE_BYTES, MAX_NPZ_ARRAY_BYTES, MiB
from .errors import DataError, one_line, tar_detail
from . import install


def check_arrays(x, y, image_shape, n_classes, what: str, class_names=None):
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


MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")


def npz_members(path: Path, keys, max_bytes: int | None = None) -> dict:
    """Look inside an .npz without loading its arrays: check that it is a
    readable zip holding ``keys``, each a plain numeric array (no Python
    objects) of at most ``max_bytes``.

    Returns {key: (shape, dtype)} read from the array headers. Raises
    DataError naming the file for a truncated or corrupt file, a single
    .npy array, a missing key, an encrypted member, an object array or an
    array over the limit (``max_bytes``; None: MAX_NPZ_ARRAY_BYTES), stored
    or declared by its header's shape."""
    keys = tuple(keys)
    max_bytes = MAX_NPZ_ARRAY_BYTES if max_bytes is None else max_bytes
    try:
        with zipfile.ZipFile(path) as z:
            infos = {i.filename[:-4]: i for i in z.infolist() if i.filename.endswith(".npy")}
            missing = [k for k in keys if k not in infos]
            if missing:
                raise DataError(f"{path}: missing arrays {', '.join(missing)} (expected {', '.join(keys)})")
            out = {}
            for k in keys:
                if infos[k].file_size > max_bytes:
                    raise DataError(f"{path}: array {k} is {infos[k].file_size / MiB:.0f} MiB, over the "
                                    f"{max_bytes / MiB:.0f} MiB limit for one array of this dataset")
                install.check_zip_member(path, infos[k], max_bytes, "one array of this dataset")
                with z.open(infos[k]) as f:
                    version = np.lib.format.read_magic(f)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read_header(f)
                if dtype.hasobject:
                    raise DataError(f"{path}: array {k} holds Python objects, not numbers; "
                                    "refusing to unpickle it")
                declared = int(np.prod(shape, dtype=object)) * dtype.itemsize  # exact, no overflow
                if declared > max_bytes:
                    raise DataError(f"{path}: array {k} declares shape {shape} of {dtype}, "
                                    f"{declared / MiB:.0f} MiB, over the {max_bytes / MiB:.0f} MiB "
                                    "limit for one array of this dataset")
                out[k] = (shape, dtype)
            return out
    except DataError:
        raise
    except zipfile.BadZipFile:
        if _is_npy(path):
            raise DataError(f"{path}: a single .npy array, not an .npz holding {', '.join(keys)}") from None
        raise DataError(f"{path}: not a readable .npz file (truncated or corrupt)") from None
    except (OSError, EOFError, ValueError, zlib.error, zipfile.LargeZipFile) as e:
        raise DataError(f"{path}: not a readable .npz file, truncated or corrupt ({one_line(e)})") from None


def _is_npy(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(6) == b"\x93NUMPY"
    except OSError:
        return False


def read_npz(path: Path, keys, max_bytes: int | None = None) -> dict:
    """Load the arrays ``keys`` of an .npz after :func:`npz_members` has
    checked it (never unpickling anything). Returns {key: array}. Raises
    DataError naming the file."""
    npz_members(path, keys, max_bytes)
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in keys}
    except Exception as e:  # zlib.error, EOFError, ValueError, OSError: a damaged member
        raise DataError(f"{path}: not a readable .npz file, truncated or corrupt ({one_line(e)})") from None


def read_mnist_npz(path: Path):
    """Read and check a Keras-layout mnist.npz. Returns the two splits.
    Raises DataError for a truncated/corrupt file, missing keys, an array
    over MAX_NPZ_ARRAY_BYTES, Python objects, wrong shapes, dtype or labels."""
    a = read_npz(path, MNIST_KEYS)
    train = check_arrays(a["x_train"], a["y_train"], (28, 28), 10, f"{path} (train)")
    test = check_arrays(a["x_test"], a["y_test"], (28, 28), 10, f"{path} (test)")
    return train, test


def check_mnist_npz(path: Path) -> None:
    """Check mnist.npz cheaply, without loading it: readable, its four
    arrays there with MNIST's shapes. Raises DataError saying what is wrong."""
    found = npz_members(path, MNIST_KEYS)
    for split in ("train", "test"):
        xs, ys = found[f"x_{split}"][0], found[f"y_{split}"][0]
        if len(xs) != 3 or tuple(xs[1:]) != (28, 28) or len(ys) not in (1, 2) or ys[0] != xs[0]:
            raise DataError(f"{path}: x_{split} {xs} and y_{split} {ys} are not MNIST's shapes "
                            "((N, 28, 28) and (N,))")


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


def cifar_from_batches(batches: dict, source: Path):
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
    train = check_arrays(x_train, y_train, (32, 32, 3), 10, f"{source} (train)", CIFAR10_CLASSES)
    test = check_arrays(x_test, parts[5][1], (32, 32, 3), 10, f"{source} (test)", CIFAR10_CLASSES)
    return train, test


def pickles_in_folder(folder: Path) -> dict:
    """Return {name: bytes} of the CIFAR-10 batches (and batches.meta) in a
    folder. Raises DataError for a file over MAX_CIFAR_PICKLE_BYTES or one
    that cannot be read."""
    batches = {}
    for name in CIFAR10_PICKLES + ("batches.meta",):
        f = folder / name
        if not f.is_file():
            continue
        try:
            size = f.stat().st_size
            if size > MAX_CIFAR_PICKLE_BYTES:
                raise DataError(f"{f}: {size / MiB:.0f} MiB, over the {MAX_CIFAR_PICKLE_BYTES / MiB:.0f} MiB "
                                "limit for one CIFAR-10 batch")
            batches[name] = f.read_bytes()
        except OSError as e:
            raise DataError(f"{f}: cannot be read ({e.strerror or e})") from None
    return batches


def read_cifar_pickles_dir(folder: Path):
    """Read the CIFAR-10 pickles folder. Returns the two splits; raises DataError."""
    return cifar_from_batches(pickles_in_folder(folder), folder)


def cifar_pickles_in_tar(path: Path) -> dict:
    """Return {batch name: bytes} of the CIFAR-10 pickles inside a tarball
    (read in memory, nothing written). Raises DataError for a corrupt
    archive, a member that is a link, absolute or leads out with ``..``, and
    a batch over MAX_CIFAR_PICKLE_BYTES."""
    batches = {}
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                base = PurePosixPath(member.name).name
                wanted = base in CIFAR10_PICKLES or base == "batches.meta"
                install.check_member(path, member.name, member.size if wanted else 0,
                                   MAX_CIFAR_PICKLE_BYTES, "one CIFAR-10 batch",
                                   is_file=member.isfile() or member.isdir())
                if member.isfile() and wanted:
                    batches[base] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a readable tar archive, truncated or corrupt{tar_detail(e)}") from None
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

