"""Generated or bundled stand-ins for quick offline runs and tests: never real data, and always
labelled ``STAND-IN`` where they are used."""

from __future__ import annotations

from pathlib import Path

import numpy as np

RGB = "230,60,60 60,180,75 70,90,230 240,200,40 150,60,200 60,210,210 240,130,40 240,90,190 130,130,130 140,90,40"
PALETTE = np.float32([c.split(",") for c in RGB.split()])  # one colour per class


def load_digits28(seed=0):
    """A stand-in for MNIST: scikit-learn's 1,797 bundled 8x8 digits as 20x20 in a 28x28 frame (as
    MNIST's), 0-255, split 80/20 by class. Returns ((x_train, y_train), (x_test, y_test)), uint8."""
    import cv2
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = np.zeros((len(digits.images), 28, 28), np.uint8)
    for i, img in enumerate(digits.images):
        big = cv2.resize((img * (255 / 16)).astype(np.float32), (20, 20), interpolation=cv2.INTER_CUBIC)
        x[i, 4:24, 4:24] = np.clip(big, 0, 255).round().astype(np.uint8)
    y = digits.target.astype(np.uint8)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed)
    return (x_train, y_train), (x_test, y_test)


def _cifar_like_images(labels, rng, size=(32, 32)):
    """Noisy RGB uint8 images whose colour and stripes depend on the class: a small CNN learns them fast."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = (labels * (np.pi / 10))[:, None, None]
    freq = (0.35 + 0.08 * (labels % 5))[:, None, None]
    phase = rng.uniform(0, 2 * np.pi, len(labels))[:, None, None]
    stripes = np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy) + phase)
    base = PALETTE[labels] * rng.uniform(0.6, 1.0, (len(labels), 1))
    img = base[:, None, None, :] * (0.75 + 0.25 * stripes[..., None])
    img += rng.normal(0, 18, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_cifar10_standin(n_train=2000, n_test=500, seed=0):
    """A generated CIFAR-10-shaped ((x_train, y_train), (x_test, y_test)), uint8; ValueError under 10."""
    if n_train < 10 or n_test < 10:
        raise ValueError("the stand-in needs at least 10 train and 10 test images (one per class)")
    rng = np.random.default_rng(seed)
    out = []
    for n in (n_train, n_test):  # in this order: the same images as ever for a seed
        y = rng.permutation(np.arange(n) % 10).astype(np.uint8)
        out.append((_cifar_like_images(y, rng), y))
    return out[0], out[1]


def make_image_folder_standin(root, n_classes=5, per_split=None, size=(64, 64), seed=0) -> Path:
    """Write a small JPEG tree ``root/<split>/<NNN.Name>/<i>.jpg`` shaped like dogImages (``per_split``:
    images per class, default 12/4/4; ``size``: (h, w)); returns ``root``."""
    import cv2

    per_split = {"train": 12, "valid": 4, "test": 4} if per_split is None else per_split
    root = Path(root)
    rng = np.random.default_rng(seed)
    names = ["Red", "Green", "Blue", "Yellow", "Purple", "Cyan", "Orange", "Pink", "Grey", "Brown"]
    for split, count in per_split.items():
        for c in range(n_classes):
            folder = root / split / f"{c + 1:03d}.Standin_{names[c % 10]}{'' if c < 10 else c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i, img in enumerate(_cifar_like_images(np.full(count, c % 10), rng, size)):
                ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
                (folder / f"{split}_{c:03d}_{i:04d}.jpg").write_bytes(buf.tobytes())
    return root
