"""The verification hot path reads scripts for the native VM exactly as bsv-sdk does: contracts.vm's one-pass
reader of push-only unlocking scripts gives bsv-sdk's (opcode, data) pairs for every script, well formed or
not, and the cached locking-script pairs are bsv-sdk's too."""

from __future__ import annotations

import numpy as np
from bsv.script.script import Script

from contracts.vm import native_chunks, unlocking_chunks


def bsv_pairs(raw: bytes) -> list[tuple[int, bytes | None]]:
    return [(int.from_bytes(chunk.op, "big"), chunk.data) for chunk in Script(raw).chunks]


def random_push(rng: np.random.Generator) -> bytes:
    kind = int(rng.integers(6))
    if kind == 0:
        return bytes([int(rng.choice([0x00, 0x4F, 0x50, *range(0x51, 0x61)]))])
    size = int(rng.integers(0, 80 if kind < 3 else 300))
    data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    if kind < 3 and 1 <= size <= 0x4B:
        return bytes([size]) + data
    if kind == 3 or size <= 0xFF:
        return b"\x4c" + min(size, 0xFF).to_bytes(1, "little") + data[:0xFF]
    if kind == 4:
        return b"\x4d" + size.to_bytes(2, "little") + data
    return b"\x4e" + size.to_bytes(4, "little") + data


def test_unlocking_scripts_read_as_bsv_sdk_reads_them() -> None:
    rng = np.random.default_rng(15)
    checked = {"push_only": 0, "truncated": 0, "other_opcode": 0}
    for _ in range(3000):
        raw = b"".join(random_push(rng) for _ in range(int(rng.integers(0, 30))))
        variant = int(rng.integers(3))
        if variant == 1 and raw:
            raw = raw[: int(rng.integers(len(raw)))]  # cut anywhere, inside a push or its length
            checked["truncated"] += 1
        elif variant == 2:
            at = int(rng.integers(len(raw) + 1))
            raw = raw[:at] + bytes([int(rng.integers(0x61, 0x100))]) + raw[at:]  # an opcode that is no push
            checked["other_opcode"] += 1
        else:
            checked["push_only"] += 1
        assert unlocking_chunks(Script(raw)) == bsv_pairs(raw), raw.hex()
    assert min(checked.values()) > 500


def test_a_claims_unlocking_script_and_edge_pushes() -> None:
    pixels = b"".join(bytes([1, value]) for value in range(1, 256)) + b"\x00" * 3 + b"\x51\x60\x4f"
    signature = bytes([0x48]) + bytes(range(0x48))
    for raw in (
        signature + pixels,
        b"",
        b"\x4c\x00",
        b"\x4d\x00\x00",
        b"\x4e\x00\x00\x00\x00",
        b"\x4c",
        b"\x4d\x01",
    ):
        assert unlocking_chunks(Script(raw)) == bsv_pairs(raw), raw.hex()


def test_locking_pairs_are_bsv_sdks_and_built_once() -> None:
    raw = bytes([0x76, 0xA9, 0x14]) + bytes(20) + bytes([0x88, 0xAC, 0x63, 0x51, 0x67, 0x00, 0x68])
    assert list(native_chunks(raw)) == bsv_pairs(raw)
    assert native_chunks(raw) is native_chunks(raw)
