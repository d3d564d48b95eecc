"""A small script model: instructions, serialization, parsing and ASM.

An `Instruction` is either a plain opcode (including OP_0, OP_1NEGATE and OP_1..OP_16, which push
small numbers) or a data push whose opcode is the minimal one for its data. Instructions carry an optional
comment so compiled output reads like annotated source (`to_asm(..., comments=True)`).

Also re-exports the opcode enum and the number helpers so callers need one import.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from contracts.errors import ScriptError
from contracts.numbers import (
    decode_number,
    encode_number,
    is_minimal_number,
    push_data,
    push_number,
    push_opcode_for,
    push_size,
)
from contracts.opcodes import ASM_ALIASES, Opcode, small_int_opcode

__all__ = [
    "Instruction",
    "Opcode",
    "decode_number",
    "encode_number",
    "from_asm",
    "is_minimal_number",
    "parse",
    "push_data",
    "push_number",
    "push_size",
    "serialize",
    "to_asm",
]


@dataclass(frozen=True)
class Instruction:
    """One script element: `op` is the opcode byte; `data` is set only for pushes of data (op 1..78)."""

    op: int
    data: bytes | None = None
    comment: str = field(default="", compare=False)

    @classmethod
    def push(cls, data: bytes, comment: str = "") -> Instruction:
        """A minimal push of `data` (OP_0/OP_N/OP_1NEGATE for the data they stand for)."""
        op = push_opcode_for(data)
        if op == Opcode.OP_0 or op == Opcode.OP_1NEGATE or Opcode.OP_1 <= op <= Opcode.OP_16:
            return cls(op, None, comment)
        return cls(op, bytes(data), comment)

    @classmethod
    def number(cls, value: int, comment: str = "") -> Instruction:
        """A minimal push of the script number `value`."""
        small = small_int_opcode(value)
        if small is not None:
            return cls(small, None, comment)
        return cls.push(encode_number(value), comment)

    @property
    def is_push(self) -> bool:
        return self.op <= Opcode.OP_16 and self.op != Opcode.OP_RESERVED

    def pushed_number(self) -> int | None:
        """The number this instruction pushes, if it is a push of a minimally encoded number."""
        if self.op == Opcode.OP_0:
            return 0
        if self.op == Opcode.OP_1NEGATE:
            return -1
        if Opcode.OP_1 <= self.op <= Opcode.OP_16:
            return self.op - Opcode.OP_1 + 1
        if self.data is not None and is_minimal_number(self.data):
            return decode_number(self.data)
        return None

    def to_bytes(self) -> bytes:
        if self.data is None:
            return bytes([self.op])
        size = len(self.data)
        if self.op <= 75:
            return bytes([self.op]) + self.data
        if self.op == Opcode.OP_PUSHDATA1:
            return bytes([self.op, size]) + self.data
        if self.op == Opcode.OP_PUSHDATA2:
            return bytes([self.op]) + size.to_bytes(2, "little") + self.data
        return bytes([self.op]) + size.to_bytes(4, "little") + self.data

    def size(self) -> int:
        return len(self.to_bytes())

    def with_comment(self, comment: str) -> Instruction:
        return Instruction(self.op, self.data, comment)

    def asm_token(self) -> str:
        if self.data is not None:
            return self.data.hex()
        try:
            return Opcode(self.op).name
        except ValueError:
            return f"OP_UNKNOWN{self.op}"


def serialize(instructions: Iterable[Instruction]) -> bytes:
    return b"".join(instruction.to_bytes() for instruction in instructions)


def parse(script: bytes) -> list[Instruction]:
    """Split serialized script into instructions; raise ScriptError on a truncated push."""
    instructions: list[Instruction] = []
    position = 0
    end = len(script)
    while position < end:
        op = script[position]
        position += 1
        if 1 <= op <= 75:
            size = op
        elif op == Opcode.OP_PUSHDATA1:
            size = int.from_bytes(script[position : position + 1], "little")
            position += 1
        elif op == Opcode.OP_PUSHDATA2:
            size = int.from_bytes(script[position : position + 2], "little")
            position += 2
        elif op == Opcode.OP_PUSHDATA4:
            size = int.from_bytes(script[position : position + 4], "little")
            position += 4
        else:
            instructions.append(Instruction(op))
            continue
        if position + size > end:
            raise ScriptError(f"push of {size} bytes at offset {position} runs past the end of the script")
        instructions.append(Instruction(op, script[position : position + size]))
        position += size
    return instructions


def to_asm(instructions: Iterable[Instruction] | bytes, *, comments: bool = False) -> str:
    """Render ASM: data pushes as hex, everything else by opcode name.

    With `comments`, every commented instruction starts a new line preceded by `# comment`, so a block of
    compiled code sits under the name of the layer and neuron it computes.
    """
    if isinstance(instructions, bytes | bytearray):
        instructions = parse(bytes(instructions))
    if not comments:
        return " ".join(instruction.asm_token() for instruction in instructions)
    lines: list[str] = []
    current: list[str] = []
    for instruction in instructions:
        if instruction.comment:
            if current:
                lines.append(" ".join(current))
                current = []
            lines.append(f"# {instruction.comment}")
        current.append(instruction.asm_token())
    if current:
        lines.append(" ".join(current))
    return "\n".join(lines) + ("\n" if lines else "")


_HEX = re.compile(r"^(?:[0-9a-fA-F]{2})+$")


def from_asm(text: str) -> list[Instruction]:
    """Parse ASM (as written by `to_asm`, `#` comments allowed); hex tokens become minimal data pushes."""
    instructions: list[Instruction] = []
    for line in text.splitlines():
        for token in line.split("#", 1)[0].split():
            if token in ("0", "-1"):
                instructions.append(Instruction.number(int(token)))
            elif token.startswith("OP_"):
                opcode = ASM_ALIASES.get(token)
                if opcode is None:
                    try:
                        opcode = Opcode[token]
                    except KeyError:
                        raise ScriptError(f"unknown opcode {token!r} in ASM") from None
                if opcode in (Opcode.OP_PUSHDATA1, Opcode.OP_PUSHDATA2, Opcode.OP_PUSHDATA4):
                    raise ScriptError(f"{token} in ASM: write the data as hex, the push opcode is implied")
                instructions.append(Instruction(int(opcode)))
            elif _HEX.match(token):
                instructions.append(Instruction.push(bytes.fromhex(token)))
            else:
                raise ScriptError(f"cannot parse ASM token {token!r}")
    return instructions
