"""The figures draw what the lessons say they draw, and refuse bad input clearly."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from cnn_course import plots


def test_show_images_one_panel_per_image_with_titles():
    images = np.random.default_rng(0).integers(0, 255, (7, 28, 28), dtype=np.uint8)
    fig = plots.show_images(images, titles=list("abcdefg"), ncols=3)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 7
    assert [ax.get_title() for ax in visible] == list("abcdefg")


def test_show_images_refuses_mismatched_titles():
    with pytest.raises(ValueError, match="3 images but 2 titles"):
        plots.show_images(np.zeros((3, 8, 8)), titles=["a", "b"])


def test_show_pixel_values_writes_every_pixel():
    image = np.arange(16, dtype=np.uint8).reshape(4, 4)
    fig = plots.show_pixel_values(image)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == [str(v) for v in range(16)]


def test_show_pixel_values_refuses_colour():
    with pytest.raises(ValueError, match="grayscale"):
        plots.show_pixel_values(np.zeros((4, 4, 3)))


def test_plot_history_draws_training_and_validation():
    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.5, 0.8], "val_accuracy": [0.4, 0.7]}
    fig = plots.plot_history(history)
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert len(ax.lines) == 2


def test_plot_history_needs_a_loss():
    with pytest.raises(ValueError, match="no 'loss'"):
        plots.plot_history({})


def test_show_predictions_colours_right_and_wrong():
    images = np.zeros((3, 8, 8, 3), dtype=np.uint8)
    fig = plots.show_predictions(images, [0, 1, 2], [0, 2, 2], class_names=["cat", "dog", "frog"])
    titles = [(ax.get_title(), ax.title.get_color()) for ax in fig.axes if ax.get_visible()]
    assert titles == [("cat (cat)", "green"), ("frog (dog)", "red"), ("frog (frog)", "green")]


def test_confusion_matrix_counts():
    fig = plots.plot_confusion_matrix([0, 0, 1, 1], [0, 1, 1, 1], ["a", "b"])
    assert [t.get_text() for t in fig.axes[0].texts] == ["1", "1", "0", "2"]
    empty = plots.plot_confusion_matrix([], [], ["a", "b"])  # nothing predicted yet: zeros, no error
    assert [t.get_text() for t in empty.axes[0].texts] == ["0", "0", "0", "0"]
    with pytest.raises(ValueError, match="0..1"):
        plots.plot_confusion_matrix([0, 2], [0, 1], ["a", "b"])


def test_show_filters_writes_values_and_feature_maps_per_channel():
    edge = np.array([[-1, -1, 1, 1]] * 4)
    fig = plots.show_filters([edge, -edge], titles=["edge", "negative"])
    assert [t.get_text() for t in fig.axes[0].texts][:4] == ["-1", "-1", "1", "1"]
    maps = plots.show_feature_maps(np.zeros((5, 5, 3)))
    assert sum(ax.get_visible() for ax in maps.axes) == 3
    with pytest.raises(ValueError):
        plots.show_feature_maps(np.zeros(5))


def test_show_right_and_wrong_puts_half_of_each_side_by_side():
    images = np.zeros((40, 8, 8), dtype=np.uint8)
    y_true = np.arange(40) % 4
    y_pred = y_true.copy()
    y_pred[:10] = (y_pred[:10] + 1) % 4  # ten mistakes among forty
    fig = plots.show_right_and_wrong(images, y_true, y_pred, n=8, ncols=4)
    colours = [ax.title.get_color() for ax in fig.axes if ax.get_visible()]
    assert colours == ["green"] * 4 + ["red"] * 4
    for ax in fig.axes[4:8]:  # every red panel really is a mistake: "predicted (true)" differ
        predicted, true = ax.get_title().rstrip(")").split(" (")
        assert predicted != true
    assert "4 right answers, then 4 mistakes" in fig._suptitle.get_text()


def test_show_right_and_wrong_fills_with_right_answers_when_mistakes_are_few():
    images = np.zeros((10, 8, 8), dtype=np.uint8)
    y_true = np.zeros(10, int)
    y_pred = y_true.copy()
    y_pred[3] = 1  # a single mistake
    fig = plots.show_right_and_wrong(images, y_true, y_pred, n=6)
    colours = [ax.title.get_color() for ax in fig.axes if ax.get_visible()]
    assert colours == ["green"] * 5 + ["red"]
    with pytest.raises(ValueError, match="must match"):
        plots.show_right_and_wrong(images, y_true[:3], y_pred)


def test_show_heat_maps_lays_each_maps_positive_part_over_its_image():
    images = np.zeros((3, 8, 8, 3), dtype=np.uint8)
    maps = np.random.default_rng(0).normal(size=(3, 8, 8))
    fig = plots.show_heat_maps(images, maps, titles=["a", "b", "c"], colors=["green", "red", "green"], ncols=2)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["a", "b", "c"]
    for ax, heat in zip(visible, maps):
        image, overlay = ax.get_images()
        assert overlay.get_array().min() >= 0  # the negative part is clipped to 0
        assert overlay.get_clim() == pytest.approx((0, heat.max()))
        opacity = np.asarray(overlay.get_alpha())  # per pixel: clear where covering changed nothing
        assert opacity.shape == heat.shape
        assert np.all(opacity[heat <= 0] == 0)
        assert opacity.max() == pytest.approx(0.5) and opacity[
            np.unravel_index(heat.argmax(), heat.shape)
        ] == pytest.approx(0.5)
    assert visible[1].title.get_color() == "red"


def test_show_heat_maps_refuses_a_map_of_another_shape_than_its_image():
    with pytest.raises(ValueError, match=r"map 0 has shape \(4, 4\), its image \(8, 8\)"):
        plots.show_heat_maps(np.zeros((1, 8, 8, 3)), np.zeros((1, 4, 4)))
    with pytest.raises(ValueError, match="2 images and 1 maps"):
        plots.show_heat_maps(np.zeros((2, 8, 8, 3)), np.zeros((1, 8, 8)))


def test_plot_embedding_draws_one_point_per_image_in_its_class_colour():
    points = np.random.default_rng(0).normal(size=(30, 2))
    labels = np.arange(30) % 3
    fig = plots.plot_embedding(points, labels, ["a", "b", "c"])
    collections = fig.axes[0].collections
    assert [len(c.get_offsets()) for c in collections] == [10, 10, 10]
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="expected"):
        plots.plot_embedding(points[:, :1], labels, ["a", "b", "c"])
