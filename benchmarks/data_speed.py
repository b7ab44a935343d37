"""How long cnn_course.data takes to load the real datasets.

    python benchmarks/data_speed.py [--data DIR]

DIR holds mnist.npz and cifar10-jpeg.tar.gz (default: $CNN_COURSE_DATA, else ../shared/data). Prints each
load time, with the load average, against its target: MNIST < 1 s; CIFAR-10's JPEGs decoded and cached
< 60 s (2 cores), then from that cache < 3 s; CIFAR-10 from pickles written from them < 3 s. The cache and
the pickles go to a temporary folder.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from cnn_course import data


def timed(what, target, fn, *args):
    """Call ``fn(*args)``, print its time against ``target`` seconds and return what it returned."""
    start = time.perf_counter()
    result = fn(*args)
    seconds = time.perf_counter() - start
    verdict = "ok" if seconds < target else "OVER"
    print(f"  {what:<52} {seconds:7.2f} s   (target < {target:g} s: {verdict})", flush=True)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = os.environ.get("CNN_COURSE_DATA") or str(Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--data", default=default, help=f"folder with the real files (default {default})")
    folder = Path(parser.parse_args(argv).data)
    mnist, jpeg = folder / "mnist.npz", folder / "cifar10-jpeg.tar.gz"
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"cnn_course.data load times from {folder} ({os.cpu_count()} CPU cores, load average {load})")
    if mnist.is_file():
        timed("MNIST from mnist.npz", 1, data.load_mnist, mnist)
    else:
        print(f"  MNIST: skipped, {mnist} not found")
    if not jpeg.is_file():
        print(f"  CIFAR-10: skipped, {jpeg} not found")
        return 0
    saved = data.lookup.REPO_DATA_DIR
    with tempfile.TemporaryDirectory(prefix="cnn-course-bench-") as tmp:
        try:  # the decode cache goes to the repo's data folder first: a temporary one, so the first load decodes
            data.lookup.REPO_DATA_DIR = Path(tmp)
            timed("CIFAR-10 from the JPEG tarball, first load (decode)", 60, data.load_cifar10, jpeg)
            train, test = timed("CIFAR-10 from the JPEG tarball, later load (cache)", 3, data.load_cifar10, jpeg)
        finally:
            data.lookup.REPO_DATA_DIR = saved
        pickles = data.write_cifar10_pickles(Path(tmp) / "cifar-10-batches-py", train, test)
        timed(f"CIFAR-10 from the pickles ({len(train[0])} train)", 3, data.load_cifar10, pickles)
    return 0


if __name__ == "__main__":
    sys.exit(main())
