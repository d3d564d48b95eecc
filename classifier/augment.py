"""Train-time augmentation: MNIST images made to look like the digits people draw, type and photograph.

MNIST's digits were written with one kind of pen, scanned the same way and normalised by one program;
the service's come from canvases, fingers and phone cameras. Every epoch, each image of a random share of
the training set is changed by a fresh draw of:

- stroke thickness: eroded or dilated by up to one pixel (a grey-level min/max over the 3x3 cross), partly;
- shape: one affine warp (rotation, slant, scale, aspect, sub-pixel shift) combined with a small elastic
  distortion (a smooth random displacement field), sampled bilinearly once;
- blur and contrast: a light blur, a gamma on the ink, then the peak brought back to 255, as
  `classifier.preprocess.normalise` leaves every submitted image.

The ranges are `AugmentOptions`; they were chosen by measuring the drawn-style set (`classifier.drawn`),
never by training on it. Everything here is numpy on uint8/float32 batches and seeded by the caller's
generator, so training stays deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIDE = 28
CENTRE = (SIDE - 1) / 2


@dataclass(frozen=True)
class AugmentOptions:
    share: float = 0.5  # of the images in an epoch that are augmented; the others are only shifted
    rotation: float = 15.0  # degrees, either way
    slant: float = 0.3  # horizontal shear per unit of height, either way
    scale: tuple[float, float] = (0.85, 1.1)
    aspect: float = 0.2  # width changes by up to this share relative to height
    translate: float = 0.5  # pixels, either way (the whole-pixel shifts of training come on top)
    elastic: float = 1.0  # largest displacement of the elastic field, in pixels (0: none)
    thicken: float = 0.3  # probability of a dilation
    thicken_steps: int = 1  # a dilation repeats 1..thicken_steps times (each adds about a pixel a side)
    thin: float = 0.15  # probability of an erosion
    blur: float = 0.3  # probability of a light blur
    gamma: float = 0.5  # ink gamma drawn from [1 - gamma, 1 + gamma] (0: none)

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError("share must lie in [0, 1]")
        if self.thicken + self.thin > 1.0:
            raise ValueError("thicken + thin must not exceed 1")
        if self.thicken_steps < 1:
            raise ValueError("thicken_steps must be at least 1")
        if not 0.0 < self.scale[0] <= self.scale[1]:
            raise ValueError("scale must be a positive (low, high) pair")


def augment(images: np.ndarray, rng: np.random.Generator, options: AugmentOptions) -> np.ndarray:
    """A changed copy of (N, 28, 28) uint8 `images` as (N, 28, 28) float32 in 0..255."""
    count = len(images)
    out = images.astype(np.float32)
    if count == 0:
        return out
    out = _thickness(out, rng, options)
    out = _warp(out, rng, options)
    out = _blur(out, rng, options.blur)
    return _contrast(out, rng, options.gamma).astype(np.float32, copy=False)


def augment_share(images: np.ndarray, rng: np.random.Generator, options: AugmentOptions) -> np.ndarray:
    """All `images` as float32 0..255, a random `options.share` of them augmented (the rest unchanged)."""
    out = images.astype(np.float32)
    chosen = np.flatnonzero(rng.random(len(images)) < options.share)
    for start in range(0, len(chosen), 8192):  # in chunks, so the sampling grids stay small
        part = chosen[start : start + 8192]
        out[part] = augment(images[part], rng, options)
    return out


def _neighbours(images: np.ndarray) -> list[np.ndarray]:
    """The image and its four neighbours along the axes (the 3x3 cross), zero outside."""
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)))
    return [
        padded[:, 1:-1, 1:-1],
        padded[:, :-2, 1:-1],
        padded[:, 2:, 1:-1],
        padded[:, 1:-1, :-2],
        padded[:, 1:-1, 2:],
    ]


def _thickness(images: np.ndarray, rng: np.random.Generator, options: AugmentOptions) -> np.ndarray:
    draw = rng.random(len(images))
    amount = rng.uniform(0.5, 1.0, size=len(images)).astype(np.float32)[:, None, None]
    thicker = draw < options.thicken
    thinner = (draw >= options.thicken) & (draw < options.thicken + options.thin)
    out = images.copy()
    if thicker.any():
        part = images[thicker]
        steps = rng.integers(1, options.thicken_steps + 1, size=len(part))
        levels = [part]  # levels[k]: dilated k times
        for _ in range(options.thicken_steps):
            levels.append(np.max(_neighbours(levels[-1]), axis=0))
        stacked = np.stack(levels)
        index = np.arange(len(part))
        before, after = stacked[steps - 1, index], stacked[steps, index]
        # The last step only partly, so thickness varies smoothly rather than in whole pixels.
        out[thicker] = before + amount[thicker] * (after - before)
    if thinner.any():
        part = images[thinner]
        eroded = np.min(_neighbours(part), axis=0)
        out[thinner] = part + amount[thinner] * (eroded - part)
    return out


def _warp(images: np.ndarray, rng: np.random.Generator, options: AugmentOptions) -> np.ndarray:
    """Affine warp plus elastic field, as one bilinear resampling (the output pixel looks up its source)."""
    count = len(images)
    angle = np.radians(rng.uniform(-options.rotation, options.rotation, count))
    slant = rng.uniform(-options.slant, options.slant, count)
    scale = rng.uniform(*options.scale, count)
    aspect = 1.0 + rng.uniform(-options.aspect, options.aspect, count)
    shift = rng.uniform(-options.translate, options.translate, (count, 2))
    # Forward map: (x, y) -> scale * R(angle) @ [[aspect, slant], [0, 1]] @ (x, y); lookups use its inverse.
    cos, sin = np.cos(angle), np.sin(angle)
    forward = np.empty((count, 2, 2))
    forward[:, 0, 0] = scale * cos * aspect
    forward[:, 0, 1] = scale * (cos * slant - sin)
    forward[:, 1, 0] = scale * sin * aspect
    forward[:, 1, 1] = scale * (sin * slant + cos)
    inverse = np.linalg.inv(forward).astype(np.float32)
    # Output pixel (row, col) reads the source at inverse @ ((col, row) - centre - shift) + centre.
    grid = np.mgrid[0:SIDE, 0:SIDE][::-1].reshape(2, -1).astype(np.float32) - np.float32(CENTRE)
    offset = inverse @ shift.astype(np.float32)[:, :, None]  # (N, 2, 1)
    source = (inverse @ grid - offset + np.float32(CENTRE)).reshape(count, 2, SIDE, SIDE)
    source_x, source_y = source[:, 0], source[:, 1]
    if options.elastic > 0:
        dx, dy = _smooth_field(count, rng, options.elastic)
        source_x += dx
        source_y += dy
    return _bilinear(images, source_y, source_x)


def _smooth_field(count: int, rng: np.random.Generator, size: float) -> tuple[np.ndarray, np.ndarray]:
    """A random displacement field per image: a 4x4 grid of offsets within +-`size`, interpolated."""
    coarse = rng.uniform(-size, size, (2, count, 4, 4)).astype(np.float32)
    # Bilinear interpolation of the grid at 28 positions a side, as a matrix applied to rows and columns.
    position = np.linspace(0, 3, SIDE, dtype=np.float32)
    low = np.minimum(position.astype(int), 2)
    weights = np.zeros((SIDE, 4), dtype=np.float32)
    weights[np.arange(SIDE), low] = 1 - (position - low)
    weights[np.arange(SIDE), low + 1] = position - low
    field = weights @ coarse @ weights.T
    return field[0], field[1]


def _bilinear(images: np.ndarray, source_y: np.ndarray, source_x: np.ndarray) -> np.ndarray:
    """Sample each image at (source_y, source_x), zero outside."""
    count = len(images)
    width = SIDE + 2
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1))).ravel()
    # +1 for the padding; positions beyond it read the zero border.
    sy = np.clip(source_y + 1, 0, SIDE + 0.999)
    sx = np.clip(source_x + 1, 0, SIDE + 0.999)
    y0 = sy.astype(np.int32)  # floor: both are non-negative
    x0 = sx.astype(np.int32)
    fy, fx = sy - y0.astype(np.float32), sx - x0.astype(np.float32)  # float32 - int32 would be float64
    index = y0 * width + x0 + (np.arange(count, dtype=np.int32) * width * width)[:, None, None]
    top_left, top_right = padded.take(index), padded.take(index + 1)
    bottom_left, bottom_right = padded.take(index + width), padded.take(index + width + 1)
    top = top_left + fx * (top_right - top_left)
    bottom = bottom_left + fx * (bottom_right - bottom_left)
    return top + fy * (bottom - top)


def _blur(images: np.ndarray, rng: np.random.Generator, probability: float) -> np.ndarray:
    chosen = rng.random(len(images)) < probability
    if not chosen.any():
        return images
    part = images[chosen]
    padded = np.pad(part, ((0, 0), (1, 1), (1, 1)))
    rows = (padded[:, :-2] + 2 * padded[:, 1:-1] + padded[:, 2:]) / 4
    blurred = (rows[:, :, :-2] + 2 * rows[:, :, 1:-1] + rows[:, :, 2:]) / 4
    out = images.copy()
    out[chosen] = blurred
    return out


def _contrast(images: np.ndarray, rng: np.random.Generator, gamma: float) -> np.ndarray:
    """A gamma on the ink, then the peak at 255, as the preprocessing leaves every image."""
    count = len(images)
    peak = np.maximum(images.reshape(count, -1).max(axis=1), 1.0)[:, None, None]
    ink = images / peak
    if gamma > 0:
        exponent = rng.uniform(1 - gamma, 1 + gamma, count).astype(np.float32)[:, None, None]
        ink = ink**exponent
    return ink * np.float32(255.0)
