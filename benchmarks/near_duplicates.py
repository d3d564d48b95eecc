"""The near-duplicate hash: how it is derived, and what its definition of "near duplicate" flags on MNIST.

    .venv/bin/python benchmarks/near_duplicates.py --write     # derive bounty/near_duplicate_projection.npz
    .venv/bin/python benchmarks/near_duplicates.py [--edits 300] [--json]

--write derives the projection from the 60,000 MNIST training images (see `bounty.images`): the 64 principal
components of the blurred images, scaled to unit variance, turned by a random rotation seeded with SEED,
rounded to int8; each bit's threshold is the median of its projection over the same images.

Without --write it measures the definition the service applies (hash within NEAR_DUPLICATE_BITS and mean
|pixel difference| below NEAR_DUPLICATE_GREY):
- false duplicates: distinct MNIST images (all 70,000, each against the earlier ones) that it flags;
- edits it still flags: each edit is made to the upload (the digit as a 112x112 picture, as people send it)
  and both the original and the edited upload go through the service's preprocessing: a JPEG re-save at
  quality 95 and 75, a one-pixel shift, grey noise (sigma 8), strokes thickened by a 3x3 minimum filter;
- the same for the former definition (256-bit average hash within 8 bits, same pixel check), for comparison;
- the index's selectivity: rows sharing at least one 16-bit band with a query, over the 70,000 images.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bounty import images  # noqa: E402
from classifier.data import load_mnist  # noqa: E402
from classifier.preprocess import preprocess_image  # noqa: E402

SEED = 15
GREY = 1.5  # the service's default NEAR_DUPLICATE_GREY
FORMER_BITS = 8  # the former definition: 256-bit average hash within 8 bits


def derive(train: np.ndarray) -> dict[str, np.ndarray]:
    blurred = images.blurred(train).astype(np.float64)
    centred = blurred - blurred.mean(axis=0)
    values, vectors = np.linalg.eigh(centred.T @ centred / (len(centred) - 1))
    top = np.argsort(values)[::-1][: images.NEAR_HASH_BITS]
    rotation, _ = np.linalg.qr(np.random.default_rng(SEED).standard_normal((images.NEAR_HASH_BITS,) * 2))
    whitened = rotation @ (vectors[:, top] / np.sqrt(values[top])).T
    projection = np.round(whitened / np.abs(whitened).max() * 127).astype(np.int8)
    thresholds = np.median(images.blurred(train) @ projection.astype(np.int64).T, axis=0)
    return {"projection": projection, "thresholds": np.floor(thresholds).astype(np.int64)}


def hash_bits(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.uint64)


def popcount(values: np.ndarray) -> np.ndarray:
    return np.bitwise_count(values).astype(np.int64)


def band_pairs(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair (i < j) sharing at least one band, and per image how many others share one with it."""
    pairs: set[tuple[int, int]] = set()
    shared = np.zeros(len(hashes), dtype=np.int64)
    for band in range(images.NEAR_HASH_BANDS):
        keys = (hashes >> np.uint64(band * images.NEAR_HASH_BAND_BITS)) & np.uint64(0xFFFF)
        order = np.argsort(keys, kind="stable")
        _, starts, counts = np.unique(keys[order], return_index=True, return_counts=True)
        for start, count in zip(starts, counts, strict=True):
            if count > 1:
                members = np.sort(order[start : start + count])
                shared[members] += count - 1
                for a in range(count):
                    for b in range(a + 1, count):
                        pairs.add((int(members[a]), int(members[b])))
    both = np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)
    return both[:, 0], both[:, 1], shared


def mean_abs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    first, second = a.reshape(len(a), -1).astype(np.int16), b.reshape(len(b), -1).astype(np.int16)
    return np.abs(first - second).mean(axis=1)


def false_duplicates(pixels: np.ndarray, bits: int) -> dict[str, Any]:
    hashes = hash_bits(images.near_hashes(pixels))
    first, second, shared = band_pairs(hashes)
    close = popcount(hashes[first] ^ hashes[second]) <= bits
    first, second = first[close], second[close]
    near = mean_abs(pixels[first], pixels[second]) < GREY
    flagged = np.unique(second[near])  # the later image of a pair is the one refused
    pairs = zip(first[near], second[near], strict=True)
    same = np.array([np.array_equal(pixels[a], pixels[b]) for a, b in pairs], dtype=bool)
    return {
        "images": len(pixels),
        "flagged": len(flagged),
        "flagged_identical_pixels": int(same.sum()),
        "false_duplicate_rate": round(len(flagged) / len(pixels), 6),
        "pairs_within_bits": int(close.sum()),
        "band_candidates_mean": round(float(shared.mean()), 2),
        "band_candidates_p99": float(np.percentile(shared, 99)),
        "band_candidates_max": int(shared.max()),
    }


def png(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg(picture: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    picture.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def shifted(up: Image.Image) -> bytes:
    return png(up.transform(up.size, Image.Transform.AFFINE, (1, 0, -1, 0, 1, 0), fillcolor=255))


def noisy(up: Image.Image, rng: np.random.Generator) -> bytes:
    grey = np.asarray(up, np.int16) + rng.normal(0, 8, up.size[::-1])
    return png(Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)))


EDITS = {
    "jpeg_95": lambda up, rng: jpeg(up, 95),
    "jpeg_75": lambda up, rng: jpeg(up, 75),
    "shift_1px": lambda up, rng: shifted(up),
    "noise_sigma_8": noisy,
    "thicker_strokes": lambda up, rng: png(up.filter(ImageFilter.MinFilter(3))),
}


def edits_flagged(test: np.ndarray, count: int, bits: int) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(SEED)
    chosen = test[rng.choice(len(test), count, replace=False)]
    uploads = [Image.fromarray(255 - x).resize((112, 112)) for x in chosen]
    base = np.array([preprocess_image(png(up)) for up in uploads])
    base_new = hash_bits(images.near_hashes(base))
    base_old = [int(images.perceptual_hash(x), 16) for x in base]
    result = {}
    for name, edit in EDITS.items():
        edited = np.array([preprocess_image(edit(up, rng)) for up in uploads])
        grey = mean_abs(base, edited) < GREY
        new = popcount(base_new ^ hash_bits(images.near_hashes(edited))) <= bits
        old_edited = [int(images.perceptual_hash(x), 16) for x in edited]
        distances = [(a ^ b).bit_count() for a, b in zip(base_old, old_edited, strict=True)]
        old = np.array(distances) <= FORMER_BITS
        result[name] = {
            "flagged": round(float((new & grey).mean()), 3),
            "flagged_former_definition": round(float((old & grey).mean()), 3),
            "hash_within_bits": round(float(new.mean()), 3),
            "pixels_within_grey": round(float(grey.mean()), 3),
        }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"derive {images.PROJECTION_FILE.name}")
    parser.add_argument("--edits", type=int, default=300, help="test images edited")
    parser.add_argument("--bits", type=int, default=images.NEAR_HASH_MAX_DISTANCE)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not 0 <= args.bits <= images.NEAR_HASH_MAX_DISTANCE:
        parser.error(f"--bits 0..{images.NEAR_HASH_MAX_DISTANCE} (what the bands find exactly)")
    mnist = load_mnist()
    if args.write:
        np.savez_compressed(images.PROJECTION_FILE, **derive(mnist.x_train))
        print(f"wrote {images.PROJECTION_FILE}")
        return 0
    everything = np.concatenate([mnist.x_train, mnist.x_test])
    bits = args.bits
    projection, thresholds = images.near_hash_projection()
    balance = (images.blurred(everything) @ projection.T > thresholds).mean(axis=0)
    result = {
        "bits": bits,
        "grey": GREY,
        "bit_balance_min_max": [round(float(balance.min()), 4), round(float(balance.max()), 4)],
        "mnist": false_duplicates(everything, bits),
        "edits": edits_flagged(mnist.x_test, args.edits, bits),
    }
    print(json.dumps(result, indent=None if not args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
