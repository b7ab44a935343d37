"""Finding, loading, checking and caching the course's datasets; import the public names from here.

Looked for in order: the ``path`` argument, ``$CNN_COURSE_DATA``, the repo's ``data/`` (``lookup.REPO_DATA_DIR``),
the Keras cache; then downloaded through Keras unless ``CNN_COURSE_OFFLINE=1``; else one DatasetNotFound lists
the places and how to get the file. What is read is checked (DataError names the file and the fault); labelled
stand-ins (``STAND-IN`` in the ``Data:`` line) only in quick mode. CONTRIBUTING.md says what each module holds."""
# ruff: noqa: F401, F403  (the names below are this package's interface)

from . import backbones, formats, images, install, loaders, lookup
from .backbones import backbone_weights, found_weights
from .catalog import *  # the datasets' names, files, URLs, hashes and limits; the errors
from .commands import dataset_status, fetch, fetch_all
from .formats import write_cifar10_pickles
from .images import load_image_folder, load_sample_photos, read_images
from .loaders import find_dog_images, load_cifar10, load_dog_images, load_lesson_data, load_mnist, standin_note
from .lookup import REPO_ROOT, data_dirs, keras_cache_dir, keras_home, offline, quick_mode
from .standins import load_digits28, make_cifar10_standin, make_image_folder_standin
