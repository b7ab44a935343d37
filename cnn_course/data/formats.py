"""Reading and checking MNIST's ``mnist.npz`` and the CIFAR-10 pickles (a folder or the official
tarball), and writing the pickles. Every array read is checked (shape, dtype, labels, classes)."""

from __future__ import annotations

import io
import pickle
import zipfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from . import install
from .catalog import CIFAR10_CLASSES, CIFAR10_PICKLES, MAX_NPZ_ARRAY_BYTES, DataError, MiB, one_line
from .catalog import MAX_CIFAR_PICKLE_BYTES as MAX_PICKLE

MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")


def check_arrays(x, y, image_shape, n_classes, what: str, class_names=None):
    """Check one split (x uint8 (N, *image_shape), y integers 0..n_classes-1, every class present);
    return (x, y as uint8 (N,)). Raises DataError naming ``what``."""
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype != np.uint8:
        raise DataError(f"{what}: images have dtype {x.dtype}, expected uint8")
    if x.ndim != 1 + len(image_shape) or tuple(x.shape[1:]) != tuple(image_shape):
        raise DataError(f"{what}: images have shape {x.shape}, expected (N, {', '.join(map(str, image_shape))})")
    y = y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y
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
        raise DataError(f"{what}: {bad.size} labels out of range 0-{n_classes - 1} (first: {y[bad[0]]}, at {bad[0]})")
    missing = np.flatnonzero(np.bincount(y.astype(np.int64), minlength=n_classes) == 0)
    if missing.size:
        names = [class_names[i] if class_names else str(i) for i in missing]
        raise DataError(f"{what}: no images of class {', '.join(names)}")
    return x, y.astype(np.uint8)


def npz_members(path: Path, keys) -> dict:
    """{key: (shape, dtype)} from an .npz's array headers, nothing loaded. Raises DataError for an
    unreadable file, a missing key, an object array, or an array over MAX_NPZ_ARRAY_BYTES stored or declared."""
    limit = MAX_NPZ_ARRAY_BYTES
    over = "MiB limit for one array of this dataset"
    try:
        with zipfile.ZipFile(path) as z:
            infos = {i.filename[:-4]: i for i in z.infolist() if i.filename.endswith(".npy")}
            missing = [k for k in keys if k not in infos]
            if missing:
                raise DataError(f"{path}: missing arrays {', '.join(missing)} (expected {', '.join(keys)})")
            out = {}
            for k in keys:
                if (size := infos[k].file_size) > limit:
                    raise DataError(f"{path}: array {k} is {size / MiB:.0f} MiB, over the {limit / MiB:.0f} {over}")
                install.check_member(path, infos[k], limit, "one array of this dataset")  # encrypted, a link
                with z.open(infos[k]) as f:
                    v = np.lib.format.read_magic(f)
                    read = np.lib.format.read_array_header_1_0 if v == (1, 0) else np.lib.format.read_array_header_2_0
                    shape, _, dtype = read(f)
                if dtype.hasobject:
                    raise DataError(f"{path}: array {k} holds Python objects, not numbers; refusing to unpickle it")
                declared = int(np.prod(shape, dtype=object)) * dtype.itemsize  # exact, no overflow
                if declared > limit:
                    raise DataError(
                        f"{path}: array {k} declares shape {shape} of {dtype}, over the {limit / MiB:.0f} {over}"
                    )
                out[k] = (shape, dtype)
            return out
    except DataError:
        raise
    except zipfile.BadZipFile:
        with open(path, "rb") as f:
            if f.read(6) == b"\x93NUMPY":
                raise DataError(f"{path}: a single .npy array, not an .npz holding {', '.join(keys)}") from None
        raise DataError(f"{path}: not a readable .npz file (truncated or corrupt)") from None
    except (OSError, EOFError, ValueError, zlib.error, zipfile.LargeZipFile) as e:
        raise DataError(f"{path}: not a readable .npz file, truncated or corrupt ({one_line(e)})") from None


def read_npz(path: Path, keys) -> dict:
    """{key: array} of an .npz, after npz_members has checked it (never unpickling); DataError."""
    npz_members(path, keys)
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in keys}
    except Exception as e:  # zlib.error, EOFError, ValueError, OSError: a damaged member
        raise DataError(f"{path}: not a readable .npz file, truncated or corrupt ({one_line(e)})") from None


def read_mnist_npz(path: Path):
    """Read and check a Keras-layout mnist.npz; return its two splits."""
    a = read_npz(path, MNIST_KEYS)
    return tuple(check_arrays(a[f"x_{s}"], a[f"y_{s}"], (28, 28), 10, f"{path} ({s})") for s in ("train", "test"))


def check_mnist_npz(path: Path) -> None:
    """Check mnist.npz from its array headers only: the four arrays with MNIST's shapes."""
    found = npz_members(path, MNIST_KEYS)
    for split in ("train", "test"):
        xs, ys = found[f"x_{split}"][0], found[f"y_{split}"][0]
        if len(xs) != 3 or tuple(xs[1:]) != (28, 28) or len(ys) not in (1, 2) or ys[0] != xs[0]:
            raise DataError(f"{path}: x_{split} {xs} and y_{split} {ys} are not MNIST's shapes ((N, 28, 28) and (N,))")


class _CifarUnpickler(pickle.Unpickler):
    """Builds only dicts, lists, strings and NumPy arrays: a found file cannot run code."""

    ALLOWED = {(f"numpy.{c}", n) for c in ("core.multiarray", "_core.multiarray") for n in ("_reconstruct", "scalar")}
    ALLOWED |= {("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"), ("numpy", "ndarray")}
    ALLOWED |= {("numpy", "dtype"), ("_codecs", "encode"), ("copy_reg", "_reconstructor")}
    ALLOWED |= {("copyreg", "_reconstructor"), ("__builtin__", "object"), ("builtins", "object")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise DataError(f"refusing to load {module}.{name}: a CIFAR-10 batch never imports it (it could run code)")
        return super().find_class(module, name)


def read_cifar_batch(data: bytes, where: str):
    """Decode one CIFAR-10 pickle: (x (N, 32, 32, 3) uint8, labels (N,)). DataError naming ``where``."""
    try:
        d = _CifarUnpickler(io.BytesIO(data), encoding="bytes").load()
    except DataError as e:
        raise DataError(f"{where}: {e}") from None
    except Exception as e:
        raise DataError(f"{where}: not a readable CIFAR-10 pickle ({type(e).__name__}: {e})") from None
    if not isinstance(d, dict):
        raise DataError(f"{where}: holds a {type(d).__name__}, expected a dict with 'data' and 'labels'")
    d = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in d.items()}
    if "data" not in d or "labels" not in d:
        raise DataError(f"{where}: no 'data' and 'labels' entries (has {', '.join(map(str, d))})")
    x, labels = np.asarray(d["data"]), np.asarray(d["labels"])
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
        raise DataError(f"{where}: 'data' is {x.dtype} {x.shape}, expected uint8 (N, 3072)")
    if labels.shape != (len(x),):
        raise DataError(f"{where}: {len(x)} images but labels of shape {labels.shape}")
    return x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def cifar_from_batches(batches: dict, source: Path):
    """The two checked splits from {batch name: bytes}; DataError naming a missing or bad batch."""
    missing = [f for f in CIFAR10_PICKLES if f not in batches]
    if missing:
        raise DataError(f"{source}: missing {', '.join(missing)} (CIFAR-10 has {', '.join(CIFAR10_PICKLES)})")
    parts = [read_cifar_batch(batches[f], f"{source}/{f}") for f in CIFAR10_PICKLES]
    x_train, y_train = (np.concatenate([p[i] for p in parts[:5]]) for i in (0, 1))
    test = np.ascontiguousarray(parts[5][0]), parts[5][1]
    splits = (("train", x_train, y_train), ("test", *test))
    return tuple(check_arrays(x, y, (32, 32, 3), 10, f"{source} ({s})", CIFAR10_CLASSES) for s, x, y in splits)


def cifar_batches(source: Path, kind: str) -> dict:
    """{name: bytes} of the CIFAR-10 batches in a folder or a tarball ("pickles-tar"), within limits; DataError."""
    names, what = CIFAR10_PICKLES + ("batches.meta",), "one CIFAR-10 batch"
    if kind == "pickles-tar":
        found = install.read_tar(source, lambda m: PurePosixPath(m.name).name in names, MAX_PICKLE, what)
        return {PurePosixPath(m.name).name: data for m, data in found if data is not None}
    batches = {}
    for f in (source / name for name in names if (source / name).is_file()):
        try:
            if (size := f.stat().st_size) > MAX_PICKLE:
                raise DataError(f"{f}: {size / MiB:.0f} MiB, over the {MAX_PICKLE / MiB:.0f} MiB limit for {what}")
            batches[f.name] = f.read_bytes()
        except OSError as e:
            raise DataError(f"{f}: cannot be read ({e.strerror or e})") from None
    return batches


def read_cifar(source: Path, kind: str):
    """The two checked splits of CIFAR-10 pickles: a folder ("pickles") or a tarball ("pickles-tar")."""
    return cifar_from_batches(cifar_batches(source, kind), source)


def write_cifar10_pickles(folder, train, test, protocol=4) -> Path:
    """Write arrays in CIFAR-10's Python layout (``data_batch_1``..``5``, ``test_batch``); return the folder.
    Protocol 4 stores the pixels as raw bytes. DataError for images that are not uint8 (N, 32, 32, 3)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (x_train, y_train), (x_test, y_test) = train, test
    chunks = list(zip(np.array_split(np.asarray(x_train), 5), np.array_split(np.asarray(y_train).ravel(), 5)))
    for name, (x, y) in zip(CIFAR10_PICKLES, chunks + [(np.asarray(x_test), np.asarray(y_test).ravel())]):
        if x.dtype != np.uint8 or x.shape[1:] != (32, 32, 3):
            raise DataError(f"cannot write {name}: images are {x.dtype} {x.shape}, expected uint8 (N, 32, 32, 3)")
        pixels = np.ascontiguousarray(x.transpose(0, 3, 1, 2)).reshape(len(x), 3072)
        d = {b"batch_label": name.encode(), b"labels": [int(v) for v in y], b"data": pixels}
        (folder / name).write_bytes(pickle.dumps(d, protocol=protocol))
    return folder
