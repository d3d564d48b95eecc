"""The second opinion's forward pass in plain numpy, so the service never loads TensorFlow per request.

    conv 3x3x16 relu -> maxpool 2 -> conv 3x3x32 relu -> maxpool 2 -> dense 64 relu -> dense 10 (softmax)

Weights are in Keras layout (conv kernels (3, 3, in, out), dense (in, out)); `training.py` checks after each
training run that this pass matches Keras within `FORWARD_TOLERANCE`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

# How far the numpy forward pass may differ from Keras (float32 rounding in a different summation order).
FORWARD_TOLERANCE = 1e-4


def probabilities(weights: Mapping[str, np.ndarray], pixels: np.ndarray) -> np.ndarray:
    """Softmax probabilities (N, 10) for uint8 images (28, 28), (784,), (N, 28, 28) or (N, 784)."""
    x = as_batch(pixels).astype(np.float32) / np.float32(255.0)
    x = x[..., np.newaxis]
    x = _maxpool2(_relu(_conv3x3(x, weights["conv1_w"], weights["conv1_b"])))
    x = _maxpool2(_relu(_conv3x3(x, weights["conv2_w"], weights["conv2_b"])))
    x = x.reshape(len(x), -1)  # channels-last flatten, as keras.layers.Flatten
    x = _relu(x @ weights["dense1_w"] + weights["dense1_b"])
    logits = x @ weights["dense2_w"] + weights["dense2_b"]
    logits = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def as_batch(pixels: np.ndarray) -> np.ndarray:
    array = np.asarray(pixels)
    if array.dtype != np.uint8:
        raise ValueError(f"pixels must be uint8, got {array.dtype}")
    if array.shape in ((28, 28), (784,)):
        return array.reshape(1, 28, 28)
    if array.ndim == 3 and array.shape[1:] == (28, 28):
        return array
    if array.ndim == 2 and array.shape[1] == 784:
        return array.reshape(-1, 28, 28)
    raise ValueError(f"pixels must be (28, 28), (784,), (N, 28, 28) or (N, 784), got {array.shape}")


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


def _conv3x3(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """'valid' 3x3 convolution (cross-correlation, as Keras): (N, H, W, C) -> (N, H-2, W-2, F)."""
    windows = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(1, 2))  # (N, H-2, W-2, C, 3, 3)
    return np.einsum("nhwcij,ijcf->nhwf", windows, kernel, optimize=True) + bias


def _maxpool2(x: np.ndarray) -> np.ndarray:
    """2x2 max pooling, stride 2, 'valid' (odd edges dropped), as keras.layers.MaxPooling2D()."""
    n, h, w, c = x.shape
    x = x[:, : h // 2 * 2, : w // 2 * 2]
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
