"""A drawn-style evaluation set: digits as people draw, type and photograph them, none from MNIST's training
set.

MNIST test accuracy says little about the digits the service receives: strokes drawn with a mouse or a
finger on the 280x280 canvas, thick or thin, slanted, squeezed; printed digits; small blurry photos. This
module builds, deterministically from a seed and without any network access, a labelled set of three
families, each passed through the same `normalise` as every submission:

- strokes: a skeleton per digit (several ways of writing some: 1 with or without a flag and a base, 7 with
  or without a bar, 4 open or closed, 9 with a straight or a curved tail), its points jittered, rotated,
  slanted and stretched, drawn white on black with round caps at one of several widths, as the web canvas;
- fonts: the digit typed in one of the fonts shipped with matplotlib (DejaVu, STIX, Computer Modern),
  rotated and slanted a little;
- low resolution: MNIST *test* images reduced to 6..10 pixels and enlarged again with a smooth filter and a
  random contrast, as a small photo of a digit (never its training images, so no model has seen them).

`build()` returns the arrays; `python -m classifier drawn --out FILE.npz` writes `x` (N, 28, 28) uint8 white
on black, `y` (N,) and `family` (N,) indexes into FAMILIES.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from classifier.errors import ClassifierError
from classifier.preprocess import normalise

FAMILIES = ("strokes", "fonts", "lowres")
SEED = 16
CANVAS = 280  # the web form's drawing box, in pixels
# Stroke widths on that canvas: the form's pen is 22 px; fingers and other apps draw thinner or thicker.
STROKE_WIDTHS = (6, 10, 16, 22, 30, 40, 50)
FONT_FILES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
    "cmr10.ttf",
    "cmss10.ttf",
    "cmtt10.ttf",
)

Stroke = list[tuple[float, float]]


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, steps: int = 24) -> Stroke:
    """Points along an ellipse, angles in degrees with y pointing down (90 is the bottom)."""
    angles = np.radians(np.linspace(start, end, steps))
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]


# Skeletons in a box about 0.6 wide and 1 tall (x right, y down); each digit has one or more ways of writing
# it, each a list of strokes (pen-down polylines).
SKELETONS: dict[int, list[list[Stroke]]] = {
    0: [[_arc(0.3, 0.5, 0.28, 0.48, -80, 285, 40)]],
    1: [
        [[(0.3, 0.0), (0.3, 1.0)]],
        [[(0.12, 0.22), (0.32, 0.0), (0.32, 1.0)]],
        [[(0.12, 0.22), (0.3, 0.0), (0.3, 1.0)], [(0.08, 1.0), (0.52, 1.0)]],
    ],
    2: [[[*_arc(0.3, 0.28, 0.27, 0.26, 200, 395), (0.02, 1.0), (0.6, 1.0)]]],
    3: [
        [_arc(0.3, 0.26, 0.26, 0.24, 210, 450) + _arc(0.3, 0.74, 0.3, 0.26, 270, 510)[1:]],
        [[(0.05, 0.0), (0.55, 0.0), (0.25, 0.4), *_arc(0.3, 0.7, 0.28, 0.3, 260, 510)]],
    ],
    4: [
        [[(0.45, 1.0), (0.45, 0.0), (0.0, 0.68), (0.6, 0.68)]],
        [[(0.08, 0.0), (0.02, 0.6), (0.6, 0.6)], [(0.45, 0.2), (0.45, 1.0)]],
    ],
    5: [
        [[(0.56, 0.0), (0.1, 0.0), (0.06, 0.44), *_arc(0.3, 0.7, 0.28, 0.29, 225, 520)]],
        [[(0.1, 0.0), (0.06, 0.44), *_arc(0.3, 0.7, 0.28, 0.29, 225, 520)], [(0.1, 0.0), (0.56, 0.0)]],
    ],
    6: [[[(0.52, 0.0), (0.28, 0.18), (0.1, 0.45), *_arc(0.3, 0.73, 0.25, 0.26, 200, -150)]]],
    7: [
        [[(0.0, 0.0), (0.6, 0.0), (0.2, 1.0)]],
        [[(0.0, 0.0), (0.6, 0.0), (0.2, 1.0)], [(0.14, 0.5), (0.52, 0.5)]],
        [[(0.0, 0.08), (0.05, 0.0), (0.6, 0.0), (0.35, 0.5), (0.25, 1.0)]],
    ],
    8: [
        [_arc(0.3, 0.25, 0.22, 0.24, 0, 360), _arc(0.3, 0.73, 0.28, 0.27, -90, 270)],
        [
            _arc(0.3, 0.25, 0.22, 0.24, 20, -200)
            + _arc(0.3, 0.73, 0.28, 0.27, -90, 270)[1:]
            + _arc(0.3, 0.25, 0.22, 0.24, -200 + 360, 20 + 360)[:1]
        ],
    ],
    9: [
        [[*_arc(0.3, 0.27, 0.27, 0.26, 0, 360), (0.54, 1.0)]],
        [[*_arc(0.3, 0.27, 0.27, 0.26, 0, 360), (0.56, 0.65), (0.4, 1.0)]],
    ],
}


@dataclass(frozen=True)
class DrawnSet:
    x: np.ndarray  # (N, 28, 28) uint8, white on black
    y: np.ndarray  # (N,) uint8
    family: np.ndarray  # (N,) uint8, indexes into FAMILIES

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            np.savez_compressed(handle, x=self.x, y=self.y, family=self.family)
        return path


def build(strokes: int = 2000, fonts: int = 1000, lowres: int = 1000, seed: int = SEED) -> DrawnSet:
    """The set, the same for the same arguments; MNIST test images are needed only when `lowres` > 0."""
    rng = np.random.default_rng(seed)
    images: list[np.ndarray] = []
    labels: list[int] = []
    families: list[int] = []
    for index in range(strokes):
        digit = index % 10
        images.append(normalise(draw_strokes(digit, rng)))
        labels.append(digit)
        families.append(0)
    fonts_found = _fonts()
    for index in range(fonts):
        digit = index % 10
        images.append(normalise(type_digit(digit, fonts_found[rng.integers(len(fonts_found))], rng)))
        labels.append(digit)
        families.append(1)
    if lowres:
        from classifier.data import load_mnist

        mnist = load_mnist()
        # The first `lowres` test images, spread over the digits as MNIST's test set is.
        chosen = rng.permutation(len(mnist.y_test))[:lowres]
        for index in chosen:
            images.append(normalise(low_resolution(mnist.x_test[index], rng)))
            labels.append(int(mnist.y_test[index]))
            families.append(2)
    return DrawnSet(
        np.stack(images).astype(np.uint8),
        np.array(labels, dtype=np.uint8),
        np.array(families, dtype=np.uint8),
    )


def draw_strokes(digit: int, rng: np.random.Generator) -> np.ndarray:
    """One drawing of `digit` on a black 280x280 canvas, as the web form's canvas holds it."""
    ways = SKELETONS[digit]
    strokes = ways[rng.integers(len(ways))]
    angle = math.radians(rng.uniform(-20, 20))
    slant = rng.uniform(-0.5, 0.3)  # people lean their digits right more often than left
    aspect = rng.uniform(0.55, 1.45)
    height = rng.uniform(90, 240)
    width = STROKE_WIDTHS[rng.integers(len(STROKE_WIDTHS))] * rng.uniform(0.85, 1.15)
    wobble = rng.uniform(0.01, 0.06)
    cos, sin = math.cos(angle), math.sin(angle)
    centre_x, centre_y = CANVAS / 2 + rng.uniform(-20, 20), CANVAS / 2 + rng.uniform(-20, 20)
    canvas = Image.new("L", (CANVAS, CANVAS), 0)
    pen = ImageDraw.Draw(canvas)
    for stroke in strokes:
        points = np.array(stroke, dtype=np.float64)
        # A smooth wobble along the stroke (a random walk, mostly kept) rather than independent jitter.
        drift = np.cumsum(rng.normal(0, wobble, size=points.shape), axis=0) * 0.5
        points = points + drift + rng.normal(0, wobble * 0.5, size=points.shape)
        x = (points[:, 0] - 0.3) * aspect
        y = points[:, 1] - 0.5
        x = x - slant * y
        xs = (cos * x - sin * y) * height + centre_x
        ys = (sin * x + cos * y) * height + centre_y
        path = list(zip(xs.tolist(), ys.tolist(), strict=True))
        pen.line(path, fill=255, width=max(1, round(width)), joint="curve")
        radius = width / 2
        for px, py in (path[0], path[-1]):  # round caps, as the canvas draws them
            pen.ellipse((px - radius, py - radius, px + radius, py + radius), fill=255)
    return np.asarray(canvas)


def type_digit(digit: int, font_path: Path, rng: np.random.Generator) -> np.ndarray:
    """`digit` typed in `font_path`, black on white (as a scan or a photo of print), slightly rotated."""
    font = ImageFont.truetype(str(font_path), size=int(rng.integers(90, 160)))
    canvas = Image.new("L", (CANVAS, CANVAS), 255)
    ImageDraw.Draw(canvas).text((CANVAS / 2, CANVAS / 2), str(digit), fill=0, font=font, anchor="mm")
    shear = rng.uniform(-0.35, 0.35)
    canvas = canvas.transform(
        canvas.size,
        Image.Transform.AFFINE,
        (1, shear, -shear * CANVAS / 2, 0, 1, 0),
        resample=Image.Resampling.BILINEAR,
        fillcolor=255,
    )
    canvas = canvas.rotate(rng.uniform(-15, 15), resample=Image.Resampling.BILINEAR, fillcolor=255)
    return np.asarray(canvas)


def low_resolution(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 28x28 digit reduced to 6..10 pixels a side and enlarged fourfold, with a random contrast and a
    grey background: what a small, out-of-focus photo of a digit gives."""
    side = int(rng.integers(6, 11))
    small = Image.fromarray(np.asarray(image, dtype=np.uint8)).resize((side, side), Image.Resampling.BOX)
    large = np.asarray(small.resize((112, 112), Image.Resampling.BICUBIC), dtype=np.float64)
    ink = rng.uniform(0.45, 1.0)  # faded ink
    background = rng.uniform(0, 60)
    photo = background + np.clip(large, 0, 255) * ink * (255 - background) / 255
    return np.clip(photo + rng.normal(0, 4, size=photo.shape), 0, 255).astype(np.uint8)


def _fonts() -> list[Path]:
    import matplotlib

    directory = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    found = [directory / name for name in FONT_FILES if (directory / name).is_file()]
    if not found:
        raise ClassifierError(f"no fonts found in {directory}")
    return found


def load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """`x` as (N, 28, 28) uint8 and `y` as (N,) from an npz holding `x` (N x 28 x 28 or N x 784) and `y`."""
    from classifier.data import validate_examples
    from classifier.errors import DataError

    try:
        with np.load(Path(path), allow_pickle=False) as arrays:
            x, y = arrays["x"], arrays["y"]
    except KeyError as missing:
        raise DataError(f"{path}: an npz with arrays `x` and `y` is needed, {missing} is missing") from None
    return validate_examples(x, y)


def accuracy(model: object, x: np.ndarray, y: np.ndarray) -> float:
    predictions = np.asarray(model.predict(np.asarray(x).reshape(len(x), 784)))  # type: ignore[attr-defined]
    return float(np.mean(predictions == np.asarray(y)))


def family_accuracy(model: object, drawn: DrawnSet) -> dict[str, float]:
    """Accuracy on the whole set and on each family."""
    predictions = np.asarray(model.predict(drawn.x.reshape(len(drawn.x), 784)))  # type: ignore[attr-defined]
    correct = predictions == drawn.y
    report = {"all": float(correct.mean())}
    for index, name in enumerate(FAMILIES):
        chosen = drawn.family == index
        if chosen.any():
            report[name] = float(correct[chosen].mean())
    return report


def add_command(commands: argparse._SubParsersAction) -> None:
    """`python -m classifier drawn --out FILE.npz [--json]`."""
    drawn = commands.add_parser("drawn", help="write the drawn-style evaluation set (x, y, family) as npz")
    drawn.add_argument("--out", type=Path, required=True)
    drawn.add_argument("--strokes", type=int, default=2000, help="digits drawn as strokes")
    drawn.add_argument("--fonts", type=int, default=1000, help="digits typed in fonts")
    drawn.add_argument("--lowres", type=int, default=1000, help="MNIST test digits at low resolution")
    drawn.add_argument("--seed", type=int, default=SEED)
    drawn.add_argument("--model", type=Path, help="also report this model's accuracy on the set")
    drawn.add_argument("--json", action="store_true")
    drawn.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    if min(args.strokes, args.fonts, args.lowres) < 0:
        raise ValueError("the counts of images must not be negative")
    if args.strokes + args.fonts + args.lowres == 0:
        raise ValueError("the set needs at least one image")
    drawn = build(args.strokes, args.fonts, args.lowres, seed=args.seed)
    path = drawn.save(args.out)
    report: dict[str, object] = {
        "out": str(path),
        "images": len(drawn.y),
        "families": {name: int((drawn.family == i).sum()) for i, name in enumerate(FAMILIES)},
        "sha256": hashlib.sha256(drawn.x.tobytes() + drawn.y.tobytes()).hexdigest(),
    }
    if args.model is not None:
        from classifier.integer_model import IntegerModel

        report["accuracy"] = family_accuracy(IntegerModel.load(args.model), drawn)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")
    return 0


# Bump when the generator changes, so a cached copy of an older set is never read as the current one.
VERSION = 2  # 2: the strokes go through normalise's stroke evening


def cached(directory: Path | None = None) -> DrawnSet:
    """The default set, built once and kept in the data cache (beside MNIST) for later processes."""
    from classifier.data import cache_dir

    folder = Path(directory) if directory is not None else cache_dir()
    path = folder / f"drawn-v{VERSION}-seed{SEED}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as arrays:
                return DrawnSet(arrays["x"], arrays["y"], arrays["family"])
        except (OSError, ValueError, KeyError):
            pass  # a damaged copy: build it again below
    drawn = build()
    folder.mkdir(parents=True, exist_ok=True)
    # Written aside and renamed, so a process reading it at the same time never sees half a file.
    handle, temporary = tempfile.mkstemp(dir=folder, suffix=".npz")
    os.close(handle)
    drawn.save(Path(temporary))
    os.replace(temporary, path)
    return drawn
