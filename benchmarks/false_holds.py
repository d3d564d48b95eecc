"""How many honest payouts the second opinion holds for a reviewer (its false-hold rate).

Among images the published integer model pays (it reads the true label, so the contributor claimed it),
the share the second model does not confirm with the service's confidence threshold. Measured on the MNIST
test set as it is, and on the same images made to look drawn or photographed: strokes thickened by a 2x2
maximum (a finger or a marker), and shrunk to 14x14 then blown up again (a low-resolution photo); and on the
drawn-style evaluation set (`classifier.drawn`: strokes through the canvas preprocessing, fonts, photos).

    .venv/bin/python benchmarks/false_holds.py [--model PATH] [--second PATH] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from classifier import drawn  # noqa: E402
from classifier.data import load_mnist  # noqa: E402
from classifier.integer_model import IntegerModel  # noqa: E402
from classifier.second_opinion import DEFAULT_MIN_CONFIDENCE, DEFAULT_PATH, SecondOpinion  # noqa: E402


def thick(images: np.ndarray) -> np.ndarray:
    padded = np.pad(images, ((0, 0), (0, 1), (0, 1)))
    return np.maximum.reduce([padded[:, :-1, :-1], padded[:, 1:, :-1], padded[:, :-1, 1:], padded[:, 1:, 1:]])


def low_resolution(images: np.ndarray) -> np.ndarray:
    def one(image: np.ndarray) -> np.ndarray:
        small = Image.fromarray(image).resize((14, 14), Image.Resampling.BILINEAR)
        return np.asarray(small.resize((28, 28), Image.Resampling.BILINEAR), dtype=np.uint8)

    return np.stack([one(image) for image in images])


def measure(
    name: str, images: np.ndarray, labels: np.ndarray, published: IntegerModel, second: SecondOpinion
) -> dict[str, Any]:
    started = time.perf_counter()
    predictions = np.asarray(published.predict(images.reshape(len(images), 784)))
    paid = predictions == labels
    agrees = second.agreement_mask(images[paid], labels[paid], DEFAULT_MIN_CONFIDENCE)
    held = int((~agrees).sum())
    return {
        "set": name,
        "images": len(images),
        "paid_by_published_model": int(paid.sum()),
        "held_by_second_opinion": held,
        "false_hold_rate": held / max(1, int(paid.sum())),
        "seconds": round(time.perf_counter() - started, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "classifier" / "models" / "default.npz")
    parser.add_argument("--second", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    _, _, x_test, y_test = load_mnist()
    published, second = IntegerModel.load(args.model), SecondOpinion.load(args.second)
    rows = [
        measure("MNIST test", x_test, y_test, published, second),
        measure("thick strokes (2x2 max)", thick(x_test), y_test, published, second),
        measure("low resolution (14x14 and back)", low_resolution(x_test), y_test, published, second),
    ]
    style = drawn.cached()
    rows.append(measure("drawn-style set", style.x, style.y, published, second))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(
                f"{row['set']:34} paid {row['paid_by_published_model']:6,} of {row['images']:,}; "
                f"held {row['held_by_second_opinion']:4}: {100 * row['false_hold_rate']:.2f}%"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
