"""cnn_course.features: bottleneck features with an .npz cache, ImageNet class names offline."""

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from cnn_course import data, features  # noqa: E402

SIZE = (16, 16)


@pytest.fixture
def offline_home(tmp_path, monkeypatch):
    """Empty data folder and Keras home, offline: nothing can be found or downloaded."""
    monkeypatch.setenv("CNN_COURSE_OFFLINE", "1")
    monkeypatch.setenv("CNN_COURSE_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    (tmp_path / "data").mkdir()
    (tmp_path / "keras").mkdir()
    monkeypatch.setattr(data.places, "REPO_DATA_DIR", tmp_path / "repo-data")
    return tmp_path


@pytest.fixture
def images(tmp_path):
    """Seven small PNG files with different random content; returns their paths."""
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    folder.mkdir()
    paths = []
    for i in range(7):
        path = folder / f"img{i}.png"
        cv2.imwrite(str(path), rng.integers(0, 256, (20, 24, 3), dtype=np.uint8))
        paths.append(path)
    return paths


def tiny_model(seed=0):
    """A small frozen 'base': one conv layer and a pooling layer, output (8, 8, 3)."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((*SIZE, 3)),
        keras.layers.Conv2D(3, 3, padding="same"),
        keras.layers.MaxPooling2D(2),
    ])


def expected(model, paths):
    """The features computed the long way: read, preprocess, predict."""
    x = np.concatenate(list(data.read_images(paths, size=SIZE, batch_size=100)))
    x = keras.applications.vgg16.preprocess_input(x.astype("float32"))
    return model.predict(x, verbose=0)


def test_features_match_model_outputs_in_order(images):
    model = tiny_model()
    got = features.compute_bottleneck_features(model, images, size=SIZE, batch_size=3, progress=False)
    assert got.shape == (7, 8, 8, 3)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected(model, images), rtol=1e-5, atol=1e-5)


def test_cache_is_written_then_loaded_without_running_the_model(images, tmp_path, capsys, monkeypatch):
    model = tiny_model()
    cache = tmp_path / "feats.npz"
    first = features.compute_bottleneck_features(model, images, size=SIZE, batch_size=4,
                                                 cache=cache, progress=False)
    assert cache.is_file()
    assert "computed (7, 8, 8, 3) and saved to cache" in capsys.readouterr().out

    def must_not_run(*args, **kwargs):
        raise AssertionError("the model ran although the features were cached")

    monkeypatch.setattr(model, "predict_on_batch", must_not_run)
    second = features.compute_bottleneck_features(model, images, size=SIZE, batch_size=4,
                                                  cache=cache, progress=False)
    assert "loaded from cache" in capsys.readouterr().out
    np.testing.assert_array_equal(first, second)


def test_changed_paths_recompute_and_replace_the_cache(images, tmp_path, capsys):
    model = tiny_model()
    cache = tmp_path / "feats.npz"
    features.compute_bottleneck_features(model, images, size=SIZE, cache=cache, progress=False)
    capsys.readouterr()
    fewer = features.compute_bottleneck_features(model, images[:5], size=SIZE, cache=cache,
                                                 progress=False)
    assert "computed (5, 8, 8, 3)" in capsys.readouterr().out
    assert fewer.shape[0] == 5
    with np.load(cache) as stored:
        assert stored["features"].shape == (5, 8, 8, 3)
    reordered = features.compute_bottleneck_features(model, images[::-1][:5], size=SIZE,
                                                     cache=cache, progress=False)
    assert "computed" in capsys.readouterr().out
    np.testing.assert_allclose(reordered[0], expected(model, images[-1:])[0], rtol=1e-5, atol=1e-5)


def test_changed_image_content_recomputes(images, tmp_path, capsys):
    cv2 = pytest.importorskip("cv2")
    model = tiny_model()
    cache = tmp_path / "feats.npz"
    features.compute_bottleneck_features(model, images, size=SIZE, cache=cache, progress=False)
    cv2.imwrite(str(images[0]), np.zeros((40, 40, 3), np.uint8))  # same path, new file size
    capsys.readouterr()
    features.compute_bottleneck_features(model, images, size=SIZE, cache=cache, progress=False)
    assert "computed" in capsys.readouterr().out


def test_other_weights_or_output_shape_do_not_reuse_the_cache(images, tmp_path, capsys):
    cache = tmp_path / "feats.npz"
    features.compute_bottleneck_features(tiny_model(seed=0), images, size=SIZE, cache=cache,
                                         progress=False)
    capsys.readouterr()
    features.compute_bottleneck_features(tiny_model(seed=1), images, size=SIZE, cache=cache,
                                         progress=False)
    assert "computed" in capsys.readouterr().out
    keras.utils.set_random_seed(0)
    wider = keras.Sequential([keras.Input((*SIZE, 3)), keras.layers.Conv2D(5, 3, padding="same")])
    got = features.compute_bottleneck_features(wider, images, size=SIZE, cache=cache, progress=False)
    assert got.shape == (7, 16, 16, 5)
    assert "computed" in capsys.readouterr().out


def test_a_corrupt_cache_is_recomputed(images, tmp_path, capsys):
    cache = tmp_path / "feats.npz"
    cache.write_bytes(b"not an npz file")
    got = features.compute_bottleneck_features(tiny_model(), images, size=SIZE, cache=cache,
                                               progress=False)
    assert got.shape == (7, 8, 8, 3)
    assert "computed" in capsys.readouterr().out
    assert features.load_cached_features(cache, features.cache_key(tiny_model(), images, SIZE)) is not None


def test_no_paths_is_a_clear_error():
    with pytest.raises(ValueError, match="no image paths"):
        features.compute_bottleneck_features(tiny_model(), [], size=SIZE)


def test_a_missing_image_is_a_data_error(images, tmp_path):
    with pytest.raises(data.DataError, match="nope.jpg"):
        features.compute_bottleneck_features(tiny_model(), images + [tmp_path / "nope.jpg"],
                                             size=SIZE, progress=False, cache=tmp_path / "f.npz")
    assert not (tmp_path / "f.npz").exists()


# --------------------------------------------------------------------------
# ImageNet class names


def write_class_index(folder, n=1000):
    folder.mkdir(parents=True, exist_ok=True)
    index = {str(i): [f"n{i:08d}", f"name_{i}"] for i in range(n)}
    (folder / features.CLASS_INDEX_FILE).write_text(json.dumps(index))


@pytest.mark.parametrize("where", ["data", "keras/models"])
def test_class_names_found_in_data_folder_or_keras_cache(offline_home, where, capsys):
    write_class_index(offline_home / where)
    names = features.imagenet_class_names()
    assert len(names) == 1000
    assert names[0] == "name_0" and names[999] == "name_999"
    assert str(offline_home / where) in capsys.readouterr().out


def test_an_incomplete_class_index_is_not_used(offline_home):
    write_class_index(offline_home / "data", n=10)
    with pytest.raises(data.DatasetNotFound):
        features.imagenet_class_names()


def test_offline_quick_gives_labelled_placeholders_without_downloading(offline_home, monkeypatch, capsys):
    monkeypatch.setattr(keras.utils, "get_file", lambda *a, **k: pytest.fail("tried to download"))
    names = features.imagenet_class_names(quick=True)
    assert len(names) == 1000
    assert all("STAND-IN" in name for name in names)
    assert "STAND-IN" in capsys.readouterr().out


def test_offline_full_mode_raises_naming_the_file_url_and_folder(offline_home, monkeypatch):
    monkeypatch.setattr(keras.utils, "get_file", lambda *a, **k: pytest.fail("tried to download"))
    with pytest.raises(data.DatasetNotFound) as error:
        features.imagenet_class_names()
    message = str(error.value)
    assert features.CLASS_INDEX_FILE in message
    assert features.CLASS_INDEX_URL in message
    assert str(offline_home / "data") in message
    assert "CNN_COURSE_OFFLINE" in message


def test_online_uses_keras_get_file_and_a_failed_download_is_a_clear_error(offline_home, monkeypatch):
    monkeypatch.setenv("CNN_COURSE_OFFLINE", "0")
    calls = []

    def fake_get_file(fname, origin, **kwargs):
        calls.append((fname, origin, kwargs.get("cache_subdir")))
        folder = offline_home / "keras" / "models"
        write_class_index(folder)
        return str(folder / fname)

    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    assert features.imagenet_class_names()[5] == "name_5"
    assert calls == [(features.CLASS_INDEX_FILE, features.CLASS_INDEX_URL, "models")]

    (offline_home / "keras" / "models" / features.CLASS_INDEX_FILE).unlink()

    def failing_get_file(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(keras.utils, "get_file", failing_get_file)
    with pytest.raises(data.DatasetNotFound, match="download failed"):
        features.imagenet_class_names()
    assert "STAND-IN" in features.imagenet_class_names(quick=True)[0]


def test_progress_bar_only_when_asked(images, capsys):
    model = tiny_model()
    features.compute_bottleneck_features(model, images, size=SIZE, progress=False)
    assert "bottleneck features" not in capsys.readouterr().err
    features.compute_bottleneck_features(model, images, size=SIZE, progress=True)
    assert "bottleneck features" in capsys.readouterr().err
