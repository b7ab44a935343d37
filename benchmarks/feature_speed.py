"""How fast a frozen ImageNet backbone turns photos into bottleneck features.

    python benchmarks/feature_speed.py [--images DIR] [--n 128] [--repeats 4]
                                       [--backbones MobileNetV2:0.35,ResNet50,VGG16]

Runs the transfer-learning lesson's feature pass as the lesson does
(``preprocess_input``, then ``base.predict`` on chunks of 128 images at
224x224) per backbone, in float32 and in ``mixed_bfloat16`` alternately
(`cnn_course.timing.alternate`, on the same images decoded beforehand), and
prints images/s, images per CPU-second and the median per-round ratio, with
the processor and load average. DIR: photos searched recursively (default:
the dog photos, else random pixels). The weights are random: the speed does
not depend on them. See benchmarks/README.md.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_BACKBONES = "MobileNetV2:0.35,MobileNetV2:1.0,ResNet50,VGG16"
PRECISIONS = ("float32", "mixed_bfloat16")
CHUNK = 128  # images per base.predict call, as in the lesson


def processor():
    """Return the processor's model name and its bfloat16 flags (str)."""
    from cnn_course.speed import cpu_flags, cpu_model

    flags = sorted(f for f in cpu_flags() if "bf16" in f or f == "amx_tile")
    return f"{cpu_model()} ({', '.join(flags) or 'no bf16 flags'})"


def load_images(folder, n, size):
    """Return n images (n, size, size, 3) uint8 from `folder`, or random pixels."""
    from cnn_course import data

    if folder is None:
        try:
            folder = data.find_dog_images()
        except (data.DatasetNotFound, data.DataError):
            folder = None
    if folder is not None:
        paths = sorted(p for p in Path(folder).rglob("*") if data.images.is_image_name(p.name))[:n]
        if paths:
            images = np.concatenate(list(data.read_images(paths, size=(size, size), batch_size=64)))
            return images, f"{len(images)} photos from {folder}"
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), f"{n} random-pixel images"


def build(spec, size):
    """Return (label, base model, preprocess_input) for 'Name' or 'Name:alpha'."""
    import keras

    name, _, alpha = spec.partition(":")
    apps = {
        "VGG16": keras.applications.vgg16,
        "ResNet50": keras.applications.resnet50,
        "MobileNetV2": keras.applications.mobilenet_v2,
    }
    if name not in apps:
        raise SystemExit(f"feature_speed: unknown backbone {name!r}; choose from {', '.join(apps)}")
    kwargs = {"alpha": float(alpha)} if alpha else {}
    base = getattr(keras.applications, name)(weights=None, include_top=False, input_shape=(size, size, 3), **kwargs)
    return spec, base, apps[name].preprocess_input


def paired(spec, images, size, rounds):
    """Measure one backbone in float32 and mixed_bfloat16, alternately.

    Both models are built first (a model keeps the dtype policy it was built
    under); after a warm-up pass each, every round times one pass of each over
    `images` in ABBA order. Returns ({precision: [images/s per round]},
    {precision: [images per CPU-second per round]}, [bf16/f32 ratio per round],
    output shape).
    """
    import keras

    from cnn_course.timing import alternate

    keras.backend.clear_session()
    models = {}
    for precision in PRECISIONS:
        keras.mixed_precision.set_global_policy(precision)
        try:
            models[precision] = build(spec, size)
        finally:
            keras.mixed_precision.set_global_policy("float32")

    def one_pass(precision):
        _, base, preprocess_input = models[precision]
        wall, cpu = time.perf_counter(), time.process_time()
        for lo in range(0, len(images), CHUNK):
            out = base.predict(preprocess_input(images[lo : lo + CHUNK].astype("float32")), verbose=0)
        return len(images) / (time.perf_counter() - wall), len(images) / (time.process_time() - cpu), out.shape

    for precision in PRECISIONS:  # warm-up: the first call traces and compiles
        _, base, preprocess_input = models[precision]
        base.predict(preprocess_input(images[:CHUNK].astype("float32")), verbose=0)
    done = []

    def timed(precision):
        rate, cpu_rate, shape = one_pass(precision)
        done.append((precision, rate, cpu_rate, shape))
        if len(done) % 2 == 0:
            this = {p: r for p, r, _, _ in done[-2:]}
            print(
                f"  {spec:<17} round {len(done) // 2}: float32 {this['float32']:7.1f}, mixed_bfloat16 "
                f"{this['mixed_bfloat16']:7.1f} images/s (ratio {this['mixed_bfloat16'] / this['float32']:.2f}); "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
        return rate

    rates = alternate({p: (lambda p=p: timed(p)) for p in PRECISIONS}, rounds)
    cpu_rates = {p: [c for q, _, c, _ in done if q == p] for p in PRECISIONS}
    ratios = [b / f for f, b in zip(rates["float32"], rates["mixed_bfloat16"])]
    return rates, cpu_rates, ratios, tuple(done[-1][3][1:])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=None, help="folder of photos (default: the dog photos)")
    parser.add_argument("--n", type=int, default=128, help="images per measurement (default 128)")
    parser.add_argument("--repeats", type=int, default=4, help="paired rounds, ABBA order (default 4)")
    parser.add_argument("--size", type=int, default=224, help="image side (default 224)")
    parser.add_argument(
        "--backbones",
        default=DEFAULT_BACKBONES,
        help=f"comma-separated Name or Name:alpha (default {DEFAULT_BACKBONES})",
    )
    args = parser.parse_args(argv)
    if args.n < 1 or args.repeats < 1:
        parser.error("--n and --repeats must be at least 1")

    import keras

    from cnn_course.reports import text_table

    images, what = load_images(args.images, args.n, args.size)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"Feature pass at {args.size}x{args.size} on {what}; {processor()}, {os.cpu_count()} cores, "
        f"load average at start {load}; Keras {keras.__version__} on {keras.backend.backend()}",
        flush=True,
    )
    specs = args.backbones.split(",")
    rows = []
    for spec in specs:
        rates, cpu_rates, ratios, shape = paired(spec, images, args.size, args.repeats)
        rows.append((spec, shape, rates, cpu_rates, ratios))
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"\nMedians over {args.repeats} paired rounds (load average at end {load}):")
    med = statistics.median
    print(
        text_table(
            [
                "backbone",
                "features per image",
                "float32 images/s",
                "mixed_bfloat16 images/s",
                "bf16 / f32 (paired, range)",
                "per CPU-second f32 / bf16",
            ],
            [
                [
                    spec,
                    str(shape),
                    f"{med(rates['float32']):.1f}",
                    f"{med(rates['mixed_bfloat16']):.1f}",
                    f"{med(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})",
                    f"{med(cpu_rates['float32']):.1f} / {med(cpu_rates['mixed_bfloat16']):.1f}",
                ]
                for spec, shape, rates, cpu_rates, ratios in rows
            ],
            right={2, 3, 4, 5},
            markdown=True,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
