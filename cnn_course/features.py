"""Bottleneck features, their cache, and photos to look at, for the transfer-learning lessons.

The feature pass itself (``preprocess_input`` and ``base.predict``) stays in
the lesson notebook. This module feeds it decoded images with a progress bar
(`image_batches`), keeps its result in an ``.npz`` cache so that a rerun skips
the slow step (`cached_features`), picks a few photos to look at
(`example_photos`), and finds the 1,000 ImageNet class names
(`imagenet_class_names`, `install_class_index`) without downloading when the
course is offline.
"""

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from cnn_course import data

CLASS_INDEX_FILE = "imagenet_class_index.json"
CLASS_INDEX_URL = "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json"
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
    image size, the model's output shape, a fingerprint of its weights and its
    precision policy:
    change any of them and the cached features no longer match. A missing file
    counts as size -1 (reading it fails later). Never raises for a built model.
    """
    description = {
        "paths": [str(p) for p in paths],
        "bytes": [_file_size(p) for p in paths],
        "size": [int(s) for s in size],
        "output_shape": list(_output_shape(model)),
        "weights": _weights_fingerprint(model),
        "precision": str(getattr(getattr(model, "dtype_policy", None), "name", "float32")),
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


def feature_cache_dir():
    """Return the folder where computed bottleneck features are cached, made if needed.

    ``features/`` in the first data folder (`cnn_course.data.data_dirs`) that
    can be written: a read-only ``$CNN_COURSE_DATA`` (a shared copy of the
    data) is skipped, and the repository's ``data/`` (never committed) is the
    usual place. Raises OSError when no data folder can be written.
    """
    for folder in data.data_dirs():
        target = folder / "features"
        if not data.install.may_write(target):
            continue
        try:
            target.mkdir(parents=True, exist_ok=True)
            return target
        except OSError:
            continue
    raise OSError(f"no writable data folder for the feature cache among {', '.join(map(str, data.data_dirs()))}")


def image_batches(paths, size=(224, 224), batch_size=64, progress=True):
    """Yield the images `paths` decoded and resized, `batch_size` at a time, with a progress bar.

    Each batch is a uint8 array (B, height, width, 3), RGB, from
    `cnn_course.data.read_images`; the tqdm bar (on stderr, only when
    `progress` is true) counts images and never passes their number. Raises
    DataError naming the first file that cannot be read.
    """
    from tqdm import tqdm

    with tqdm(total=len(paths), unit="img", desc="bottleneck features", disable=not progress) as bar:
        for batch in data.read_images(paths, size=size, batch_size=batch_size):
            yield batch
            bar.update(len(batch))


def cached_features(name, compute, paths, model, size):
    """Return the bottleneck features of the image files `paths`: cached or computed now.

    `compute(paths)` is the lesson's own feature pass (images through
    `model`); it runs only when the cache file `name`.npz in
    `feature_cache_dir` does not hold features of these paths (in this order),
    this image `size`, `model`'s output shape and weights. Fresh features are
    saved to the cache. Prints one ``Features:`` line saying which happened, with the time
    and images per second when they were computed.

    Returns a float32 array (len(paths), *model output shape). Raises
    ValueError when `paths` is empty or `compute` returns the wrong number of
    rows, and what `compute` raises; a cache that cannot be written is
    reported in the line, not raised.
    """
    paths = list(paths)
    if not paths:
        raise ValueError("cached_features: no image paths given")
    size = tuple(int(s) for s in size)
    try:
        cache = feature_cache_dir() / f"{name}.npz"
    except OSError:
        cache = None
    key = cache_key(model, paths, size)
    features = None if cache is None else load_cached_features(cache, key)
    if features is not None:
        print(f"Features: {name} {features.shape} loaded from the cache {cache}")
        return features
    start = time.perf_counter()
    features = np.asarray(compute(paths), dtype=np.float32)
    seconds = time.perf_counter() - start
    if len(features) != len(paths):
        raise ValueError(f"cached_features: {len(features)} rows computed for {len(paths)} images")
    try:
        if cache is None:
            raise OSError("no writable data folder")
        save_features(cache, key, features)
        saved = f"saved to {cache}"
    except OSError as e:
        saved = f"not cached ({e.strerror or e})"
    print(
        f"Features: {name} {features.shape} computed in {seconds:.1f} s ({len(paths) / seconds:.1f} images/s), {saved}"
    )
    return features


# --------------------------------------------------------------------------
# Photos to look at


def breed_name(folder_name):
    """Return a dog-breed folder name as printed: "001.Shih-Tzu" -> "Shih-Tzu", underscores as spaces."""
    return folder_name.split(".", 1)[-1].replace("_", " ")


def example_photos(paths=None, n=4, seed=0):
    """Return a few photos to look at and print one ``Data:`` line saying which.

    With `paths` (a file, a folder or a list of them), those photos
    (`cnn_course.data.load_sample_photos`). Otherwise `n` test photos of
    different breeds from the real dog images when `cnn_course.data` finds
    them (never a stand-in), chosen with `seed`; without them, scikit-learn's
    two sample photos.

    Returns (photos, names): RGB uint8 arrays (H, W, 3) at their own sizes, and
    a name for each (the breed, or the file name). Raises what
    `load_sample_photos` raises for bad `paths`, and DataError for a dog photo
    that cannot be read.
    """
    if paths is None:
        try:
            root = data.find_dog_images()
        except data.DatasetNotFound:
            root = None
        if root is not None:
            test = data.load_image_folder(root, shuffle=False)["test"]
            rng = np.random.default_rng(seed)
            breeds = rng.permutation(len(test["classes"]))[: max(1, int(n))]
            picked = [rng.choice(np.flatnonzero(test["labels"] == b)) for b in breeds]
            photos = []
            for i in picked:
                photo = data.images.decode_one(test["paths"][i])
                if isinstance(photo, str):
                    raise data.DataError(f"{test['paths'][i]} {photo}")
                photos.append(photo)
            names = [breed_name(test["classes"][b]) for b in breeds]
            print(f"Data: {len(photos)} dog photos (real, test split of {root}): {', '.join(names)}")
            return photos, names
    photos, names, _ = data.load_sample_photos(paths)
    return photos, names


# --------------------------------------------------------------------------
# ImageNet class names


def class_index_candidates():
    """Return the places, in order, where ``imagenet_class_index.json`` is looked for.

    The folders where weights are looked for (`cnn_course.data.backbones.weights_folders`):
    the course's data folders and their ``keras-models/`` and ``models/``
    subfolders, then Keras's model cache (``$KERAS_HOME/models``).
    """
    folders = dict.fromkeys(folder for _, folder in data.backbones.weights_folders())
    return [folder / CLASS_INDEX_FILE for folder in folders]


def _read_class_index(path):
    """Return the 1,000 class names in an ImageNet class-index JSON file.

    Raises ValueError when the file is not a class index.
    """
    return data.backbones.read_class_index(path)


def _missing_message(tried, reason):
    """Return the one-paragraph message for a missing class index."""
    places = ", ".join(str(p.parent) for p in tried)
    return (
        f"ImageNet class names not found: {CLASS_INDEX_FILE} is in none of: {places} "
        f"({reason}). Download it from {CLASS_INDEX_URL} and put it in one of those folders "
        f"(for example {tried[0].parent}), or run once with network access so Keras "
        f"caches it in {data.keras_home() / 'models'}."
    )


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
            path = keras.utils.get_file(
                CLASS_INDEX_FILE, CLASS_INDEX_URL, cache_subdir="models", file_hash=CLASS_INDEX_MD5
            )
            names = _read_class_index(path)
            print(f"ImageNet class names: downloaded to {path}")
            return names
        except Exception as exc:  # no network, a proxy, a bad file: all mean "not available"
            reason = f"the download failed: {type(exc).__name__}"

    if data.quick_mode(quick):
        print(f"ImageNet class names: STAND-IN placeholders ({CLASS_INDEX_FILE} not found; {reason})")
        return [f"class {i} (STAND-IN)" for i in range(N_IMAGENET_CLASSES)]
    raise data.DatasetNotFound(_missing_message(tried, reason))
