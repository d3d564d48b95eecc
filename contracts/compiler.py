"""The compiler: an integer two-layer MLP and a target digit -> a Bitcoin Script predicate.

A short pipeline of named passes (each a small function below):

    plan_network   drop hidden units that cannot change the verdict, fold constant units into the class
                   biases, make layer 2 relative to the target (only score differences matter)
    plan_layout    which pixels the unlocking script pushes and in what order (depends on the model only,
                   never on the digit, so one image layout serves every target)
    emit_layer1    per hidden unit: sum the pixels that share a weight magnitude (+ or -), multiply once;
                   ReLU with the bias folded in (max(sum, -b), the +b goes to the class biases); park the
                   result on the alt stack
    emit_layer2    bring the hidden values back; score of the target, then the running max of the others
    emit_verdict   target score >= max of the others (ties folded into the biases: first index wins)
    optimise       the peephole table (contracts.peephole), to a fixed point

Every stack value is read by depth with the shortest push; its last read is an OP_ROLL instead of an OP_PICK,
so the script consumes the whole image and all hidden values as it goes and ends with a clean stack
(standalone: one true value) or, in "verify" mode, with the stack exactly as it was below the image.
No division anywhere; script numbers are arbitrary precision after Genesis.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import numpy as np

from contracts import peephole
from contracts.errors import CompileError
from contracts.model import IntegerModel
from contracts.numbers import encode_number
from contracts.opcodes import Opcode
from contracts.script import Instruction, serialize, to_asm

Mode = Literal["standalone", "verify"]
MODES: tuple[str, ...] = ("standalone", "verify")

# Per-item overhead the node counts towards stack memory (bitcoind's STACK_ITEM_OVERHEAD-style accounting).
STACK_ITEM_OVERHEAD = 32


@dataclass(frozen=True)
class LinearForm:
    """sum(coefficient * value) + bias over named stack values (pixels 'x12', hidden units 'h3')."""

    terms: dict[str, int]
    bias: int


@dataclass(frozen=True)
class NetworkPlan:
    """The network reduced to what decides `score[target] >= every other score` (ties resolved)."""

    # live hidden unit -> its weighted pixel sum; `bias` holds the ReLU floor (-b1): unit = max(sum, floor)
    hidden: dict[int, LinearForm]
    target_score: LinearForm  # over hidden units, bias 0
    other_scores: dict[int, LinearForm]  # class -> score relative to the target's, ties folded in


@dataclass(frozen=True)
class Layout:
    input_indices: tuple[int, ...]  # pushed first to last: the last one is on top of the stack
    hidden_order: tuple[int, ...]  # order in which hidden units are computed


@dataclass(frozen=True)
class CompileStats:
    bytes: int
    instructions: int
    opcodes: int  # non-push instructions (the ones a node counts as operations)
    largest_constant: int  # largest |number| pushed by the script
    largest_push_bytes: int
    largest_intermediate: int  # bound on |any value| computed for pixels in 0..255
    largest_intermediate_bytes: int
    max_stack_items: int
    stack_memory_bound: int  # bytes, items * (overhead + largest item), for in-range pixels
    inputs: int
    live_hidden_units: int
    layer1_terms: int
    layer2_terms: int
    unoptimised_bytes: int


@dataclass(frozen=True)
class CompiledPredicate:
    digit: int
    mode: str
    shape: tuple[int, int, int]
    input_indices: tuple[int, ...]
    instructions: tuple[Instruction, ...] = field(repr=False)
    stats: CompileStats

    @cached_property
    def script(self) -> bytes:
        return serialize(self.instructions)

    @cached_property
    def asm(self) -> str:
        """ASM with one `# comment` line per block, naming the layer and unit it computes."""
        return to_asm(self.instructions, comments=True)

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.script).hexdigest()


# --- pass 1: plan_network ------------------------------------------------------------------------------


def plan_network(model: IntegerModel, digit: int) -> NetworkPlan:
    _inputs, hidden_units, classes = model.shape
    w1, b1, w2, b2 = model.w1, model.b1, model.w2, model.b2
    class_bias = [int(b) for b in b2]
    hidden: dict[int, LinearForm] = {}
    layer2_weights: dict[int, list[int]] = {}
    for unit in range(hidden_units):
        row = [int(w) for w in w2[unit]]
        if len(set(row)) == 1:
            continue  # adds the same amount to every score: cannot change the argmax
        column = w1[:, unit]
        nonzero = np.flatnonzero(column)
        if nonzero.size == 0:
            constant = max(0, int(b1[unit]))  # ReLU of the bias alone: fold into the class biases
            class_bias = [bias + constant * weight for bias, weight in zip(class_bias, row, strict=True)]
            continue
        # relu(s + b) = max(s, -b) + b: the script keeps the shifted value max(s, -b) (one push, one OP_MAX,
        # no OP_ADD) and the "+ b" goes, times the unit's outgoing weights, into the class biases.
        bias = int(b1[unit])
        hidden[unit] = LinearForm({f"x{i}": int(column[i]) for i in nonzero}, -bias)
        class_bias = [cb + bias * weight for cb, weight in zip(class_bias, row, strict=True)]
        # Subtracting one value from the whole row leaves every score difference unchanged; the most common
        # value makes the most zeros (skipped terms).
        common = Counter(row).most_common()
        best_count = common[0][1]
        offset = 0 if row.count(0) == best_count else common[0][0]
        layer2_weights[unit] = [weight - offset for weight in row]

    def score_terms(cls: int) -> dict[str, int]:
        return {f"h{u}": weights[cls] for u, weights in layer2_weights.items() if weights[cls] != 0}

    others: dict[int, LinearForm] = {}
    for cls in range(classes):
        if cls == digit:
            continue
        # score_t >= score_c + 1 for c < t (the first index wins ties), score_t >= score_c for c > t.
        tie = 1 if cls < digit else 0
        others[cls] = LinearForm(score_terms(cls), class_bias[cls] - class_bias[digit] + tie)
    return NetworkPlan(hidden, LinearForm(score_terms(digit), 0), others)


# --- pass 2: plan_layout -------------------------------------------------------------------------------


def plan_layout(model: IntegerModel) -> Layout:
    """Pixels used most often go on top of the stack, where depth pushes are shortest (1 byte to 16, 2 to
    127, 3 beyond). Depends on the model only, so the unlocking layout is the same for every digit."""
    live = plan_network(model, 0).hidden
    uses: Counter[int] = Counter()
    for form in live.values():
        uses.update(int(name[1:]) for name in form.terms)
    # Pushed first = deepest: least used first, so the most used end on top.
    input_indices = tuple(sorted(uses, key=lambda i: (uses[i], -i)))
    return Layout(input_indices, tuple(sorted(live)))


# --- code emission -------------------------------------------------------------------------------------


class StackTracker:
    """Follows the main stack symbolically so every read uses the right depth, and knows which read of a
    value is its last (that read rolls the value out instead of copying it)."""

    def __init__(self, values: list[str], uses: Counter[str]) -> None:
        self.items: list[str] = list(values)
        self.remaining_uses = uses
        self.code: list[Instruction] = []
        self.max_items = len(values)
        self._temporaries = 0

    def emit(self, op: int, comment: str = "") -> None:
        self.code.append(Instruction(int(op), None, comment))

    def push_number(self, value: int, comment: str = "") -> None:
        self.code.append(Instruction.number(value, comment))
        self.push_temporary()

    def push_temporary(self) -> str:
        self._temporaries += 1
        name = f"_t{self._temporaries}"
        self.items.append(name)
        self.max_items = max(self.max_items, len(self.items))
        return name

    def fetch(self, name: str, comment: str = "") -> None:
        """Copy `name` to the top (OP_PICK), or move it there (OP_ROLL) if this is its last use."""
        depth = len(self.items) - 1 - self.items.index(name)
        self.remaining_uses[name] -= 1
        last = self.remaining_uses[name] == 0
        self.code.append(Instruction.number(depth, comment))
        self.emit(Opcode.OP_ROLL if last else Opcode.OP_PICK)
        if last:
            self.items.remove(name)
        self.push_temporary()

    def binary(self, op: int) -> None:
        """An operation taking two items and leaving one."""
        self.emit(op)
        self.items.pop()
        self.items[-1] = self.push_name_for_result()

    def push_name_for_result(self) -> str:
        self._temporaries += 1
        return f"_t{self._temporaries}"

    def rename_top(self, name: str) -> None:
        self.items[-1] = name


def emit_linear(stack: StackTracker, form: LinearForm, comment: str) -> None:
    """Leave sum(coefficient * value) + bias on top of the stack.

    Values sharing a coefficient magnitude are summed (OP_ADD for +, OP_SUB for -) and multiplied once. The
    magnitude-1 group goes first so it needs no multiply and the first term needs no OP_ADD.
    """
    groups: dict[int, list[tuple[str, int]]] = {}
    for name, coefficient in form.terms.items():
        groups.setdefault(abs(coefficient), []).append((name, 1 if coefficient > 0 else -1))
    started = False
    for magnitude in sorted(groups):
        members = sorted(groups[magnitude], key=lambda member: -member[1])  # a positive member first
        group_sign = members[0][1]
        for position, (name, sign) in enumerate(members):
            note = comment if not started and position == 0 else ""
            stack.fetch(name, note)
            if position > 0:
                stack.binary(Opcode.OP_ADD if sign == group_sign else Opcode.OP_SUB)
        if magnitude != 1:
            stack.push_number(magnitude)
            stack.binary(Opcode.OP_MUL)
        if started:
            stack.binary(Opcode.OP_ADD if group_sign > 0 else Opcode.OP_SUB)
        elif group_sign < 0:
            stack.emit(Opcode.OP_NEGATE)
        started = True
    if not started:
        stack.push_number(form.bias, comment)
    elif form.bias != 0:
        stack.push_number(form.bias)
        stack.binary(Opcode.OP_ADD)


def emit_predicate(plan: NetworkPlan, layout: Layout, mode: str) -> tuple[list[Instruction], int]:
    uses: Counter[str] = Counter()
    for form in plan.hidden.values():
        uses.update(list(form.terms))
    for form in (plan.target_score, *plan.other_scores.values()):
        uses.update(list(form.terms))
    stack = StackTracker([f"x{i}" for i in layout.input_indices], uses)
    emit_layer1(stack, plan, layout)
    emit_layer2(stack, plan, layout)
    emit_verdict(stack, plan, mode)
    expected = 0 if mode == "verify" else 1
    if len(stack.items) != expected:
        raise CompileError(f"internal: {len(stack.items)} items left on the stack, expected {expected}")
    return stack.code, stack.max_items


def emit_layer1(stack: StackTracker, plan: NetworkPlan, layout: Layout) -> None:
    for unit in layout.hidden_order:
        form = plan.hidden[unit]
        emit_linear(
            stack, LinearForm(form.terms, 0), f"layer 1, hidden unit {unit}: {len(form.terms)} pixels"
        )
        stack.push_number(form.bias)  # ReLU with the bias folded in: max(sum, -b1)
        stack.binary(Opcode.OP_MAX)
        # The alt stack keeps finished units out of the way: pixel depths (and their pushes) stay short.
        stack.emit(Opcode.OP_TOALTSTACK)
        stack.items.pop()
    for unit in reversed(layout.hidden_order):
        stack.emit(
            Opcode.OP_FROMALTSTACK,
            "layer 2: hidden values back from the alt stack" if unit == layout.hidden_order[-1] else "",
        )
        stack.push_temporary()
        stack.rename_top(f"h{unit}")


def emit_layer2(stack: StackTracker, plan: NetworkPlan, layout: Layout) -> None:
    if not plan.other_scores:
        return  # a single class always wins: nothing to compare
    emit_linear(stack, plan.target_score, "layer 2, score of the target")
    first = True
    for cls, form in plan.other_scores.items():
        emit_linear(stack, form, f"layer 2, score of class {cls} relative to the target")
        if not first:
            stack.binary(Opcode.OP_MAX)
        first = False


def emit_verdict(stack: StackTracker, plan: NetworkPlan, mode: str) -> None:
    if plan.other_scores:
        stack.binary(Opcode.OP_GREATERTHANOREQUAL)
        stack.code[-1] = stack.code[-1].with_comment("argmax: target score >= every other score")
    else:
        stack.push_number(1, "a single class always wins")
    if mode == "verify":
        stack.emit(Opcode.OP_VERIFY)
        stack.items.pop()


# --- the pipeline --------------------------------------------------------------------------------------


def compile_predicate(
    model: IntegerModel, digit: int, *, mode: str = "standalone", optimise: bool = True
) -> CompiledPredicate:
    """Compile "argmax(model(image)) == digit" into a locking-script predicate (see the module docstring)."""
    classes = model.shape[2]
    if isinstance(digit, bool) or not isinstance(digit, int | np.integer) or not 0 <= int(digit) < classes:
        raise CompileError(f"digit must be an integer in 0..{classes - 1}, got {digit!r}")
    if mode not in MODES:
        raise CompileError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    digit = int(digit)
    plan = plan_network(model, digit)
    layout = plan_layout(model)
    raw, max_items = emit_predicate(plan, layout, mode)
    instructions = peephole.optimise(raw) if optimise else raw
    return CompiledPredicate(
        digit=digit,
        mode=mode,
        shape=model.shape,
        input_indices=layout.input_indices,
        instructions=tuple(instructions),
        stats=_stats(model, plan, instructions, serialize(raw), max_items, len(layout.input_indices)),
    )


def _stats(
    model: IntegerModel,
    plan: NetworkPlan,
    instructions: list[Instruction],
    unoptimised: bytes,
    max_items: int,
    inputs: int,
) -> CompileStats:
    constants = [abs(n) for n in (i.pushed_number() for i in instructions) if n is not None]
    largest_intermediate = model.largest_intermediate()
    intermediate_bytes = len(encode_number(largest_intermediate))
    return CompileStats(
        bytes=len(serialize(instructions)),
        instructions=len(instructions),
        opcodes=sum(1 for i in instructions if not i.is_push),
        largest_constant=max(constants, default=0),
        largest_push_bytes=max((len(i.data) for i in instructions if i.data is not None), default=0),
        largest_intermediate=largest_intermediate,
        largest_intermediate_bytes=intermediate_bytes,
        max_stack_items=max_items,
        stack_memory_bound=max_items * (STACK_ITEM_OVERHEAD + intermediate_bytes),
        inputs=inputs,
        live_hidden_units=len(plan.hidden),
        layer1_terms=sum(len(f.terms) for f in plan.hidden.values()),
        layer2_terms=sum(len(f.terms) for f in (plan.target_score, *plan.other_scores.values())),
        unoptimised_bytes=len(unoptimised),
    )
