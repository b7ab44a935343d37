"""The figures the lessons show.

Every function draws one matplotlib figure and returns it; the notebook shows it with
``plt.show()``. Nothing here trains or changes a model.
"""

import math

import matplotlib.pyplot as plt
import numpy as np

RIGHT = "green"
WRONG = "red"


def _as_image(image):
    """Return ``image`` ready for ``imshow``: (H, W) for one channel, else (H, W, C)."""
    image = np.asarray(image)
    return image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image


def _grid(n, ncols, size):
    """Return (figure, flat axes without ticks) for ``n`` panels in rows of ``ncols``."""
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    axes = axes.ravel()
    for i, ax in enumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_visible(i < n)
    return fig, axes


def _labels(images, y_true, y_pred, what):
    """Return y_true, y_pred as flat arrays; ValueError unless their lengths match the images'."""
    y_true, y_pred = np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1)
    if not len(images) == len(y_true) == len(y_pred):
        raise ValueError(
            f"{what}: {len(images)} images, {len(y_true)} true labels, {len(y_pred)} predictions: they must match"
        )
    return y_true, y_pred


def _predictions(images, chosen, y_true, y_pred, class_names, ncols, size):
    """Return a grid of images[chosen], each titled "predicted (true)", green when right, red when wrong."""
    name = (lambda i: class_names[int(i)]) if class_names is not None else (lambda i: str(int(i)))
    fig, axes = _grid(len(chosen), ncols, size)
    for ax, i in zip(axes, chosen):
        image = _as_image(images[i])
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
        color = RIGHT if y_pred[i] == y_true[i] else WRONG
        ax.set_title(f"{name(y_pred[i])} ({name(y_true[i])})", fontsize=8, color=color)
    return fig


def show_images(images, titles=None, ncols=6, cmap=None, size=1.6):
    """Draw (H, W), (H, W, 1) or (H, W, 3) images in a grid (one channel in grey unless ``cmap``).
    Returns the Figure; raises ValueError for no images or a wrong number of titles."""
    images = list(images)
    if not images:
        raise ValueError("show_images: no images to show")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"show_images: {len(images)} images but {len(titles)} titles")
    fig, axes = _grid(len(images), ncols, size)
    for i, (ax, image) in enumerate(zip(axes, images)):
        image = _as_image(image)
        ax.imshow(image, cmap=cmap or ("gray" if image.ndim == 2 else None))
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=9)
    fig.tight_layout()
    return fig


def _write_values(ax, array, fmt, fontsize=None):
    """Write each value of a 2-D array in its cell, white on the darker half, black on the lighter."""
    middle = (float(array.max()) + float(array.min())) / 2
    for (row, col), value in np.ndenumerate(array):
        color = "white" if value < middle else "black"
        ax.text(col, row, fmt.format(value), ha="center", va="center", fontsize=fontsize, color=color)


def show_pixel_values(image, size=10):
    """Draw one grayscale image enlarged with each pixel's value in it. Returns the Figure;
    raises ValueError for an image that is not 2-D (or (H, W, 1))."""
    image = _as_image(image)
    if image.ndim != 2:
        raise ValueError(f"show_pixel_values: expected a grayscale image, got shape {image.shape}")
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(image, cmap="gray")
    _write_values(ax, image, "{:.2f}" if np.issubdtype(image.dtype, np.floating) and image.max() <= 1 else "{:.0f}", 6)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_history(history):
    """Draw loss and accuracy per epoch, training against validation, from what ``fit`` returns (or its
    ``.history``). Returns the Figure; raises ValueError when there is no loss."""
    logs = getattr(history, "history", history)
    if "loss" not in logs:
        raise ValueError("plot_history: the history has no 'loss' (was the model trained?)")
    panels = [name for name in ("loss", "accuracy") if name in logs]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), squeeze=False)
    for ax, name in zip(axes[0], panels):
        epochs = np.arange(1, len(logs[name]) + 1)
        ax.plot(epochs, logs[name], "o-", label="training")
        if f"val_{name}" in logs:
            ax.plot(epochs, logs[f"val_{name}"], "o-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def show_predictions(images, y_true, y_pred, class_names=None, n=24, ncols=8, size=1.6):
    """Draw the first ``n`` images titled "predicted (true)" (integer classes), green when right and
    red when wrong. Returns the Figure; raises ValueError when the lengths differ."""
    y_true, y_pred = _labels(images, y_true, y_pred, "show_predictions")
    fig = _predictions(images, range(min(n, len(images))), y_true, y_pred, class_names, ncols, size)
    fig.tight_layout()
    return fig


def show_right_and_wrong(images, y_true, y_pred, class_names=None, n=16, ncols=8, seed=0, size=1.6):
    """Draw up to ``n // 2`` right answers, then mistakes (more of one kind when the other is short),
    picked at random with ``seed``. Returns the Figure; raises ValueError for mismatched lengths or no images."""
    y_true, y_pred = _labels(images, y_true, y_pred, "show_right_and_wrong")
    if len(images) == 0:
        raise ValueError("show_right_and_wrong: no images to show")
    rng = np.random.default_rng(seed)
    right = rng.permutation(np.flatnonzero(y_true == y_pred))
    wrong = rng.permutation(np.flatnonzero(y_true != y_pred))
    n = min(n, len(images))
    n_wrong = min(len(wrong), n - min(n // 2, len(right)))
    n_right = min(len(right), n - n_wrong)
    chosen = np.concatenate([right[:n_right], wrong[:n_wrong]]).astype(int)
    fig = _predictions(images, chosen, y_true, y_pred, class_names, ncols, size)
    fig.suptitle(
        f"{n_right} right answers, then {n_wrong} mistakes, picked at random from "
        f"{len(right):,} right and {len(wrong):,} wrong",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def plot_confusion_matrix(y_true, y_pred, class_names):
    """Draw the confusion matrix with scikit-learn's ``ConfusionMatrixDisplay`` (rows true, columns
    predicted). Returns the Figure; raises ValueError for a label outside ``class_names``."""
    from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix

    y_true = np.asarray(y_true).reshape(-1).astype(int)
    y_pred = np.asarray(y_pred).reshape(-1).astype(int)
    k = len(class_names)
    if y_true.size and (min(y_true.min(), y_pred.min()) < 0 or max(y_true.max(), y_pred.max()) >= k):
        raise ValueError(f"plot_confusion_matrix: labels must be in 0..{k - 1}")
    fig, ax = plt.subplots(figsize=(0.6 * k + 2, 0.6 * k + 1.5))
    counts = confusion_matrix(y_true, y_pred, labels=range(k)) if y_true.size else np.zeros((k, k), int)
    display = ConfusionMatrixDisplay(counts, display_labels=class_names)
    display.plot(cmap="Blues", colorbar=False, xticks_rotation=45, ax=ax)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    return fig


def show_filters(filters, titles=None, size=2.5):
    """Draw small 2-D kernels side by side with every value written in. Returns the Figure;
    raises ValueError for a kernel that is not 2-D."""
    filters = [np.asarray(f) for f in filters]
    for f in filters:
        if f.ndim != 2:
            raise ValueError(f"show_filters: each filter must be 2-D, got shape {f.shape}")
    fig, axes = _grid(len(filters), len(filters), size)
    for i, (ax, kernel) in enumerate(zip(axes, filters)):
        ax.imshow(kernel, cmap="gray")
        _write_values(ax, kernel, "{:g}")
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=9)
    fig.tight_layout()
    return fig


def show_feature_maps(maps, titles=None, ncols=4, cmap="gray", size=2.2):
    """Draw feature maps (an (H, W, C) array or 2-D maps) in a grid. Returns the Figure;
    raises ValueError for other shapes."""
    if isinstance(maps, np.ndarray) and maps.ndim == 3:
        maps = [maps[..., c] for c in range(maps.shape[-1])]
    maps = [np.asarray(m) for m in maps]
    if not maps or any(m.ndim != 2 for m in maps):
        raise ValueError("show_feature_maps: expected an (H, W, C) array or a list of 2-D maps")
    titles = [f"map {i}" for i in range(len(maps))] if titles is None else titles
    return show_images(maps, titles=titles, ncols=ncols, cmap=cmap, size=size)


def show_heat_maps(images, maps, titles=None, colors=None, ncols=6, size=2.2, alpha=0.5):
    """Draw each image under its 2-D heat map (the positive part in "jet", each map scaled to its own
    maximum, opacity up to ``alpha``); ``colors`` colours the titles. Returns the Figure; raises
    ValueError when the counts differ or a map's shape is not its image's."""
    maps = [np.asarray(m, dtype="float32") for m in maps]
    if len(images) != len(maps) or not maps:
        raise ValueError(f"show_heat_maps: {len(images)} images and {len(maps)} maps: they must match")
    fig, axes = _grid(len(maps), ncols, size)
    for i, (ax, image, heat) in enumerate(zip(axes, images, maps)):
        image = _as_image(image)
        if heat.shape != image.shape[:2]:
            raise ValueError(f"show_heat_maps: map {i} has shape {heat.shape}, its image {image.shape[:2]}")
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
        positive = np.clip(heat, 0, None)
        top = max(float(positive.max()), 1e-12)
        ax.imshow(positive, cmap="jet", alpha=alpha * positive / top, vmin=0, vmax=top)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8, color="black" if colors is None else colors[i])
    fig.tight_layout()
    return fig


def plot_embedding(points, labels, class_names, title=None, size=6):
    """Draw (N, 2) points coloured by their N integer classes, with a legend. Returns the Figure;
    raises ValueError when the shapes do not match."""
    points, labels = np.asarray(points), np.asarray(labels).reshape(-1)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) != len(labels):
        raise ValueError(
            f"plot_embedding: points {points.shape} and {len(labels)} labels: expected (N, 2) points and N labels"
        )
    fig, ax = plt.subplots(figsize=(size * 1.4, size))
    colours = plt.get_cmap("tab20" if len(class_names) > 10 else "tab10")
    for c, name in enumerate(class_names):
        chosen = labels == c
        if chosen.any():
            ax.scatter(*points[chosen].T, s=10, alpha=0.7, color=colours(c % colours.N), label=str(name))
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    if len(class_names) <= 20:
        ax.legend(fontsize=8, markerscale=2, loc="center left", bbox_to_anchor=(1, 0.5))
    fig.tight_layout()
    return fig
