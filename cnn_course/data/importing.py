"""``python -m cnn_course data import NAME PATH``: bringing a local copy of
a dataset into the data folder.

Every import builds the new copy in a staging folder beside its
destination, checks it there, and only then puts it in place of the old one
(see install.staging and install.install): a failed or interrupted import keeps
what was there and leaves nothing behind. Importing what is already in
place (source = destination) only checks it.
"""

from __future__ import annotations

from pathlib import Path

from .catalog import DATASETS, GET, MNIST_FILE, VGG16_FILES
from .errors import DataError, DatasetNotFound
from . import backbones, dog_features, dogs, formats, image_folders, install, lookup


def _import_cifar10(src: Path, dest_dir: Path) -> Path:
    kind = lookup.detect("cifar10", src)
    if kind is None and src.is_dir() and (src / "cifar-10-batches-py").is_dir():
        src, kind = src / "cifar-10-batches-py", "pickles"
    if kind is None:
        raise DataError(f"{src} is not CIFAR-10 data: expected {GET['cifar10']}")
    if kind in ("pickles", "pickles-tar"):
        dest = dest_dir / "cifar-10-batches-py"
        install.check_not_shadowed(dest, lookup.candidates("cifar10"))
        same = install.same_or_nested(src, dest)  # also refuses a tarball inside dest
        batches = formats.cifar_pickles_in_tar(src) if kind == "pickles-tar" else formats.pickles_in_folder(src)
        formats.cifar_from_batches(batches, src)
        return dest if same else install.write_files(batches, dest)
    dest = dest_dir / ("cifar10-jpeg" if kind == "tree" else "cifar10-jpeg.tar.gz")
    install.check_not_shadowed(dest, lookup.candidates("cifar10"))
    if install.same_or_nested(src, dest):
        image_folders.load_cifar_tree(dest, kind)  # checks it, and leaves the decode cache
        return dest
    with install.staging(dest_dir) as work:
        new = work / dest.name
        if kind == "tree":
            install.copy_tree(src, new)
        else:
            install.copy_file(src, new)
        with install.named_as(new, src):
            train, test, bad = image_folders.decode_cifar_tree(new, kind)  # the check
        install.install(new, dest, work)
    # name skipped images by where they are now, not where they were checked
    image_folders.write_cache(dest, train, test, [b.replace(str(new), str(dest), 1) for b in bad])
    return dest


def _import_dogs(src: Path, dest_dir: Path) -> Path:
    kind = lookup.detect("dogs", src)
    if kind is None and (src / "dogImages").is_dir():
        src, kind = src / "dogImages", "tree"
    if kind is None:
        raise DataError(f"{src} is not the dog images: expected {GET['dogs']}")
    dest = dest_dir / "dogImages"
    install.check_not_shadowed(dest, lookup.candidates("dogs"))
    if kind in ("zip", "tar"):
        return dogs.unpack_to(src, dest)
    if install.same_or_nested(src, dest):
        return dogs.check_dog_tree(dest)
    dogs.check_dog_tree(src)  # fails early, before copying anything
    with install.staging(dest_dir) as work:
        new = install.copy_tree(src, work / dest.name)
        with install.named_as(new, src):
            dogs.check_dog_tree(new, decode=True)
        install.install(new, dest, work)
    return dest


def _import_file(src: Path, dest: Path, check) -> Path:
    """Copy one file to ``dest`` through a staging folder, check the copy
    with ``check(path)``, then replace ``dest`` atomically. Importing ``dest``
    itself only checks it. Returns dest. Raises DataError, OSError."""
    if install.same_or_nested(src, dest):
        check(dest)
        return dest
    install.install_copy(src, dest, check)
    return dest


def _import_mnist(src: Path, dest_dir: Path) -> Path:
    if src.is_dir():
        if not (src / MNIST_FILE).is_file():
            raise DataError(f"{src}: no {MNIST_FILE} in this folder")
        src = src / MNIST_FILE
    formats.check_mnist_npz(src)  # fails early, before copying anything
    dest = dest_dir / MNIST_FILE
    install.check_not_shadowed(dest, lookup.candidates("mnist"))
    return _import_file(src, dest, formats.read_mnist_npz)


def _import_vgg16(src: Path, dest_dir: Path) -> Path:
    if not src.is_file():
        raise DataError(f"{src}: expected a VGG16 .h5 weights file")
    top = backbones.check_vgg16_h5(src, check_hash=False)
    dest = dest_dir / VGG16_FILES[top][0]
    install.check_not_shadowed(dest, lookup.candidates("vgg16", dest.name))
    return _import_file(src, dest, lambda p: backbones.check_vgg16_h5(p, expected_top=top))


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
    The lessons read the new copy from the path returned: an import that a
    copy earlier in the search order would hide is refused.
    Raises ValueError for an unknown name, DatasetNotFound when ``src`` does
    not exist, DataError when it is not a regular file or folder (a FIFO or
    a device is never opened), is not the dataset, fails the checks, or
    would be hidden (then nothing is left behind)."""
    if name not in IMPORTERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    src = lookup.user_path(src, "the path")
    if not src.exists():
        raise DatasetNotFound(f"{src}: no such file or folder")
    install.check_source(src)
    return IMPORTERS[name](src, install.writable_import_dir())
