"""Peephole optimisation as data: an ordered table of (pattern, replacement) rules applied to a fixed point.

Each rule rewrites a window of instructions into a shorter (or equal-size, cheaper) window that leaves the
stack identical for every stack of script numbers the compiler can produce. The table is the whole optimiser:
add a rule, add its test (tests/contracts/test_peephole.py runs each rule on the interpreter).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from contracts.script import Instruction, from_asm


@dataclass(frozen=True)
class Rule:
    pattern: str
    replacement: str
    why: str


RULES: tuple[Rule, ...] = (
    # Stack access by depth: the one-byte forms of the shallowest picks and rolls.
    Rule("OP_0 OP_PICK", "OP_DUP", "picking depth 0 copies the top item"),
    Rule("OP_1 OP_PICK OP_1 OP_PICK", "OP_2DUP", "two picks of depth 1 copy the top two items"),
    Rule("OP_3 OP_PICK OP_3 OP_PICK", "OP_2OVER", "two picks of depth 3 copy the pair below the top pair"),
    Rule("OP_1 OP_PICK", "OP_OVER", "picking depth 1 copies the second item"),
    Rule("OP_0 OP_ROLL", "", "rolling depth 0 moves nothing"),
    Rule("OP_1 OP_ROLL", "OP_SWAP", "rolling depth 1 swaps the top two items"),
    Rule("OP_2 OP_ROLL", "OP_ROT", "rolling depth 2 rotates the top three items"),
    # Commutative operations do not care about the order of their operands.
    Rule("OP_SWAP OP_ADD", "OP_ADD", "addition commutes"),
    Rule("OP_SWAP OP_MUL", "OP_MUL", "multiplication commutes"),
    Rule("OP_SWAP OP_MAX", "OP_MAX", "max commutes"),
    Rule("OP_SWAP OP_MIN", "OP_MIN", "min commutes"),
    Rule("OP_SWAP OP_NUMEQUAL", "OP_NUMEQUAL", "numeric equality commutes"),
    Rule("OP_SWAP OP_GREATERTHANOREQUAL", "OP_LESSTHANOREQUAL", "a >= b with swapped operands is b <= a"),
    Rule("OP_SWAP OP_LESSTHANOREQUAL", "OP_GREATERTHANOREQUAL", "a <= b with swapped operands is b >= a"),
    Rule("OP_SWAP OP_GREATERTHAN", "OP_LESSTHAN", "a > b with swapped operands is b < a"),
    Rule("OP_SWAP OP_LESSTHAN", "OP_GREATERTHAN", "a < b with swapped operands is b > a"),
    Rule("OP_SWAP OP_DROP", "OP_NIP", "dropping the second item is OP_NIP"),
    # Arithmetic with small constants.
    Rule("OP_1 OP_ADD", "OP_1ADD", "adding one has its own opcode"),
    Rule("OP_1 OP_SUB", "OP_1SUB", "subtracting one has its own opcode"),
    Rule("OP_1NEGATE OP_ADD", "OP_1SUB", "adding minus one is subtracting one"),
    Rule("OP_1NEGATE OP_SUB", "OP_1ADD", "subtracting minus one is adding one"),
    Rule("OP_1NEGATE OP_MUL", "OP_NEGATE", "multiplying by minus one negates"),
    Rule("OP_NEGATE OP_ADD", "OP_SUB", "adding a negated value subtracts it"),
    Rule("OP_NEGATE OP_SUB", "OP_ADD", "subtracting a negated value adds it"),
    Rule("OP_NEGATE OP_NEGATE", "", "double negation"),
    # Pairs that cancel or fuse.
    Rule("OP_TOALTSTACK OP_FROMALTSTACK", "", "a round trip through the alt stack moves nothing"),
    Rule("OP_SWAP OP_SWAP", "", "two swaps cancel"),
    Rule("OP_ROT OP_ROT OP_ROT", "", "three rotations of three items cancel"),
    Rule("OP_DUP OP_DROP", "", "copying then dropping the copy does nothing"),
    Rule("OP_OVER OP_OVER", "OP_2DUP", "two OP_OVERs copy the top pair"),
    Rule("OP_DROP OP_DROP", "OP_2DROP", "two drops in one opcode"),
    Rule("OP_NUMEQUAL OP_VERIFY", "OP_NUMEQUALVERIFY", "fused verify form"),
    Rule("OP_EQUAL OP_VERIFY", "OP_EQUALVERIFY", "fused verify form"),
    Rule("OP_1 OP_VERIFY", "", "verifying a constant true does nothing"),
)


def _key(instruction: Instruction) -> tuple[int, bytes | None]:
    return instruction.op, instruction.data


Key = tuple[int, bytes | None]
Table = dict[Key, list[tuple[tuple[Key, ...], list[Instruction]]]]


def _compile(rules: Sequence[Rule]) -> Table:
    """Index rules by their last instruction (only those can match after an append), keeping table order."""
    table: Table = {}
    for rule in rules:
        pattern = tuple(_key(i) for i in from_asm(rule.pattern))
        table.setdefault(pattern[-1], []).append((pattern, from_asm(rule.replacement)))
    return table


_DEFAULT_TABLE = _compile(RULES)


def optimise(instructions: Iterable[Instruction], rules: Sequence[Rule] | None = None) -> list[Instruction]:
    """Apply `rules` (default: RULES, in order) until no rule matches anywhere."""
    table = _DEFAULT_TABLE if rules is None else _compile(rules)
    current = list(instructions)
    while True:
        rewritten = _one_pass(current, table)
        if [_key(i) for i in rewritten] == [_key(i) for i in current]:
            return rewritten
        current = rewritten


def _one_pass(instructions: list[Instruction], table: Table) -> list[Instruction]:
    """A shift-reduce pass: append instructions one by one; after each append the first rule whose pattern
    ends the output replaces it, and the replacement is fed back through the same process so rewrites that
    enable further rewrites happen in the same pass. Comments move to whatever replaces the code.
    """
    pending: list[Instruction] = list(instructions)
    pending.reverse()
    output: list[Instruction] = []
    keys: list[Key] = []
    carried_comment = ""
    while pending:
        instruction = pending.pop()
        if carried_comment:
            comment = " / ".join(c for c in (carried_comment, instruction.comment) if c)
            instruction = instruction.with_comment(comment)
            carried_comment = ""
        output.append(instruction)
        keys.append(_key(instruction))
        for pattern, replacement in table.get(keys[-1], ()):
            size = len(pattern)
            if size <= len(keys) and tuple(keys[-size:]) == pattern:
                replaced = output[-size:]
                del output[-size:]
                del keys[-size:]
                comment = " / ".join(i.comment for i in replaced if i.comment)
                if replacement:
                    # Re-feed the replacement so it can combine with what precedes it.
                    rewritten = [replacement[0].with_comment(comment), *replacement[1:]]
                    pending.extend(reversed(rewritten))
                else:
                    carried_comment = comment
                break
    if carried_comment and output:
        # A comment on code that vanished at the very end belongs to the last instruction.
        last = output[-1]
        output[-1] = last.with_comment(" / ".join(c for c in (last.comment, carried_comment) if c))
    return output
