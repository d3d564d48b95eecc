"""Lanes: K images packed into one script number per pixel, and the lane width that makes that exact.

A batch predicate checks K images in one execution. The unlocking script pushes, for each pixel the
predicate reads, one number holding that pixel of image 0..K-1 in K lanes of L bytes each:

    P_i = sum_k x_ik * B^k,   B = 256^L   (lane k is bytes k*L .. k*L+L-1 of the little-endian number)

Every operation of the network is linear until a ReLU or a comparison, and Script numbers are arbitrary
precision, so `sum_i w_ij * P_i = sum_k s_jk * B^k` holds exactly whatever the lane values s_jk are: one
multiply-and-add per nonzero weight computes all K lanes at once. Lanes only need to be *read* twice: at the
ReLU of each hidden unit and at the final comparison of the scores. Both read the top bit of every lane, so
the compiler adds H = 2^(8L-1) to every lane first (a multiple of U = sum_k B^k, a constant).

Lane width, the proof (`lane_bytes` computes L from the model's worst case):
    Let v be any value whose lanes are read: v = sum_k (a_k + H) * B^k where a_k is the integer the
    reference computes for image k (a hidden pre-activation s + b, or a score difference d). If
    -H <= a_k <= H - 1 for every k, then every digit c_k = a_k + H lies in 0 .. 2H - 1 = 0 .. B - 1, so the
    c_k are exactly the base-B digits of v (base-B representation is unique), i.e. lane k of v's bytes is
    c_k, with no carry or borrow from its neighbours, and its top bit is set exactly when a_k >= 0.
    For pixels in 0..255: the pre-activation of unit j lies in [255 * sum(w_j < 0) + b_j,
    255 * sum(w_j > 0) + b_j], so its ReLU lies in [0, R_j], R_j = max(0, 255 * sum(w_j > 0) + b_j); a
    score difference d = score_t - score_c - tie is sum_j (w2_jt - w2_jc) * relu_j + b2_t - b2_c - tie with
    every relu_j in [0, R_j], so it lies in [const + sum(negative coefficient * R_j), const + sum(positive
    coefficient * R_j)]. L is the smallest byte count with every such interval inside [-H, H - 1], taken
    over all targets t (so one unlocking layout serves every digit), and at least 1 (a pixel 0..255 then
    fits a lane: B >= 256).
    Pixels are never read lane by lane, so their lanes (0..255) need nothing more.

`tests/contracts/test_batch_lanes.py` checks the bound against extreme images (all 0, all 255, and for each
unit and class the sign pattern that drives it to its extremes).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from contracts.compiler import plan_layout
from contracts.errors import CompileError, ImageError
from contracts.model import PIXEL_MAX, IntegerModel
from contracts.numbers import push_data
from contracts.script import parse

# A batch of more lanes than this makes a pixel push longer than a one-byte push opcode allows for little
# gain: at 16 lanes the shared predicate is already a small share of each image's bytes.
MAX_LANES = 64


@dataclass(frozen=True)
class LaneBounds:
    """The extreme values the reference computes where the predicate reads lanes, over uint8 images."""

    hidden_low: int  # lowest pre-activation s + b over live units
    hidden_high: int
    difference_low: int  # lowest score_t - score_c - tie over all targets t and classes c != t
    difference_high: int

    @property
    def magnitude(self) -> int:
        """The largest |a| or a + 1 a lane must hold as a_k in -H .. H - 1."""
        return max(-self.hidden_low, self.hidden_high + 1, -self.difference_low, self.difference_high + 1)


def lane_bounds(model: IntegerModel) -> LaneBounds:
    """Bounds of every lane value the predicate reads, for pixels in 0..255 (see the module docstring)."""
    w1, b1, w2, b2 = model.w1, model.b1, model.w2, model.b2
    pre_low = PIXEL_MAX * np.minimum(w1, 0).sum(axis=0) + b1
    pre_high = PIXEL_MAX * np.maximum(w1, 0).sum(axis=0) + b1
    relu_high = np.maximum(pre_high, 0)
    classes = model.shape[2]
    difference_low = difference_high = 0
    for target in range(classes):
        for cls in range(classes):
            if cls == target:
                continue
            tie = 1 if cls < target else 0
            coefficients = w2[:, target] - w2[:, cls]
            constant = int(b2[target]) - int(b2[cls]) - tie
            low = constant + int((np.minimum(coefficients, 0) * relu_high).sum())
            high = constant + int((np.maximum(coefficients, 0) * relu_high).sum())
            difference_low = min(difference_low, low)
            difference_high = max(difference_high, high)
    return LaneBounds(int(pre_low.min()), int(pre_high.max()), difference_low, difference_high)


def lane_bytes(model: IntegerModel) -> int:
    """The lane width L in bytes: the smallest with every value read by lane in -2^(8L-1) .. 2^(8L-1) - 1."""
    magnitude = lane_bounds(model).magnitude
    width = 1
    while 1 << (8 * width - 1) < magnitude:
        width += 1
    return width


@dataclass(frozen=True)
class LaneLayout:
    """How K images are pushed: which pixels (the single-image layout), in K lanes of `lane_bytes` each."""

    lanes: int
    lane_bytes: int
    input_indices: tuple[int, ...]
    inputs: int  # pixels per image (784)

    @property
    def base(self) -> int:
        """B = 256^L: lane k of a number is its base-B digit k."""
        return 1 << (8 * self.lane_bytes)

    @property
    def half(self) -> int:
        """H = 2^(8L-1): the offset that makes each lane's top bit its sign."""
        return 1 << (8 * self.lane_bytes - 1)

    @property
    def ones(self) -> int:
        """U = sum_k B^k: the number with 1 in every lane."""
        return sum(self.base**k for k in range(self.lanes))

    @property
    def packed_bytes(self) -> int:
        """Bytes a lane-read value takes after OP_NUM2BIN: K lanes plus one for the sign bit, which the top
        lane's top bit would otherwise claim."""
        return self.lanes * self.lane_bytes + 1

    def mask(self) -> bytes:
        """The top bit of every lane, as a `packed_bytes`-byte string (also the number H * U)."""
        return (self.half * self.ones).to_bytes(self.packed_bytes, "little")

    def check_images(self, images: np.ndarray) -> np.ndarray:
        """Images as int64 of shape (K, inputs); ImageError on a wrong count, shape, dtype or value."""
        array = np.asarray(images)
        if array.ndim != 2 or array.shape != (self.lanes, self.inputs):
            raise ImageError(
                f"a batch of {self.lanes} must have shape ({self.lanes}, {self.inputs}), got {array.shape}"
            )
        if not np.issubdtype(array.dtype, np.integer):
            raise ImageError(f"pixels must be integers 0..{PIXEL_MAX}, got dtype {array.dtype}")
        if array.size and (int(array.min()) < 0 or int(array.max()) > PIXEL_MAX):
            raise ImageError(
                f"pixel values must lie in 0..{PIXEL_MAX}, got {int(array.min())}..{int(array.max())}"
            )
        return array.astype(np.int64)

    def pushes(self, images: np.ndarray) -> bytes:
        """The unlocking-script fragment pushing K images: one minimal number push per pixel read."""
        array = self.check_images(images)
        used = array[:, list(self.input_indices)]  # (K, pixels)
        # Lane bytes of every pixel: byte 0 of each lane is the pixel, the others are zero.
        lanes = np.zeros((used.shape[1], self.lanes, self.lane_bytes), dtype=np.uint8)
        lanes[:, :, 0] = used.T
        parts: list[bytes] = []
        for row in lanes.reshape(used.shape[1], -1):
            data = row.tobytes().rstrip(b"\x00")
            if data and data[-1] & 0x80:
                data += b"\x00"  # a positive number whose top bit is set needs a sign byte
            parts.append(push_data(data))
        return b"".join(parts)

    def unpack(self, numbers: list[int]) -> np.ndarray:
        """The K images back from the pushed numbers (in push order): what anyone reads from a claim."""
        if len(numbers) != len(self.input_indices):
            raise ImageError(f"expected {len(self.input_indices)} pixel numbers, got {len(numbers)}")
        images = np.zeros((self.lanes, self.inputs), dtype=np.int64)
        for index, number in zip(self.input_indices, numbers, strict=True):
            if number < 0 or number >= self.base**self.lanes:
                raise ImageError(f"pixel {index}: {number} is not a packed batch of {self.lanes} lanes")
            for lane in range(self.lanes):
                value = (number >> (8 * self.lane_bytes * lane)) & (self.base - 1)
                if value > PIXEL_MAX:
                    raise ImageError(f"pixel {index}, lane {lane}: {value} is outside 0..{PIXEL_MAX}")
                images[lane, index] = value
        return images

    def unpack_pushes(self, fragment: bytes) -> np.ndarray:
        """`unpack` applied to an unlocking fragment as written by `pushes`."""
        numbers = []
        for instruction in parse(fragment):
            number = instruction.pushed_number()
            if number is None:
                raise ImageError("the fragment holds something other than minimal number pushes")
            numbers.append(number)
        return self.unpack(numbers)


@lru_cache(maxsize=16)
def lane_layout(model: IntegerModel, lanes: int) -> LaneLayout:
    """The layout of a batch of `lanes` images for `model` (depends on the model only, never the digit)."""
    if isinstance(lanes, bool) or not isinstance(lanes, int) or not 1 <= lanes <= MAX_LANES:
        raise CompileError(f"a batch holds 1..{MAX_LANES} images, got {lanes!r}")
    return LaneLayout(lanes, lane_bytes(model), plan_layout(model).input_indices, model.shape[0])
