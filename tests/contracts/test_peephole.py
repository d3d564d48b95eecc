"""Each peephole rule, run on an interpreter: pattern and replacement leave the same stacks.

bitcoinx's interpreter exposes its stacks, so every rule is checked on many random stacks of script numbers
(the only items the compiler's code handles). The whole optimiser is checked against unoptimised compiled
code on bsv-sdk's VM in test_compiler.py.
"""

from __future__ import annotations

import random

import pytest
from bitcoinx import InterpreterLimits, InterpreterState, MinerPolicy
from bitcoinx import Script as BxScript

from contracts.peephole import RULES, Rule, optimise
from contracts.script import Instruction, Opcode, from_asm, serialize, to_asm

POLICY = MinerPolicy(
    max_script_size=500_000,
    max_script_num_length=10_000,
    max_stack_memory_usage=100_000_000,
    max_ops_per_script=1_000_000,
    max_pubkeys_per_multisig=64,
)
NUMBERS = [0, 1, -1, 2, 3, 16, 17, -5, 127, 128, -128, 255, 70000, -300000]


def run(code: bytes) -> tuple[bool, list[bytes], list[bytes]]:
    """(succeeded, main stack, alt stack) after running `code` on bitcoinx's interpreter."""
    state = InterpreterState(InterpreterLimits(POLICY, is_genesis_enabled=True, is_consensus=False))
    try:
        state.evaluate_script(BxScript(code))
    except Exception:
        return False, [], []
    return True, list(state.stack), list(state.alt_stack)


def random_stack(rng: random.Random, size: int) -> bytes:
    return serialize(Instruction.number(rng.choice(NUMBERS)) for _ in range(size))


@pytest.mark.parametrize("rule", RULES, ids=[f"{r.pattern} -> {r.replacement or 'nothing'}" for r in RULES])
def test_each_rule_preserves_the_stack(rule: Rule) -> None:
    rng = random.Random(rule.pattern)
    pattern, replacement = serialize(from_asm(rule.pattern)), serialize(from_asm(rule.replacement))
    outcomes = set()
    for _ in range(60):
        setup = random_stack(rng, 6)
        # A preceding OP_TOALTSTACK gives the alt-stack rules something to move.
        if rng.random() < 0.3:
            setup += bytes([Opcode.OP_TOALTSTACK]) + random_stack(rng, 1)
        original, rewritten = run(setup + pattern), run(setup + replacement)
        assert original == rewritten, (rule, setup.hex())
        outcomes.add(original[0])
    assert True in outcomes  # at least some stacks ran the rule for real


@pytest.mark.parametrize("rule", RULES, ids=[r.pattern for r in RULES])
def test_each_rule_shrinks_the_script(rule: Rule) -> None:
    assert len(serialize(from_asm(rule.replacement))) < len(serialize(from_asm(rule.pattern)))


@pytest.mark.parametrize("rule", RULES, ids=[r.pattern for r in RULES])
def test_the_optimiser_applies_each_rule(rule: Rule) -> None:
    assert to_asm(optimise(from_asm(rule.pattern))) == rule.replacement


def test_it_reaches_a_fixed_point_through_chains_of_rewrites() -> None:
    # OP_1 OP_PICK -> OP_OVER, twice -> OP_2DUP; OP_1NEGATE OP_MUL -> OP_NEGATE; OP_NEGATE OP_ADD -> OP_SUB.
    code = from_asm("OP_1 OP_PICK OP_1 OP_PICK OP_3 OP_1NEGATE OP_MUL OP_ADD OP_0 OP_ROLL OP_DROP OP_DROP")
    assert to_asm(optimise(code)) == "OP_2DUP OP_3 OP_SUB OP_2DROP"


def test_removing_code_moves_its_comment_forward() -> None:
    code = [Instruction(Opcode.OP_0, None, "unit 3"), Instruction(Opcode.OP_ROLL), Instruction(Opcode.OP_ADD)]
    assert optimise(code) == [Instruction(Opcode.OP_ADD)]
    assert optimise(code)[0].comment == "unit 3"


def test_code_without_matches_is_unchanged() -> None:
    code = from_asm("OP_5 OP_PICK OP_7 OP_MUL OP_ADD")
    assert optimise(code) == code
