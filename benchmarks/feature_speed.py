"""How fast a frozen ImageNet backbone turns photos into bottleneck features.

    python benchmarks/feature_speed.py [--images DIR] [--n 128] [--repeats 4]
                                       [--backbones MobileNetV2:0.35,ResNet50,VGG16]

Runs the transfer-learning lesson's feature pass as it does (``preprocess_input``, ``base.predict`` on
chunks of 128 images at 224x224) per backbone, float32 and mixed_bfloat16 alternately, on the same photos
decoded beforehand (DIR, default: the dog photos, else random pixels; random weights: the speed does not
depend on them); prints images/s, images per CPU-second and the paired ratio. See benchmarks/README.md.
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


def load_images(folder, n, size):
    """Return (images, what they are): ``n`` uint8 (size, size, 3) photos from ``folder`` or the dog
    photos, else random pixels."""
    from cnn_course import data

    try:
        folder = folder or data.find_dog_images()
    except (data.DatasetNotFound, data.DataError):
        folder = None
    paths = sorted(p for p in Path(folder).rglob("*") if data.images.is_image_name(p.name))[:n] if folder else []
    if paths:
        images = np.concatenate(list(data.read_images(paths, size=(size, size), batch_size=64)))
        return images, f"{len(images)} photos from {folder}"
    return np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8), f"{n} random-pixel images"


def build(spec, size):
    """Return (base model, preprocess_input) for 'Name' or 'Name:alpha', under the current dtype policy."""
    import keras

    name, _, alpha = spec.partition(":")
    apps = {"VGG16": "vgg16", "ResNet50": "resnet50", "MobileNetV2": "mobilenet_v2"}
    if name not in apps:
        raise SystemExit(f"feature_speed: unknown backbone {name!r}; choose from {', '.join(apps)}")
    kwargs = {"alpha": float(alpha)} if alpha else {}
    base = getattr(keras.applications, name)(weights=None, include_top=False, input_shape=(size, size, 3), **kwargs)
    return base, getattr(keras.applications, apps[name]).preprocess_input


def paired(spec, images, size, rounds):
    """Measure one backbone in float32 and mixed_bfloat16 in ABBA rounds, after a warm-up pass each (both
    built first: a model keeps the policy it was built under). Returns ({precision: images/s per round},
    {precision: images per CPU-second per round}, [bf16/f32 ratio per round], the features' shape)."""
    import keras

    from cnn_course.timing import alternate

    keras.backend.clear_session()
    models, done = {}, []
    for precision in PRECISIONS:
        keras.mixed_precision.set_global_policy(precision)
        try:
            models[precision] = build(spec, size)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        base, preprocess_input = models[precision]
        base.predict(preprocess_input(images[:CHUNK].astype("float32")), verbose=0)  # warm-up: traces and compiles

    def one_pass(precision):
        (base, preprocess_input), wall, cpu = models[precision], time.perf_counter(), time.process_time()
        for lo in range(0, len(images), CHUNK):
            out = base.predict(preprocess_input(images[lo : lo + CHUNK].astype("float32")), verbose=0)
        n = len(images)
        done.append((precision, n / (time.perf_counter() - wall), n / (time.process_time() - cpu), out.shape[1:]))
        if len(done) % 2 == 0:
            f, b = ({p: r for p, r, *_ in done[-2:]}[p] for p in PRECISIONS)
            print(
                f"  {spec:<17} round {len(done) // 2}: float32 {f:7.1f}, mixed_bfloat16 {b:7.1f} images/s "
                f"(ratio {b / f:.2f}); load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
        return done[-1][1]

    rates = alternate({p: (lambda p=p: one_pass(p)) for p in PRECISIONS}, rounds)
    cpu_rates = {p: [c for q, _, c, _ in done if q == p] for p in PRECISIONS}
    ratios = [b / f for f, b in zip(*(rates[p] for p in PRECISIONS))]
    return rates, cpu_rates, ratios, done[-1][3]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=None, help="folder of photos (default: the dog photos)")
    parser.add_argument("--n", type=int, default=128, help="images per measurement (default 128)")
    parser.add_argument("--repeats", type=int, default=4, help="paired rounds, ABBA order (default 4)")
    parser.add_argument("--size", type=int, default=224, help="image side (default 224)")
    parser.add_argument(
        "--backbones", default=DEFAULT_BACKBONES, help=f"Name or Name:alpha, (default {DEFAULT_BACKBONES})"
    )
    args = parser.parse_args(argv)
    if args.n < 1 or args.repeats < 1:
        parser.error("--n and --repeats must be at least 1")
    import keras

    from cnn_course.reports import text_table
    from cnn_course.speed import cpu_flags, cpu_model

    images, what = load_images(args.images, args.n, args.size)
    flags = ", ".join(sorted(f for f in cpu_flags() if "bf16" in f or f == "amx_tile")) or "no bf16 flags"
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"Feature pass at {args.size}x{args.size} on {what}; {cpu_model()} ({flags}), {os.cpu_count()} cores, "
        f"load average at start {load}; Keras {keras.__version__} on {keras.backend.backend()}",
        flush=True,
    )
    rows, med = [], statistics.median
    for spec in args.backbones.split(","):
        rates, cpu, ratios, shape = paired(spec, images, args.size, args.repeats)
        f32, bf16 = (f"{med(rates[p]):.1f}" for p in PRECISIONS)
        paired_ratio = f"{med(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
        rows.append([spec, str(shape), f32, bf16, paired_ratio, " / ".join(f"{med(cpu[p]):.1f}" for p in PRECISIONS)])
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"\nMedians over {args.repeats} paired rounds (load average at end {load}):")
    head = ["backbone", "features per image", "float32 images/s", "mixed_bfloat16 images/s"]
    head += ["bf16 / f32 (paired, range)", "per CPU-second f32 / bf16"]
    print(text_table(head, rows, right={2, 3, 4, 5}, markdown=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
