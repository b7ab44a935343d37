"""``python -m cnn_course data import NAME PATH``: bringing a local copy of
a dataset into the data folder, checked first."""

from __future__ import annotations

from pathlib import Path

from .catalog import CIFAR10_PICKLES, DATASETS, GET, MNIST_FILE, VGG16_FILES
from .errors import DataError, DatasetNotFound
from . import backbones, cache, dog_features, dogs, files, formats, places, trees, weights


def _import_cifar10(src: Path, dest_dir: Path) -> Path:
    kind = places.detect("cifar10", src)
    if kind is None and src.is_dir() and (src / "cifar-10-batches-py").is_dir():
        src, kind = src / "cifar-10-batches-py", "pickles"
    if kind is None:
        raise DataError(f"{src} is not CIFAR-10 data: expected {GET['cifar10']}")
    if kind in ("pickles", "pickles-tar"):
        if kind == "pickles-tar":
            batches = formats.cifar_pickles_in_tar(src)
        else:
            batches = {f.name: f.read_bytes() for f in src.iterdir()
                       if f.is_file() and (f.name in CIFAR10_PICKLES or f.name == "batches.meta")}
        formats.cifar_from_batches(batches, src)
        return files.write_pickles_folder(batches, dest_dir / "cifar-10-batches-py")
    dest = dest_dir / ("cifar10-jpeg" if kind == "tree" else "cifar10-jpeg.tar.gz")
    files.copy_in(src, dest)
    try:
        cache.load_cifar_tree(dest, kind)  # checks it, and leaves the decode cache
    except DataError:
        files.remove(dest)
        raise
    return dest


def _import_dogs(src: Path, dest_dir: Path) -> Path:
    kind = places.detect("dogs", src)
    if kind is None and (src / "dogImages").is_dir():
        src, kind = src / "dogImages", "tree"
    if kind is None:
        raise DataError(f"{src} is not the dog images: expected {GET['dogs']}")
    if kind == "tree":
        trees.load_image_folder(src)  # checks the layout without decoding
        dest = dest_dir / "dogImages"
        files.copy_in(src, dest)
    elif kind == "tar":
        dest = dogs.untar_to(src, dest_dir / "dogImages")
    else:
        dest = dogs.unzip_to(src, dest_dir)
    try:
        dogs.find_dog_images(dest)
        trees.load_image_folder(dest)
    except DataError:
        files.remove(dest)
        raise
    return dest


def _import_mnist(src: Path, dest_dir: Path) -> Path:
    if src.is_dir():
        if not (src / MNIST_FILE).is_file():
            raise DataError(f"{src}: no {MNIST_FILE} in this folder")
        src = src / MNIST_FILE
    formats.read_mnist_npz(src)
    dest = dest_dir / MNIST_FILE
    if src.resolve() != dest.resolve():
        files.copy_in(src, dest)
    return dest


def _import_vgg16(src: Path, dest_dir: Path) -> Path:
    if not src.is_file():
        raise DataError(f"{src}: expected a VGG16 .h5 weights file")
    dest = dest_dir / VGG16_FILES[weights.check_vgg16_h5(src)][0]
    if src.resolve() != dest.resolve():
        files.copy_in(src, dest)
    return dest


# name -> importer(src, dest_dir) returning where the copy went. A new dataset
# adds its name to catalog.DATASETS and a function here.
IMPORTERS = {
    "mnist": _import_mnist,
    "cifar10": _import_cifar10,
    "dogs": _import_dogs,
    "vgg16": _import_vgg16,
    "weights": backbones.import_weights,
    "dog-features": dog_features.import_dog_features,
}


def import_dataset(name: str, src) -> Path:
    """Copy (or unpack) a local copy of dataset ``name`` into the data folder
    (``data_dirs()[0]``, or the repo's data folder when that is not
    writable), check it by loading it once, and return where it went.

    Accepts: mnist: mnist.npz (or a folder holding it). cifar10:
    cifar-10-python.tar.gz or its pickles folder (stored unpacked as
    cifar-10-batches-py/), or a JPEG tree folder or .tar.gz (stored as
    cifar10-jpeg/ or cifar10-jpeg.tar.gz, and decoded and cached once). dogs:
    a dogImages folder, dogImages.zip or a .tar.gz of the folder (stored
    unpacked as dogImages/). vgg16: a VGG16 .h5 weights file (stored under
    its Keras file name). weights: a Keras .h5 weights file of VGG16,
    ResNet50 or MobileNetV2, with or without the top (stored under the name
    Keras looks for). dog-features: the original course's DogVGG16Data.npz or
    DogResnet50Data.npz (checked for keys, shapes and dtype).
    Raises ValueError for an unknown name, DatasetNotFound when ``src`` does
    not exist, DataError when it is not the dataset or fails the checks (then
    nothing is left behind)."""
    if name not in IMPORTERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    src = Path(src).expanduser()
    if not src.exists():
        raise DatasetNotFound(f"{src}: no such file or folder")
    return IMPORTERS[name](src, files.writable_import_dir())
