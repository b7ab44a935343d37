"""The figures the lessons show.

Every function draws one matplotlib figure and returns it; the notebook shows
it with ``plt.show()``. Nothing here trains or changes a model.
"""

import math

import matplotlib.pyplot as plt
import numpy as np

RIGHT = "green"
WRONG = "red"


def _as_image(image):
    """Return ``image`` ready for ``imshow``: (H, W) for one channel, else (H, W, C)."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    return image


def _grid(n, ncols, size):
    """Return (figure, flat list of axes) for ``n`` panels in rows of ``ncols``."""
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    axes = axes.ravel()
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes


def show_images(images, titles=None, ncols=6, cmap=None, size=1.6):
    """Draw images in a grid, each with an optional title.

    ``images`` is a sequence or array of (H, W), (H, W, 1) or (H, W, 3) images
    (uint8 0-255 or floats 0-1). One-channel images are drawn in grey unless
    ``cmap`` says otherwise. Returns the Figure. Raises ValueError when there
    are no images or the number of titles does not match.
    """
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


def show_pixel_values(image, size=10):
    """Draw one grayscale image enlarged, with each pixel's value written in it.

    Text is white on dark pixels and black on light ones. Returns the Figure.
    Raises ValueError for an image that is not 2-D (or (H, W, 1)).
    """
    image = _as_image(image)
    if image.ndim != 2:
        raise ValueError(f"show_pixel_values: expected a grayscale image, got shape {image.shape}")
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(image, cmap="gray")
    threshold = (float(image.max()) + float(image.min())) / 2
    fmt = "{:.2f}" if np.issubdtype(image.dtype, np.floating) and image.max() <= 1 else "{:.0f}"
    for (row, col), value in np.ndenumerate(image):
        ax.text(
            col,
            row,
            fmt.format(value),
            ha="center",
            va="center",
            fontsize=6,
            color="white" if value < threshold else "black",
        )
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_history(history):
    """Draw loss and accuracy per epoch, training against validation.

    ``history`` is what ``model.fit`` returns or its ``.history`` dict. Only
    the curves present are drawn (accuracy needs ``metrics=["accuracy"]``).
    Returns the Figure. Raises ValueError when the history has no loss.
    """
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
    """Draw the first ``n`` images titled "predicted (true)", green when right and red when wrong.

    ``y_true`` and ``y_pred`` are integer class indices (use ``argmax`` on
    one-hot labels or softmax outputs first); ``class_names`` maps them to
    names. Returns the Figure. Raises ValueError when the lengths differ.
    """
    y_true = np.asarray(y_true).reshape(-1)
    y_pred = np.asarray(y_pred).reshape(-1)
    if not len(images) == len(y_true) == len(y_pred):
        raise ValueError(
            f"show_predictions: {len(images)} images, {len(y_true)} true labels, "
            f"{len(y_pred)} predictions: they must match"
        )
    n = min(n, len(images))
    name = (lambda i: class_names[int(i)]) if class_names is not None else (lambda i: str(int(i)))
    fig, axes = _grid(n, ncols, size)
    for ax, image, true, pred in zip(axes, images[:n], y_true[:n], y_pred[:n]):
        image = _as_image(image)
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
        ax.set_title(f"{name(pred)} ({name(true)})", fontsize=8, color=RIGHT if pred == true else WRONG)
    fig.tight_layout()
    return fig


def show_right_and_wrong(images, y_true, y_pred, class_names=None, n=16, ncols=8, seed=0, size=1.6):
    """Draw right answers and mistakes side by side: half the panels of each, picked at random.

    Up to ``n // 2`` correctly classified images come first (titled
    "predicted (true)" in green), then up to ``n - n // 2`` misclassified ones
    (in red); when one kind is short, more of the other fill the grid. With
    ``ncols = n // 2`` (the default for n=16) the right answers fill the top
    row and the mistakes the bottom one. ``seed`` makes the choice repeatable.
    ``y_true`` and ``y_pred`` are integer class indices. Returns the Figure.
    Raises ValueError when the lengths differ or there are no images.
    """
    y_true = np.asarray(y_true).reshape(-1)
    y_pred = np.asarray(y_pred).reshape(-1)
    if not len(images) == len(y_true) == len(y_pred):
        raise ValueError(
            f"show_right_and_wrong: {len(images)} images, {len(y_true)} true labels, "
            f"{len(y_pred)} predictions: they must match"
        )
    if len(images) == 0:
        raise ValueError("show_right_and_wrong: no images to show")
    rng = np.random.default_rng(seed)
    right = rng.permutation(np.flatnonzero(y_true == y_pred))
    wrong = rng.permutation(np.flatnonzero(y_true != y_pred))
    n = min(n, len(images))
    n_wrong = min(len(wrong), n - min(n // 2, len(right)))
    n_right = min(len(right), n - n_wrong)
    chosen = np.concatenate([right[:n_right], wrong[:n_wrong]]).astype(int)
    name = (lambda i: class_names[int(i)]) if class_names is not None else (lambda i: str(int(i)))
    fig, axes = _grid(len(chosen), ncols, size)
    for ax, i in zip(axes, chosen):
        image = _as_image(images[i])
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
        ax.set_title(
            f"{name(y_pred[i])} ({name(y_true[i])})", fontsize=8, color=RIGHT if y_pred[i] == y_true[i] else WRONG
        )
    fig.suptitle(
        f"{n_right} right answers, then {n_wrong} mistakes, picked at random from "
        f"{len(right):,} right and {len(wrong):,} wrong",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def plot_confusion_matrix(y_true, y_pred, class_names):
    """Draw the confusion matrix with scikit-learn's ``ConfusionMatrixDisplay``:
    rows are true classes, columns predicted, counts written in.

    Returns the Figure. Raises ValueError when a label is outside ``class_names``.
    """
    from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix

    y_true = np.asarray(y_true).reshape(-1).astype(int)
    y_pred = np.asarray(y_pred).reshape(-1).astype(int)
    k = len(class_names)
    if y_true.size and (min(y_true.min(), y_pred.min()) < 0 or max(y_true.max(), y_pred.max()) >= k):
        raise ValueError(f"plot_confusion_matrix: labels must be in 0..{k - 1}")
    fig, ax = plt.subplots(figsize=(0.6 * k + 2, 0.6 * k + 1.5))
    counts = confusion_matrix(y_true, y_pred, labels=range(k)) if y_true.size else np.zeros((k, k), int)
    ConfusionMatrixDisplay(counts, display_labels=class_names).plot(
        cmap="Blues", colorbar=False, xticks_rotation=45, ax=ax
    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    return fig


def show_filters(filters, titles=None, size=2.5):
    """Draw small 2-D kernels side by side with every value written in its cell.

    ``filters`` is a sequence of 2-D arrays (for example 4x4 edge detectors).
    Returns the Figure. Raises ValueError for a kernel that is not 2-D.
    """
    filters = [np.asarray(f) for f in filters]
    for f in filters:
        if f.ndim != 2:
            raise ValueError(f"show_filters: each filter must be 2-D, got shape {f.shape}")
    fig, axes = _grid(len(filters), len(filters), size)
    for i, (ax, kernel) in enumerate(zip(axes, filters)):
        ax.imshow(kernel, cmap="gray")
        middle = (float(kernel.max()) + float(kernel.min())) / 2
        for (row, col), value in np.ndenumerate(kernel):
            ax.text(col, row, f"{value:g}", ha="center", va="center", color="white" if value < middle else "black")
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=9)
    fig.tight_layout()
    return fig


def show_feature_maps(maps, titles=None, ncols=4, cmap="gray", size=2.2):
    """Draw activation (feature) maps in a grid.

    ``maps`` is an (H, W, C) array, one map per channel, or a sequence of 2-D
    maps. Returns the Figure. Raises ValueError for other shapes.
    """
    if isinstance(maps, np.ndarray) and maps.ndim == 3:
        maps = [maps[..., c] for c in range(maps.shape[-1])]
    maps = [np.asarray(m) for m in maps]
    if not maps or any(m.ndim != 2 for m in maps):
        raise ValueError("show_feature_maps: expected an (H, W, C) array or a list of 2-D maps")
    if titles is None:
        titles = [f"map {i}" for i in range(len(maps))]
    return show_images(maps, titles=titles, ncols=ncols, cmap=cmap, size=size)


def show_heat_maps(images, maps, titles=None, colors=None, ncols=6, size=2.2, alpha=0.5):
    """Draw each image with its heat map laid over it (the map's positive part, in "jet" colours).

    ``images`` are (H, W, 3) or (H, W) images and ``maps`` one 2-D map per
    image, of the image's height and width. Each map is scaled to its own
    largest value, drawn red, so the colours compare places within one
    image, not between images. Each pixel's opacity is proportional to the
    map's positive value there: ``alpha`` at the largest value, fully
    transparent (the image left clear) where the map is 0 or negative.
    ``colors`` colours the titles (for example green for right and red for
    wrong answers). Returns the Figure. Raises ValueError when the counts differ or a map's shape is
    not its image's.
    """
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
    """Draw 2-D points (one per image) coloured by class, with a legend of the class names.

    ``points`` is (N, 2), ``labels`` N integer classes. Returns the Figure.
    Raises ValueError when the shapes do not match.
    """
    points = np.asarray(points)
    labels = np.asarray(labels).reshape(-1)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) != len(labels):
        raise ValueError(
            f"plot_embedding: points {points.shape} and {len(labels)} labels: expected (N, 2) points and N labels"
        )
    fig, ax = plt.subplots(figsize=(size * 1.4, size))
    colours = plt.get_cmap("tab20" if len(class_names) > 10 else "tab10")
    for c, name in enumerate(class_names):
        chosen = labels == c
        if chosen.any():
            ax.scatter(
                points[chosen, 0], points[chosen, 1], s=10, alpha=0.7, color=colours(c % colours.N), label=str(name)
            )
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    if len(class_names) <= 20:
        ax.legend(fontsize=8, markerscale=2, loc="center left", bbox_to_anchor=(1, 0.5))
    fig.tight_layout()
    return fig
