"""Fashion-MNIST as a built-in source: the idx format (tiny files written here), the search order, the error that
says how to get the files, the cache, label noise, the app's `data=fashion_mnist`, and the small 2-D CNN."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from datadiet.data.sources import fashion_mnist as fm
from datadiet.data.sources import fashion_mnist_datamodule
from datadiet.models import CNN2D


def _write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def _tiny_set(folder: Path, gz: bool = True, num_train: int = 40, num_test: int = 10) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {
        "x": rng.integers(0, 256, (num_train, 28, 28)),
        "y": np.arange(num_train) % 10,
        "x_test": rng.integers(0, 256, (num_test, 28, 28)),
        "y_test": np.arange(num_test) % 10,
    }
    for key, name in fm.FILES.items():
        _write_idx(folder / name, arrays[key], gz)
    return arrays


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("DATADIET_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DATADIET_DATA", raising=False)
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "no-debian")


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_decodes_the_header_and_the_bytes(tmp_path, gz):
    array = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    _write_idx(tmp_path / "a", array, gz)
    read = fm.read_idx(tmp_path / ("a.gz" if gz else "a"))
    assert read.dtype == np.uint8 and np.array_equal(read, array)


def test_read_idx_refuses_a_truncated_or_foreign_file(tmp_path):
    _write_idx(tmp_path / "a", np.zeros((2, 3), dtype=np.uint8), gz=False)
    (tmp_path / "b").write_bytes((tmp_path / "a").read_bytes()[:-1])
    (tmp_path / "c").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(ValueError, match="bytes for an idx array of shape"):
        fm.read_idx(tmp_path / "b")
    with pytest.raises(ValueError, match="not an idx file"):
        fm.read_idx(tmp_path / "c")


def test_the_datamodule_reads_a_root_folder_normalised_and_split(tmp_path):
    arrays = _tiny_set(tmp_path / "data", gz=False)
    dm = fashion_mnist_datamodule(root=str(tmp_path / "data"), download=False, val_fraction=0.25, batch_size=8)
    assert dm.num_examples == 30 and dm.input_shape == (1, 28, 28) and dm.num_classes == 10
    train_x, train_y = dm.train_dataset.tensors
    order = np.random.default_rng(0).permutation(40)
    kept = np.sort(order[10:])
    expected = (arrays["x"][kept] / 255.0 - 0.2860) / 0.3530
    np.testing.assert_allclose(train_x[:, 0].numpy(), expected, rtol=1e-5, atol=1e-5)
    assert np.array_equal(train_y.numpy(), arrays["y"][kept])


def test_search_order_environment_then_torchvision_layout_then_debian(tmp_path, monkeypatch):
    _tiny_set(tmp_path / "debian", num_train=20)
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "debian")
    assert fashion_mnist_datamodule(download=False, val_fraction=0.0).num_examples == 20
    _tiny_set(tmp_path / "cache" / "FashionMNIST" / "raw", num_train=30)
    (tmp_path / "cache" / "fashion_mnist.npz").unlink()  # the Debian read was cached: the cache answers first
    assert fashion_mnist_datamodule(download=False, val_fraction=0.0).num_examples == 30
    _tiny_set(tmp_path / "mine" / "FashionMNIST" / "raw", num_train=50)
    monkeypatch.setenv("DATADIET_DATA", str(tmp_path / "mine"))
    assert fashion_mnist_datamodule(download=False, val_fraction=0.0).num_examples == 50
    assert fashion_mnist_datamodule(root=str(tmp_path / "debian"), download=False, val_fraction=0.0).num_examples == 20


def test_decoded_arrays_are_cached_and_a_broken_cache_is_read_again(tmp_path, monkeypatch):
    _tiny_set(tmp_path / "debian")
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "debian")
    fm.load_fashion_mnist(download=False)
    cached = tmp_path / "cache" / "fashion_mnist.npz"
    assert cached.exists()
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "gone")
    assert len(fm.load_fashion_mnist(download=False)["y"]) == 40  # from the cache alone
    cached.write_bytes(b"broken")
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "debian")
    assert len(fm.load_fashion_mnist(download=False)["y"]) == 40


def test_nowhere_to_be_found_names_the_three_ways(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        fashion_mnist_datamodule(download=False)
    message = str(error.value)
    assert "apt-get install dataset-fashion-mnist" in message and "DATADIET_DATA" in message
    assert "torchvision" in message and "download=False" in message


def test_label_noise_flips_training_labels_only(tmp_path):
    _tiny_set(tmp_path / "d", num_train=100)
    dm = fashion_mnist_datamodule(
        root=str(tmp_path / "d"),
        download=False,
        val_fraction=0.0,
        label_noise=0.2,
        label_noise_kind="pairwise",
        label_noise_seed=3,
    )
    noise = dm.label_noise
    assert noise.num_flipped == 20
    flipped = noise.flipped_indices
    assert np.array_equal(dm.labels[flipped], (noise.clean_labels[flipped] + 1) % 10)


def test_cnn2d_takes_28x28_images_and_has_batch_norm():
    net = CNN2D((1, 28, 28), 10, channels=(4, 8), hidden=16)
    assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 10) and net(torch.zeros(3, 28, 28)).shape == (3, 10)
    assert any(isinstance(module, torch.nn.BatchNorm2d) for module in net.modules())
    with pytest.raises(ValueError, match="input_shape"):
        CNN2D((784,), 10)


def test_the_app_composes_and_builds_data_fashion_mnist(tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from datadiet.app import config_dir

    _tiny_set(tmp_path / "d", num_train=20)
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "paths.output_dir=/tmp/unused",
                "data=fashion_mnist",
                "model=cnn2d",
                f"data.root={tmp_path / 'd'}",
                "data.download=false",
            ],
        )
    dm = instantiate(cfg.data)
    model = instantiate(cfg.model, input_shape=dm.input_shape, num_classes=dm.num_classes)
    assert dm.num_examples == 18 and isinstance(model.net, CNN2D)


@pytest.mark.skipif(
    not fm._holds_all(Path("/usr/share/datasets/fashion-mnist")),
    reason="Fashion-MNIST's files are not installed (make fashion-mnist); the format tests above cover the reader",
)
def test_the_real_files_from_debian(monkeypatch):
    monkeypatch.setattr(fm, "DEBIAN_DIR", Path("/usr/share/datasets/fashion-mnist"))
    arrays = fm.load_fashion_mnist(download=False)
    assert arrays["x"].shape == (60000, 28, 28) and arrays["x_test"].shape == (10000, 28, 28)
    assert np.array_equal(np.bincount(arrays["y"]), np.full(10, 6000))
    assert abs(arrays["x"].mean() / 255 - fm.MEAN) < 1e-3 and abs(arrays["x"].std() / 255 - fm.STD) < 1e-3
