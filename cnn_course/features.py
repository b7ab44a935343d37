"""Bottleneck features, their cache, and photos to look at, for the transfer-learning lessons.

The feature pass itself (``preprocess_input`` and ``base.predict``) stays in the notebook. This
module feeds it decoded images with a progress bar (`image_batches`), keeps its result in an
``.npz`` cache so that a rerun skips the slow step (`cached_features`), picks photos to look at
(`example_photos`) and finds the ImageNet class names (`imagenet_class_names`), offline first.
"""

import hashlib
import io
import json
import os
import time

import numpy as np

from cnn_course import data
from cnn_course.reports import write_atomic

CLASS_INDEX_FILE = "imagenet_class_index.json"
CLASS_INDEX_URL = "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json"
CLASS_INDEX_MD5 = "c2c37ea517e94d9795004a39431a14cb"  # the hash keras.applications checks
N_IMAGENET_CLASSES = 1000


def cache_key(model, paths, size):
    """Return the key of one set of features: a hash of the image paths (in order) and sizes (-1:
    unreadable), the image size, and the model's output shape, weights (a sample) and precision."""
    shape = getattr(model, "output_shape", None) or tuple(model.output.shape)
    weights = hashlib.sha256()  # shapes and leading values: tells random weights from ImageNet's
    for weight in model.weights:
        values = np.asarray(weight.numpy())
        weights.update(str(values.shape).encode())
        weights.update(np.ascontiguousarray(values.ravel()[:256], dtype=np.float32).tobytes())
    description = {
        "paths": [str(p) for p in paths],
        "bytes": [os.stat(p).st_size if os.path.isfile(p) else -1 for p in paths],
        "size": [int(s) for s in size],
        "output_shape": [None if s is None else int(s) for s in shape[1:]],
        "weights": weights.hexdigest()[:16],
        "precision": str(getattr(getattr(model, "dtype_policy", None), "name", "float32")),
    }
    return hashlib.sha256(json.dumps(description).encode()).hexdigest()


def load_cached_features(cache, key):
    """Return the features stored in `cache` under `key`; None when absent, unreadable or another key."""
    try:
        with np.load(cache, allow_pickle=False) as stored:
            return stored["features"] if str(stored["key"]) == key else None
    except Exception:  # missing, truncated or foreign: recomputed
        return None


def feature_cache_dir():
    """Return ``features/`` in the first writable data folder (`cnn_course.data.data_dirs`), made if
    needed. Raises OSError when no data folder can be written."""
    for folder in data.data_dirs():
        target = folder / "features"
        if data.install.may_write(target):
            try:
                target.mkdir(parents=True, exist_ok=True)
                return target
            except OSError:
                continue
    raise OSError(f"no writable data folder for the feature cache among {', '.join(map(str, data.data_dirs()))}")


def image_batches(paths, size=(224, 224), batch_size=64, progress=True):
    """Yield the images `paths` decoded and resized (uint8 RGB batches, `cnn_course.data.read_images`)
    with a tqdm bar on stderr. Raises DataError naming the first file that cannot be read."""
    from tqdm import tqdm

    with tqdm(total=len(paths), unit="img", desc="bottleneck features", disable=not progress) as bar:
        for batch in data.read_images(paths, size=size, batch_size=batch_size):
            yield batch
            bar.update(len(batch))


def cached_features(name, compute, paths, model, size):
    """Return the features of `paths` (float32): from the cache `name`.npz when it holds these paths,
    size and model, else ``compute(paths)``, saved; prints one ``Features:`` line saying which.
    Raises ValueError for no paths or a wrong number of rows, and what `compute` raises."""
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
        buffer = io.BytesIO()
        np.savez(buffer, key=np.array(key), features=features)
        write_atomic(cache, buffer.getvalue())
        saved = f"saved to {cache}"
    except OSError as e:
        saved = f"not cached ({e.strerror or e})"
    rate = f"{len(paths) / seconds:.1f} images/s"
    print(f"Features: {name} {features.shape} computed in {seconds:.1f} s ({rate}), {saved}")
    return features


def breed_name(folder_name):
    """Return a dog-breed folder name as printed: "001.Shih-Tzu" -> "Shih-Tzu", underscores as spaces."""
    return folder_name.split(".", 1)[-1].replace("_", " ")


def example_photos(paths=None, n=4, seed=0):
    """Return (photos, names) to look at and print one ``Data:`` line: `paths` (a file, folder or list;
    `cnn_course.data.load_sample_photos`), else `n` real dog test photos of different breeds (never a
    stand-in), else scikit-learn's two sample photos. Raises DataError for a photo that cannot be read."""
    if paths is None:
        try:
            root = data.find_dog_images()
        except data.DatasetNotFound:
            root = None
        if root is not None:
            test = data.load_image_folder(root, shuffle=False)["test"]
            rng = np.random.default_rng(seed)
            breeds = rng.permutation(len(test["classes"]))[: max(1, int(n))]
            photos = []
            for b in breeds:
                path = test["paths"][rng.choice(np.flatnonzero(test["labels"] == b))]
                photo = data.images.decode_one(path)
                if isinstance(photo, str):
                    raise data.DataError(f"{path} {photo}")
                photos.append(photo)
            names = [breed_name(test["classes"][b]) for b in breeds]
            print(f"Data: {len(photos)} dog photos (real, test split of {root}): {', '.join(names)}")
            return photos, names
    photos, names, _ = data.load_sample_photos(paths)
    return photos, names


def imagenet_class_names(quick=None):
    """Return the 1,000 ImageNet class names in output order, from ``imagenet_class_index.json`` where
    weights are looked for, else downloaded unless offline, else (quick mode) placeholders; prints
    where they came from. Raises DatasetNotFound, saying where to put the file, otherwise."""
    tried = [folder / CLASS_INDEX_FILE for folder in dict.fromkeys(f for _, f in data.backbones.weights_folders())]
    for path in tried:
        if path.is_file():
            try:
                names = data.backbones.read_class_index(path)
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
            names = data.backbones.read_class_index(path)
            print(f"ImageNet class names: downloaded to {path}")
            return names
        except Exception as exc:  # no network, a proxy, a bad file: all mean "not available"
            reason = f"the download failed: {type(exc).__name__}"
    if data.quick_mode(quick):
        print(f"ImageNet class names: STAND-IN placeholders ({CLASS_INDEX_FILE} not found; {reason})")
        return [f"class {i} (STAND-IN)" for i in range(N_IMAGENET_CLASSES)]
    raise data.DatasetNotFound(
        f"ImageNet class names not found: {CLASS_INDEX_FILE} is in none of: {', '.join(str(p.parent) for p in tried)} "
        f"({reason}). Download it from {CLASS_INDEX_URL} and put it in one of those folders (for example "
        f"{tried[0].parent}), or run once with network access so Keras caches it in {data.keras_home() / 'models'}."
    )
