"""The MNIST and CIFAR-10 loaders the lessons call: find, read, check, and
say what was loaded (a labelled stand-in only in quick mode)."""

from __future__ import annotations

import os

from .catalog import TITLES
from .errors import DatasetNotFound
from .lookup import offline, quick_mode
from . import downloads, formats, image_folders, lookup, standins


def load_named(name: str, path=None, download: bool = True):
    """Find, load and check MNIST or CIFAR-10. Returns (data, source, note).
    Raises DataError, DatasetNotFound."""
    kind, source, looked = lookup.find(name, path)
    note = ""
    if kind is None:
        if not download:
            raise lookup.not_found(name, looked, "No download was tried.")
        if offline():
            raise lookup.not_found(name, looked, "Nothing was downloaded because CNN_COURSE_OFFLINE="
                                           f"{os.environ.get('CNN_COURSE_OFFLINE')}.")
        try:
            source = downloads.fetch(name)
        except DatasetNotFound as e:
            raise lookup.not_found(name, looked, f"The download failed: {e}") from None
        kind, note = ("npz" if name == "mnist" else "pickles"), "downloaded"
    if kind == "npz":
        train, test = formats.read_mnist_npz(source)
    elif kind == "pickles":
        train, test = formats.read_cifar_pickles_dir(source)
    elif kind == "pickles-tar":
        train, test = formats.cifar_from_batches(formats.cifar_pickles_in_tar(source), source)
    else:
        train, test, note = image_folders.load_cifar_tree(source, kind)
    return (train, test), source, note


def load_mnist(path=None, download=True):
    """Load MNIST from a Keras-layout ``mnist.npz``, searched for in the
    module's order (see the module docstring); downloads it when it is found
    nowhere, ``download`` is true and CNN_COURSE_OFFLINE is not set.

    Returns ((x_train, y_train), (x_test, y_test)): uint8 (60000, 28, 28),
    (60000,), (10000, 28, 28), (10000,) for the real data. Raises
    DatasetNotFound (nothing found) or DataError (found but unusable)."""
    return load_named("mnist", path, download)[0]


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
    return load_named("cifar10", path, download)[0]


def load_lesson_data(name, path=None, quick=None):
    """Load the data a lesson trains on and say what it is.

    ``name`` is "mnist" or "cifar10". Real data found in any local place is
    used (also in quick mode). When none is found: with ``quick`` the
    labelled stand-in (standins.load_digits28 / standins.make_cifar10_standin) is used and
    nothing is downloaded; otherwise it is downloaded through Keras unless
    CNN_COURSE_OFFLINE=1. Prints exactly one line ``Data: <description>``.

    Returns (((x_train, y_train), (x_test, y_test)), description). Raises
    ValueError for an unknown name, DatasetNotFound, DataError."""
    if name not in ("mnist", "cifar10"):
        raise ValueError(f"unknown lesson dataset {name!r}; choose mnist or cifar10")
    quick = quick_mode(quick)
    title = TITLES[name]
    try:
        data, source, note = load_named(name, path, download=not quick)
    except DatasetNotFound:
        if not quick:
            raise
        if name == "mnist":
            data = standins.load_digits28()
            what = "scikit-learn digits resized to 28x28"
        else:
            # 7,000 training images: the lessons hold out the first 5,000 for validation,
            # as with the real CIFAR-10, and still have 2,000 to train on
            data = standins.make_cifar10_standin(n_train=7000, n_test=1000)
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
