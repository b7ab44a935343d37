"""Bottleneck features and ImageNet class names for the transfer-learning lessons.

`compute_bottleneck_features` runs a (frozen) convolutional base such as VGG16
without its top over a list of image files, batch by batch with a progress
bar, and caches the result in an ``.npz`` so that a rerun skips the work.
`imagenet_class_names` finds the 1,000 ImageNet class names that turn a
VGG16 prediction into words, without downloading when the course is offline.
"""

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from cnn_course import data

CLASS_INDEX_FILE = "imagenet_class_index.json"
CLASS_INDEX_URL = (
    "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json"
)
CLASS_INDEX_MD5 = "c2c37ea517e94d9795004a39431a14cb"  # the hash keras.applications checks
N_IMAGENET_CLASSES = 1000


# --------------------------------------------------------------------------
# Bottleneck features


def _output_shape(model):
    """Return the model's output shape per image as a tuple (batch axis dropped)."""
    shape = getattr(model, "output_shape", None)
    if shape is None:
        shape = tuple(model.output.shape)
    return tuple(None if s is None else int(s) for s in shape[1:])


def _weights_fingerprint(model):
    """Return a short hash of the model's weights (shapes and leading values of each array).

    Cheap compared with hashing every value, yet it tells random weights from
    ImageNet weights, so a cache made with one is never reused for the other.
    """
    digest = hashlib.sha256()
    for weight in model.weights:
        values = np.asarray(weight.numpy())
        digest.update(str(values.shape).encode())
        digest.update(np.ascontiguousarray(values.ravel()[:256], dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]


def _file_size(path):
    """Return the size of the file at `path` in bytes, or -1 when it cannot be read."""
    try:
        return os.stat(path).st_size
    except OSError:
        return -1


def cache_key(model, paths, size):
    """Return the string that identifies one set of bottleneck features.

    It hashes the list of image paths (in order) with each file's size, the
    image size, the model's output shape and a fingerprint of its weights:
    change any of them and the cached features no longer match. A missing file
    counts as size -1 (reading it fails later). Never raises for a built model.
    """
    description = {
        "paths": [str(p) for p in paths],
        "bytes": [_file_size(p) for p in paths],
        "size": [int(s) for s in size],
        "output_shape": list(_output_shape(model)),
        "weights": _weights_fingerprint(model),
    }
    return hashlib.sha256(json.dumps(description).encode()).hexdigest()


def load_cached_features(cache, key):
    """Return the features stored in `cache` under `key`, or None.

    None when the file does not exist, cannot be read, or was made for other
    images or another model (its key differs). Never raises.
    """
    cache = Path(cache)
    if not cache.is_file():
        return None
    try:
        with np.load(cache, allow_pickle=False) as stored:
            if str(stored["key"]) != key:
                return None
            return stored["features"]
    except Exception:  # a truncated or foreign file is simply recomputed
        return None


def save_features(cache, key, features):
    """Write `features` and `key` to the ``.npz`` file `cache`, atomically.

    The file is written under a temporary name and renamed, so an interrupted
    run never leaves a half-written cache. Returns the Path written. Raises
    OSError when the folder cannot be written.
    """
    cache = Path(cache)
    cache.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=cache.name + ".", suffix=".tmp", dir=cache.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, key=np.array(key), features=features)
        os.replace(tmp, cache)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return cache


def compute_bottleneck_features(model, paths, size=(224, 224), batch_size=32, cache=None,
                                progress=True):
    """Return `model`'s outputs for the image files `paths`, one row per image, in order.

    Each batch is read with `cnn_course.data.read_images` (uint8 RGB resized
    to `size`), put through ``keras.applications.vgg16.preprocess_input``
    (RGB to BGR, ImageNet mean subtracted) and then through `model`. A tqdm
    progress bar counts the images when `progress` is true.

    With `cache` (a path to an ``.npz``), features saved there for the same
    paths, size, model output shape and weights are loaded instead of being
    computed, and fresh ones are saved there. One line says which happened.

    Returns a float32 array of shape (len(paths), *model output shape).
    Raises ValueError when `paths` is empty, and whatever `read_images` raises
    for a missing or unreadable image.
    """
    import keras
    from tqdm import tqdm

    paths = list(paths)
    if not paths:
        raise ValueError("compute_bottleneck_features: no image paths given")
    size = tuple(int(s) for s in size)
    key = cache_key(model, paths, size) if cache is not None else None
    if cache is not None:
        features = load_cached_features(cache, key)
        if features is not None:
            print(f"Features: loaded from cache {cache} {features.shape}")
            return features

    features = None
    done = 0
    bar = tqdm(total=len(paths), unit="img", desc="bottleneck features", disable=not progress)
    try:
        for batch in data.read_images(paths, size=size, batch_size=batch_size):
            batch = keras.applications.vgg16.preprocess_input(np.asarray(batch, dtype=np.float32))
            out = np.asarray(model.predict_on_batch(batch), dtype=np.float32)
            if features is None:
                features = np.empty((len(paths),) + out.shape[1:], dtype=np.float32)
            features[done:done + len(out)] = out
            done += len(out)
            bar.update(len(out))
    finally:
        bar.close()
    if done != len(paths):
        raise ValueError(f"compute_bottleneck_features: read {done} images of {len(paths)}")

    if cache is None:
        print(f"Features: computed {features.shape} (not cached)")
    else:
        save_features(cache, key, features)
        print(f"Features: computed {features.shape} and saved to cache {cache}")
    return features


# --------------------------------------------------------------------------
# ImageNet class names


def class_index_candidates():
    """Return the places, in order, where ``imagenet_class_index.json`` is looked for.

    The course's data folders (`cnn_course.data.data_dirs`), then Keras's
    model cache (``$KERAS_HOME/models``, else ``~/.keras/models``).
    """
    folders = [Path(d) for d in data.data_dirs()] + [data.keras_home() / "models"]
    return [folder / CLASS_INDEX_FILE for folder in folders]


def _read_class_index(path):
    """Return the 1,000 class names in an ImageNet class-index JSON file.

    Raises ValueError when the file is not a class index.
    """
    try:
        index = json.loads(Path(path).read_text(encoding="utf-8"))
        names = [index[str(i)][1] for i in range(N_IMAGENET_CLASSES)]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"{path} is not an ImageNet class index ({exc})") from None
    return names


def _missing_message(tried, reason):
    """Return the one-paragraph message for a missing class index."""
    places = ", ".join(str(p.parent) for p in tried)
    return (f"ImageNet class names not found: {CLASS_INDEX_FILE} is in none of: {places} "
            f"({reason}). Download it from {CLASS_INDEX_URL} and put it in one of those folders "
            f"(for example {tried[0].parent}), or run once with network access so Keras "
            f"caches it in {data.keras_home() / 'models'}.")


def imagenet_class_names(quick=None):
    """Return the 1,000 ImageNet class names (e.g. "golden_retriever"), in output order.

    Looks for ``imagenet_class_index.json`` in `class_index_candidates`; when
    absent, downloads it into Keras's model cache with ``keras.utils.get_file``
    unless CNN_COURSE_OFFLINE=1. When it still cannot be had, `quick` mode
    returns labelled placeholders ("class 0 (STAND-IN)", ...); `quick=None`
    reads ``CNN_COURSE_QUICK`` (see `cnn_course.data.quick_mode`). Prints one
    ``ImageNet class names: ...`` line saying where the names came from.

    Raises cnn_course.data.DatasetNotFound (not in quick mode) naming the file,
    its URL and where to put it, when it is missing and cannot be downloaded.
    """
    tried = class_index_candidates()
    for path in tried:
        if path.is_file():
            try:
                names = _read_class_index(path)
            except ValueError:
                continue
            print(f"ImageNet class names: {path}")
            return names

    if data.offline():
        reason = f"CNN_COURSE_OFFLINE={os.environ.get('CNN_COURSE_OFFLINE')}, so no download was tried"
    else:
        import keras

        try:
            path = keras.utils.get_file(CLASS_INDEX_FILE, CLASS_INDEX_URL, cache_subdir="models",
                                        file_hash=CLASS_INDEX_MD5)
            names = _read_class_index(path)
            print(f"ImageNet class names: downloaded to {path}")
            return names
        except Exception as exc:  # no network, a proxy, a bad file: all mean "not available"
            reason = f"the download failed: {type(exc).__name__}"

    if data.quick_mode(quick):
        print(f"ImageNet class names: STAND-IN placeholders "
              f"({CLASS_INDEX_FILE} not found; {reason})")
        return [f"class {i} (STAND-IN)" for i in range(N_IMAGENET_CLASSES)]
    raise data.DatasetNotFound(_missing_message(tried, reason))
