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

The package's modules, in the order a reader needs them:

- ``errors``: DataError, DatasetNotFound and SettingError;
- ``catalog``: dataset names, file names, URLs, hashes and size limits;
- ``lookup``: where datasets are looked for, and the environment switches;
- ``formats``: reading and checking mnist.npz and the CIFAR-10 pickles;
- ``images``: decoding image files within size limits, and sample photos;
- ``image_folders``: image trees ``<split>/<class>/<image>`` in folders and
  tarballs, and the decode cache of CIFAR-10 JPEG trees;
- ``install``: staging, atomic installs and safe unpacking into the data folders;
- ``loaders``: the MNIST and CIFAR-10 loaders the lessons call;
- ``dogs``: the dog-breed images;
- ``backbones``: the ImageNet weights of the lesson backbones (VGG16,
  ResNet50, MobileNetV2) and the ``vgg16`` dataset;
- ``dog_features``: the original course's precomputed dog features;
- ``standins``: labelled stand-ins for quick runs;
- ``downloads``, ``importing``, ``status``: ``python -m cnn_course data
  fetch``, ``import`` and ``status``.

``REPO_DATA_DIR`` is read from ``cnn_course.data.lookup`` when it is used:
to point the repo's data folder elsewhere (tests, benchmarks), set
``cnn_course.data.lookup.REPO_DATA_DIR``.

Heavy libraries (Keras, OpenCV, Pillow, scikit-learn) are imported inside the
functions that need them, so ``import cnn_course.data`` stays fast.
"""

from .catalog import (
    CIFAR10_CLASSES, CIFAR10_FILE, CIFAR10_PICKLES, CIFAR10_SHA256, CIFAR10_URL, DATASETS,
    DOGS_FILE, DOGS_SHA256, DOGS_URL, IMAGE_EXTENSIONS, MNIST_FILE, MNIST_SHA256, MNIST_URL, SPLITS,
    VGG16_FILES, VGG16_URL,
)
from .errors import DataError, DatasetNotFound, SettingError
from .lookup import (
    REPO_DATA_DIR, REPO_ROOT, data_dirs, keras_cache_dir, keras_home, offline, quick_mode,
)
from .formats import write_cifar10_pickles
from .images import read_images
from .images import SAMPLE_PHOTOS, load_sample_photos
from .image_folders import load_image_folder
from .loaders import load_cifar10, load_lesson_data, load_mnist, standin_note
from .standins import load_digits28, make_cifar10_standin, make_image_folder_standin
from .dogs import find_dog_images, load_dog_images
from .backbones import BACKBONES, backbone_weights, found_weights, vgg16_weights
from .dog_features import original_dog_features
from . import install, lookup
from .downloads import fetch
from .importing import import_dataset
from .status import dataset_status

# The modules' former names, still used by cnn_course/__main__.py, features.py and benchmarks/.
places, files = lookup, install

__all__ = [
    "CIFAR10_CLASSES", "CIFAR10_FILE", "CIFAR10_PICKLES", "CIFAR10_SHA256", "CIFAR10_URL",
    "DATASETS", "DOGS_FILE", "DOGS_URL", "IMAGE_EXTENSIONS", "MNIST_FILE", "MNIST_SHA256",
    "MNIST_URL", "SPLITS", "VGG16_FILES", "VGG16_URL",
    "DataError", "DatasetNotFound", "SettingError", "DOGS_SHA256",
    "REPO_DATA_DIR", "REPO_ROOT", "data_dirs", "keras_cache_dir", "keras_home", "offline",
    "quick_mode",
    "write_cifar10_pickles", "SAMPLE_PHOTOS", "load_sample_photos", "read_images",
    "load_image_folder", "load_cifar10", "load_lesson_data", "load_mnist", "standin_note",
    "load_digits28", "make_cifar10_standin", "make_image_folder_standin",
    "find_dog_images", "load_dog_images", "vgg16_weights", "BACKBONES", "backbone_weights",
    "found_weights", "original_dog_features", "fetch", "import_dataset",
    "dataset_status",
]
