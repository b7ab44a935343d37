"""How long cnn_course.data takes to load the real datasets.

    python benchmarks/data_speed.py [--data DIR]

DIR holds mnist.npz and cifar10-jpeg.tar.gz (default: $CNN_COURSE_DATA, else
../shared/data beside the repo). Prints one line per measurement with the
target from the course's issue:

- MNIST from mnist.npz (target < 1 s);
- CIFAR-10 from the JPEG tarball, first load: decode and write the cache
  (target < 60 s on 2 cores), and a later load from that cache (< 3 s);
- CIFAR-10 from the Python pickles (< 3 s), written for the measurement from
  the decoded arrays.

The decode cache and the pickles go into a temporary folder that is deleted
afterwards, so the checkout and DIR are left as they were. Timings on a shared
machine are noisy: the load average is printed with them.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from cnn_course import data

REPO = Path(__file__).resolve().parents[1]


def timed(fn, *args):
    """Return (seconds, fn(*args))."""
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def report(what, seconds, target):
    verdict = "ok" if seconds < target else "OVER"
    print(f"  {what:<52} {seconds:7.2f} s   (target < {target:g} s: {verdict})", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = os.environ.get("CNN_COURSE_DATA") or str(REPO.parent / "shared" / "data")
    parser.add_argument("--data", default=default, help=f"folder with the real files (default {default})")
    args = parser.parse_args(argv)
    folder = Path(args.data)
    mnist, jpeg = folder / "mnist.npz", folder / "cifar10-jpeg.tar.gz"
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"cnn_course.data load times from {folder} ({os.cpu_count()} CPU cores, load average {load})")

    if mnist.is_file():
        seconds, ((x, _), _) = timed(data.load_mnist, mnist)
        report(f"MNIST from mnist.npz ({len(x)} train)", seconds, 1)
    else:
        print(f"  MNIST: skipped, {mnist} not found")

    if not jpeg.is_file():
        print(f"  CIFAR-10: skipped, {jpeg} not found")
        return 0
    saved = data.lookup.REPO_DATA_DIR
    with tempfile.TemporaryDirectory(prefix="cnn-course-bench-") as tmp:
        try:
            # The decode cache goes to the repo's data folder first: point that
            # at the temporary folder so that the first load really decodes.
            data.lookup.REPO_DATA_DIR = Path(tmp)
            seconds, _ = timed(data.load_cifar10, jpeg)
            report("CIFAR-10 from the JPEG tarball, first load (decode)", seconds, 60)
            seconds, (train, test) = timed(data.load_cifar10, jpeg)
            report("CIFAR-10 from the JPEG tarball, later load (cache)", seconds, 3)
        finally:
            data.lookup.REPO_DATA_DIR = saved
        pickles = data.write_cifar10_pickles(Path(tmp) / "cifar-10-batches-py", train, test)
        seconds, ((x, _), _) = timed(data.load_cifar10, pickles)
        report(f"CIFAR-10 from the pickles ({len(x)} train)", seconds, 3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
