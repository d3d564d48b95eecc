"""Instructions, serialization, parsing and ASM."""

from __future__ import annotations

import pytest

from contracts.errors import ScriptError
from contracts.script import Instruction, Opcode, from_asm, parse, serialize, to_asm


def test_it_round_trips_bytes_through_instructions() -> None:
    script = bytes.fromhex("00514f60011102800076a94c4c" + "aa" * 76 + "87")
    assert serialize(parse(script)) == script


def test_it_round_trips_asm() -> None:
    text = "OP_0 OP_1NEGATE OP_16 11 8000 OP_DUP OP_ADD " + "aa" * 80
    assert to_asm(from_asm(text)) == text


def test_it_renders_minimal_small_pushes_as_opcodes() -> None:
    assert to_asm(from_asm("05 81 00")) == "OP_5 OP_1NEGATE 00"


def test_it_accepts_asm_aliases_and_comments() -> None:
    parsed = from_asm("# a comment line\nOP_TRUE OP_FALSE  # trailing\n0 -1")
    assert [i.op for i in parsed] == [Opcode.OP_1, Opcode.OP_0, Opcode.OP_0, Opcode.OP_1NEGATE]


@pytest.mark.parametrize("token", ["OP_BOGUS", "xyz", "abc", "OP_PUSHDATA1"])
def test_it_refuses_unparsable_asm(token: str) -> None:
    with pytest.raises(ScriptError):
        from_asm(token)


@pytest.mark.parametrize("script", ["05aabb", "4c05aa", "4d0100", "4e01000000"])
def test_it_refuses_truncated_pushes(script: str) -> None:
    with pytest.raises(ScriptError, match="past the end"):
        parse(bytes.fromhex(script))


def test_it_writes_comments_on_their_own_lines() -> None:
    instructions = [
        Instruction.number(3, "layer 1, hidden unit 0"),
        Instruction(Opcode.OP_PICK),
        Instruction.number(7, "bias"),
        Instruction(Opcode.OP_ADD),
    ]
    asm = to_asm(instructions, comments=True)
    assert asm == "# layer 1, hidden unit 0\nOP_3 OP_PICK\n# bias\nOP_7 OP_ADD\n"
    assert from_asm(asm) == instructions


def test_it_builds_the_shortest_pushes() -> None:
    instructions = [Instruction.number(n) for n in (0, -1, 16, 17, 128)] + [Instruction.push(b"\x05")]
    assert serialize(instructions).hex() == "004f6001110280005" + "5"


@pytest.mark.parametrize(
    ("instruction", "value"),
    [
        (Instruction.number(0), 0),
        (Instruction.number(-1), -1),
        (Instruction.number(16), 16),
        (Instruction.number(-300), -300),
        (Instruction.push(b"\x00"), None),
        (Instruction(Opcode.OP_ADD), None),
    ],
)
def test_it_reads_back_pushed_numbers(instruction: Instruction, value: int | None) -> None:
    assert instruction.pushed_number() == value
