"""Generated or bundled stand-ins for quick offline runs and tests: never
real data, and always labelled ``STAND-IN`` where they are used."""

from __future__ import annotations

from pathlib import Path

import numpy as np

def load_digits28(seed=0):
    """A stand-in for MNIST: scikit-learn's bundled handwritten digits (1,797
    real 8x8 images, no download), scaled to 0-255 and resized to 20x20 inside
    a 28x28 frame as MNIST's digits are, split 80/20 stratified by class.

    Returns ((x_train, y_train), (x_test, y_test)), uint8, x of shape
    (N, 28, 28). Raises nothing of its own."""
    import cv2
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = np.zeros((len(digits.images), 28, 28), np.uint8)
    for i, img in enumerate(digits.images):
        big = cv2.resize((img * (255 / 16)).astype(np.float32), (20, 20), interpolation=cv2.INTER_CUBIC)
        x[i, 4:24, 4:24] = np.clip(big, 0, 255).round().astype(np.uint8)
    y = digits.target.astype(np.uint8)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=seed)
    return (x_train, y_train), (x_test, y_test)


def _cifar_like_images(labels, rng, size=(32, 32)):
    """Generate RGB uint8 images whose colour and stripe pattern depend on the
    class (noisy, so it is not trivial, but a small CNN learns it fast)."""
    palette = np.array([
        [230, 60, 60], [60, 180, 75], [70, 90, 230], [240, 200, 40], [150, 60, 200],
        [60, 210, 210], [240, 130, 40], [240, 90, 190], [130, 130, 130], [140, 90, 40],
    ], np.float32)
    h, w = size
    n = len(labels)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = (labels * (np.pi / 10))[:, None, None]
    freq = (0.35 + 0.08 * (labels % 5))[:, None, None]
    phase = rng.uniform(0, 2 * np.pi, n)[:, None, None]
    stripes = np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy) + phase)
    base = palette[labels] * rng.uniform(0.6, 1.0, (n, 1))
    img = base[:, None, None, :] * (0.75 + 0.25 * stripes[..., None])
    img += rng.normal(0, 18, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_cifar10_standin(n_train=2000, n_test=500, seed=0):
    """A generated CIFAR-shaped stand-in: 32x32 RGB images whose colour and
    stripe direction depend on the class (labels balanced, 0-9), so a small
    CNN learns it in one or two epochs. Not real data.

    Returns ((x_train, y_train), (x_test, y_test)), x uint8 (N, 32, 32, 3),
    y uint8 (N,). Raises ValueError for sizes under 10."""
    if n_train < 10 or n_test < 10:
        raise ValueError("the stand-in needs at least 10 train and 10 test images (one per class)")
    rng = np.random.default_rng(seed)
    out = []
    for n in (n_train, n_test):
        y = rng.permutation(np.arange(n) % 10).astype(np.uint8)
        out.append((_cifar_like_images(y, rng), y))
    return out[0], out[1]


def make_image_folder_standin(root, n_classes=5, per_split=None, size=(64, 64), seed=0) -> Path:
    """Write a small generated JPEG tree ``root/<split>/<NNN.Name>/<i>.jpg``
    shaped like dogImages, with class-dependent colours and stripes, for quick
    runs and tests. ``per_split`` maps split to images per class (default
    {"train": 12, "valid": 4, "test": 4}); ``size`` is (height, width).

    Returns ``root`` as a Path. Raises OSError when it cannot be written."""
    import cv2

    per_split = {"train": 12, "valid": 4, "test": 4} if per_split is None else per_split
    root = Path(root)
    rng = np.random.default_rng(seed)
    names = ["Red", "Green", "Blue", "Yellow", "Purple", "Cyan", "Orange", "Pink", "Grey", "Brown"]
    for split, count in per_split.items():
        for c in range(n_classes):
            folder = root / split / f"{c + 1:03d}.Standin_{names[c % 10]}{'' if c < 10 else c}"
            folder.mkdir(parents=True, exist_ok=True)
            labels = np.full(count, c % 10)
            for i, img in enumerate(_cifar_like_images(labels, rng, size)):
                ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                                       [cv2.IMWRITE_JPEG_QUALITY, 90])
                (folder / f"{split}_{c:03d}_{i:04d}.jpg").write_bytes(buf.tobytes())
    return root

