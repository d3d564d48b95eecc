"""The seed's arithmetic, for comparison: dense, weights scaled by 10^8, a division after every product.

The original sCrypt contract stored every weight as a 5-byte fixed-point constant (weight * 10^8), multiplied
each pixel by it and divided by 10^8 straight away, for every weight including the zeros. This module
compiles an `IntegerModel` the same way so the benchmark can run both scripts on the same images. With
integer weights the divisions are exact, so the baseline's verdicts still equal the reference's (it is
bit-exact, just large); it usually exceeds the 500,000-byte policy limit, which the benchmark reports.
"""

from __future__ import annotations

from collections import Counter

from contracts.compiler import CompiledPredicate, CompileStats, StackTracker
from contracts.errors import CompileError
from contracts.model import IntegerModel
from contracts.numbers import encode_number
from contracts.opcodes import Opcode
from contracts.script import serialize

SCALE = 10**8


def _dense_sum(stack: StackTracker, names: list[str], weights: list[int], bias: int, comment: str) -> None:
    stack.push_number(bias * SCALE, comment)
    stack.push_number(SCALE)
    stack.binary(Opcode.OP_DIV)
    for name, weight in zip(names, weights, strict=True):
        stack.fetch(name)
        stack.push_number(weight * SCALE)
        stack.binary(Opcode.OP_MUL)
        stack.push_number(SCALE)
        stack.binary(Opcode.OP_DIV)
        stack.binary(Opcode.OP_ADD)


def compile_baseline(model: IntegerModel, digit: int) -> CompiledPredicate:
    """The seed-style predicate (standalone mode); pushes every pixel, in index order."""
    inputs, hidden_units, classes = model.shape
    if not 0 <= digit < classes:
        raise CompileError(f"digit must be an integer in 0..{classes - 1}, got {digit!r}")
    pixels = [f"x{i}" for i in range(inputs)]
    hidden = [f"h{j}" for j in range(hidden_units)]
    uses = {name: hidden_units for name in pixels} | {name: classes for name in hidden}
    stack = StackTracker(list(pixels), Counter(uses))
    for unit in range(hidden_units):
        column = [int(w) for w in model.w1[:, unit]]
        _dense_sum(stack, pixels, column, int(model.b1[unit]), f"baseline layer 1, unit {unit}")
        stack.push_number(0)
        stack.binary(Opcode.OP_MAX)
        stack.emit(Opcode.OP_TOALTSTACK)
        stack.items.pop()
    for unit in reversed(range(hidden_units)):
        stack.emit(Opcode.OP_FROMALTSTACK)
        stack.push_temporary()
        stack.rename_top(f"h{unit}")
    # Every class's score, then "the target's beats each other one" (first index wins ties), ANDed together.
    for cls in range(classes):
        row = [int(w) for w in model.w2[:, cls]]
        _dense_sum(stack, hidden, row, int(model.b2[cls]), f"baseline layer 2, class {cls}")
        stack.rename_top(f"s{cls}")
    others = [cls for cls in range(classes) if cls != digit]
    stack.remaining_uses.update({f"s{cls}": 1 for cls in others} | {f"s{digit}": len(others)})
    if not others:
        stack.fetch(f"s{digit}")
        stack.emit(Opcode.OP_DROP)
        stack.items.pop()
        stack.push_number(1)
    for position, cls in enumerate(others):
        stack.fetch(f"s{digit}", "baseline argmax" if position == 0 else "")
        stack.fetch(f"s{cls}")
        stack.binary(Opcode.OP_GREATERTHAN if cls < digit else Opcode.OP_GREATERTHANOREQUAL)
        if position > 0:
            stack.binary(Opcode.OP_BOOLAND)
    code = stack.code
    script = serialize(code)
    stats = CompileStats(
        bytes=len(script),
        instructions=len(code),
        opcodes=sum(1 for i in code if not i.is_push),
        largest_constant=max(abs(n) for n in (i.pushed_number() for i in code) if n is not None),
        largest_push_bytes=max((len(i.data) for i in code if i.data is not None), default=0),
        largest_intermediate=model.largest_intermediate() * SCALE,
        largest_intermediate_bytes=len(encode_number(model.largest_intermediate() * SCALE)),
        max_stack_items=stack.max_items,
        stack_memory_bound=0,
        inputs=inputs,
        live_hidden_units=hidden_units,
        layer1_terms=inputs * hidden_units,
        layer2_terms=hidden_units * classes,
        unoptimised_bytes=len(script),
    )
    return CompiledPredicate(digit, "standalone", model.shape, tuple(range(inputs)), tuple(code), stats)
