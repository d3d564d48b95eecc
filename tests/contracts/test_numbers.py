"""Script numbers and minimal pushes: tables of edge values, one case per vector."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.errors import ScriptError
from contracts.numbers import (
    decode_number,
    encode_number,
    is_minimal_number,
    push_data,
    push_number,
    push_size,
)

NUMBER_VECTORS = [
    (0, ""),
    (1, "01"),
    (-1, "81"),
    (16, "10"),
    (127, "7f"),
    (-127, "ff"),
    (128, "8000"),
    (-128, "8080"),
    (255, "ff00"),
    (-255, "ff80"),
    (256, "0001"),
    (32767, "ff7f"),
    (32768, "008000"),
    (2**31 - 1, "ffffff7f"),
    (2**31, "0000008000"),
    (-(2**31), "0000008080"),
    (-(2**63), "000000000000008080"),
    (2**63 - 1, "ffffffffffffff7f"),
]


@pytest.mark.parametrize(("value", "encoded"), NUMBER_VECTORS, ids=[str(v) for v, _ in NUMBER_VECTORS])
def test_it_encodes_minimally(value: int, encoded: str) -> None:
    assert encode_number(value).hex() == encoded


@pytest.mark.parametrize(("value", "encoded"), NUMBER_VECTORS, ids=[str(v) for v, _ in NUMBER_VECTORS])
def test_it_decodes_what_it_encodes(value: int, encoded: str) -> None:
    assert decode_number(bytes.fromhex(encoded)) == value


NON_MINIMAL = ["00", "80", "0100", "7f00", "ff0000", "0080", "000080"]


@pytest.mark.parametrize("encoded", NON_MINIMAL)
def test_it_rejects_non_minimal_numbers(encoded: str) -> None:
    assert not is_minimal_number(bytes.fromhex(encoded))
    with pytest.raises(ScriptError, match="not minimally encoded"):
        decode_number(bytes.fromhex(encoded))


@pytest.mark.parametrize(("encoded", "value"), [("80", 0), ("0100", 1), ("0080", 0), ("0180", -1)])
def test_it_reads_non_minimal_numbers_when_asked(encoded: str, value: int) -> None:
    assert decode_number(bytes.fromhex(encoded), require_minimal=False) == value


def test_it_enforces_a_size_limit() -> None:
    with pytest.raises(ScriptError, match="exceeds the limit of 4 bytes"):
        decode_number(encode_number(2**40), max_size=4)


PUSH_NUMBER_VECTORS = [
    (0, "00"),
    (-1, "4f"),
    (1, "51"),
    (16, "60"),
    (17, "0111"),
    (-2, "0182"),
    (127, "017f"),
    (128, "028000"),
    (255, "02ff00"),
    (-255, "02ff80"),
]


@pytest.mark.parametrize(
    ("value", "script"), PUSH_NUMBER_VECTORS, ids=[str(v) for v, _ in PUSH_NUMBER_VECTORS]
)
def test_it_pushes_numbers_with_the_shortest_opcode(value: int, script: str) -> None:
    assert push_number(value).hex() == script
    assert push_size(value) == len(script) // 2


PUSH_DATA_VECTORS = [
    (b"", "00"),
    (b"\x01", "51"),
    (b"\x10", "60"),
    (b"\x81", "4f"),
    (b"\x00", "0100"),
    (b"\x11", "0111"),
    (b"\x80", "0180"),
]


@pytest.mark.parametrize(
    ("data", "script"), PUSH_DATA_VECTORS, ids=[d.hex() or "empty" for d, _ in PUSH_DATA_VECTORS]
)
def test_it_pushes_short_data_minimally(data: bytes, script: str) -> None:
    assert push_data(data).hex() == script


@pytest.mark.parametrize(
    ("size", "prefix"),
    [(75, "4b"), (76, "4c4c"), (255, "4cff"), (256, "4d0001"), (65535, "4dffff"), (65536, "4e00000100")],
)
def test_it_picks_the_pushdata_opcode_by_size(size: int, prefix: str) -> None:
    pushed = push_data(b"\xaa" * size)
    assert pushed.hex().startswith(prefix)
    assert len(pushed) == len(prefix) // 2 + size


@given(st.integers(min_value=-(2**200), max_value=2**200))
def test_any_integer_round_trips_minimally(value: int) -> None:
    encoded = encode_number(value)
    assert is_minimal_number(encoded)
    assert decode_number(encoded) == value
    assert push_size(value) == len(push_number(value))
