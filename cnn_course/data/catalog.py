"""The course's datasets (names, files, URLs, hashes, the names looked for, size limits) and the errors
the data layer raises about them."""

from __future__ import annotations

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DATASETS = ("mnist", "cifar10", "dogs", "weights")
SPLITS = ("train", "valid", "test")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")

MNIST_FILE = "mnist.npz"
MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
CIFAR10_FILE = "cifar-10-python.tar.gz"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
CIFAR10_PICKLES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")
DOGS_FILE = "dogImages.zip"
DOGS_URL = "https://s3-us-west-1.amazonaws.com/udacity-aind/dog-project/dogImages.zip"
DOGS_SHA256 = None  # none published: the zip's layout, names and sizes are checked when unpacked
# .tar.gz copies of a dogImages folder found where they lie (the second: the course's 10-breed subset)
DOGS_TARBALLS = ("dogImages.tar.gz", "dogImages-imagewoof10.tar.gz")
# The weights the transfer-learning lessons use by default (what `data fetch weights` gets)
LESSON_BACKBONE, LESSON_ALPHA = "MobileNetV2", 0.35
CLASS_INDEX_URL = "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json"
CLASS_INDEX_MD5 = "c2c37ea517e94d9795004a39431a14cb"  # the hash Keras's decode_predictions pins
VGG16_MD5 = ("64373286793e3c8b2b4e3219cbf3544b", "6d6bbae143d832006294945121d1f1fc")  # Keras's: with top, without
RESNET50_MD5 = ("2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626")  # (none for MobileNetV2)

NAMES = {  # what is looked for in each place, in order
    "mnist": (MNIST_FILE,),
    "cifar10": ("cifar-10-batches-py", "cifar-10-batches-py-target/cifar-10-batches-py", CIFAR10_FILE)
    + ("cifar10-jpeg", "cifar10-jpeg.tar.gz"),
    "dogs": ("dogImages", DOGS_FILE) + DOGS_TARBALLS,
}
TITLES = {
    "mnist": "MNIST",
    "cifar10": "CIFAR-10",
    "dogs": "Dog-breed images (dogImages)",
    "weights": "ImageNet weights of a backbone",
}
GET = {  # what to get, for the messages
    "mnist": f"{MNIST_FILE} ({MNIST_URL})",
    "cifar10": f"{CIFAR10_FILE} ({CIFAR10_URL}; its cifar-10-batches-py/, or a JPEG tree cifar10-jpeg/ "
    "or cifar10-jpeg.tar.gz, works too)",
    "dogs": f"{DOGS_FILE} ({DOGS_URL}; the unzipped dogImages/ folder, or a .tar.gz of it, works too)",
    "weights": "a Keras .h5 weights file of VGG16, ResNet50 or MobileNetV2 (Keras downloads them where online)",
}

# Size limits: the real data fits them many times over; anything bigger is refused before it is
# read, unpacked or decoded (a zip bomb, a huge image). "real": the official files and the shared copies.
MiB = 2**20
MAX_NPZ_ARRAY_BYTES = 512 * MiB  # one array of mnist.npz (real: x_train is 45 MiB)
MAX_CIFAR_PICKLE_BYTES = 64 * MiB  # one CIFAR-10 batch (real: 30 MiB)
MAX_CIFAR_IMAGE_BYTES = 1 * MiB  # one CIFAR-10 JPEG (real: at most 1.1 KiB)
MAX_CIFAR_TREE_BYTES = 2048 * MiB  # all images of a CIFAR-10 JPEG tarball (real: 53 MiB)
MAX_CIFAR_SIDE = 256  # pixels a side of a CIFAR-10 image (real: 32)
MAX_PHOTO_BYTES = 64 * MiB  # one dog photo or sample photo (real: at most 21 KiB)
MAX_PHOTO_PIXELS = 50_000_000  # pixels of one photo, about 8000x6000 (real: a few hundred a side)
MAX_DOGS_ZIP_BYTES = 16 * 1024 * MiB  # dogImages.zip unpacked (real: about a GiB for 8,351 photos)


class DataError(ValueError):
    """A dataset file is there but unusable; the message names the file and what is wrong."""


class DatasetNotFound(FileNotFoundError):
    """A dataset is in none of the places looked; the message lists them and how to get it."""


class SettingError(ValueError):
    """A ``CNN_COURSE_*`` setting has a value that cannot be used (a usage error)."""


def one_line(e: BaseException) -> str:
    """An exception's message on one line (its lines joined with "; "), or its type's name."""
    text = "; ".join(s.strip(" -") for s in str(e).splitlines() if s.strip(" -"))
    return text or type(e).__name__
