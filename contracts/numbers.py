"""Script numbers and minimal pushes, as pure functions.

A script number is little-endian sign-magnitude: the top bit of the last byte is the sign, zero is the empty
string, and a minimal encoding has no redundant trailing byte. A push is minimal when it uses the shortest
opcode for its data (OP_0, OP_1NEGATE, OP_1..OP_16, a direct push, then PUSHDATA1/2/4); nodes reject
anything else under the standard (minimal-push) rules, so the compiler and the unlocking layout only emit
minimal pushes.
"""

from __future__ import annotations

from contracts.errors import ScriptError
from contracts.opcodes import Opcode, small_int_opcode


def encode_number(value: int) -> bytes:
    """The minimal script-number encoding of `value`."""
    if value == 0:
        return b""
    magnitude = abs(value)
    encoded = bytearray(magnitude.to_bytes((magnitude.bit_length() + 7) // 8, "little"))
    if encoded[-1] & 0x80:
        # The top bit is taken by the magnitude: the sign needs a byte of its own.
        encoded.append(0x80 if value < 0 else 0x00)
    elif value < 0:
        encoded[-1] |= 0x80
    return bytes(encoded)


def is_minimal_number(data: bytes) -> bool:
    """Whether `data` is the shortest encoding of the number it represents (no negative zero either)."""
    if not data:
        return True
    if data[-1] & 0x7F:
        return True
    # The last byte only carries the sign: it is needed only if the byte below uses its top bit.
    return len(data) > 1 and bool(data[-2] & 0x80)


def decode_number(data: bytes, *, max_size: int | None = None, require_minimal: bool = True) -> int:
    """Read a script number; raise ScriptError when it is too long or (by default) not minimal."""
    if max_size is not None and len(data) > max_size:
        raise ScriptError(f"script number of {len(data)} bytes exceeds the limit of {max_size} bytes")
    if require_minimal and not is_minimal_number(data):
        raise ScriptError(f"script number {data.hex()} is not minimally encoded")
    if not data:
        return 0
    magnitude = int.from_bytes(data[:-1] + bytes([data[-1] & 0x7F]), "little")
    return -magnitude if data[-1] & 0x80 else magnitude


def push_opcode_for(data: bytes) -> int:
    """The minimal opcode that pushes `data` (for one-byte 1..16 and 0x81, the OP_N/OP_1NEGATE opcode)."""
    size = len(data)
    if size == 0:
        return Opcode.OP_0
    if size == 1 and 1 <= data[0] <= 16:
        return Opcode.OP_1 + data[0] - 1
    if size == 1 and data[0] == 0x81:
        return Opcode.OP_1NEGATE
    if size <= 75:
        return size
    if size <= 0xFF:
        return Opcode.OP_PUSHDATA1
    if size <= 0xFFFF:
        return Opcode.OP_PUSHDATA2
    if size <= 0xFFFFFFFF:
        return Opcode.OP_PUSHDATA4
    raise ScriptError(f"cannot push {size} bytes: more than PUSHDATA4 allows")


def push_data(data: bytes) -> bytes:
    """The serialized minimal push of `data`."""
    opcode = push_opcode_for(data)
    if opcode in (Opcode.OP_0, Opcode.OP_1NEGATE) or Opcode.OP_1 <= opcode <= Opcode.OP_16:
        return bytes([opcode])
    size = len(data)
    if opcode <= 75:
        return bytes([size]) + data
    if opcode == Opcode.OP_PUSHDATA1:
        return bytes([opcode, size]) + data
    if opcode == Opcode.OP_PUSHDATA2:
        return bytes([opcode]) + size.to_bytes(2, "little") + data
    return bytes([opcode]) + size.to_bytes(4, "little") + data


def push_number(value: int) -> bytes:
    """The serialized minimal push of the script number `value`."""
    opcode = small_int_opcode(value)
    if opcode is not None:
        return bytes([opcode])
    return push_data(encode_number(value))


def push_size(value: int) -> int:
    """Bytes taken by `push_number(value)`, without building it."""
    return len(push_number(value))
