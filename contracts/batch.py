"""The batch compiler: one predicate accepting K images only if the model classifies each as the digit.

The images come lane-packed (contracts/batch_lanes.py: one number per pixel, image k in lane k, lane width
L bytes, B = 256^L, U = sum_k B^k, H = 2^(8L-1)). The passes mirror the single-image compiler:

    plan_batch_network  drop hidden units that cannot change the verdict, fold constant units into the class
                        biases, subtract each layer-2 row's most common value (score differences unchanged)
    prologue            push U and H, and MASK = H * U as K*L+1 bytes (the top bit of every lane)
    layer 1             per hidden unit, exactly today's multiply-adds on the packed pixels, plus (b + H) * U:
                        W = sum_k (s_k + b + H) * B^k, every lane in 0..B-1 (the lane-width proof)
    ReLU, per lane      with no split at all: M = W AND MASK keeps each lane's top bit, set iff s_k + b >= 0;
                        e = M / H has a 1 in those lanes; M - e is H - 1 (all bits below the top one) in
                        those lanes and 0 elsewhere; W AND (M - e) = sum_k relu(s_k + b) * B^k.
                        About 20 bytes per unit whatever K is (splitting K lanes with OP_SPLIT/OP_BIN2NUM
                        costs ~9 bytes per lane and unit, and repacking for layer 2 as much again).
    layer 2, shared     the packed hidden values are a valid lane-packed input again, so one layer 2 serves
                        every lane: T = target score, and per other class c, D_c = T - S_c with the class
                        bias, the tie rule and + H folded into a multiple of U, so lane k of D_c is
                        score_t - score_c - tie + H: its top bit is set iff image k prefers the target to c.
    verdict             the AND of MASK and every D_c (as K*L+1 bytes) equals MASK iff every lane of every
                        difference has its top bit, i.e. every image is classified as the target.

Per-lane layer 2 (splitting the K packed hidden values per unit and running layer 2 K times) would cost
~1.75 KB per lane; the shared one costs ~1.75 KB for all lanes plus ~4 bytes per class for the verdict.
Numbers stay K*L+2 bytes or so (policy: 10,000), checked statically with the stack memory below.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from contracts import peephole
from contracts.batch_lanes import LaneLayout, lane_layout
from contracts.compiler import (
    MODES,
    STACK_ITEM_OVERHEAD,
    CompiledPredicate,
    CompileStats,
    LinearForm,
    StackTracker,
    emit_linear,
)
from contracts.errors import CompileError, PolicyError
from contracts.model import PIXEL_MAX, IntegerModel
from contracts.numbers import encode_number
from contracts.opcodes import Opcode
from contracts.policy import DEFAULT_POLICY, Policy
from contracts.script import Instruction, serialize

# Names of the constants the prologue leaves on the stack (pixels are "x12", hidden values "h3").
ONES = "_ones"  # U
HALF = "_half"  # H
MASK = "_mask"  # H * U as K*L+1 bytes
TARGET = "_target"  # T, the packed target score


@dataclass(frozen=True)
class BatchPlan:
    """The network as the batch predicate computes it (exact integer algebra, valid for any input)."""

    hidden: dict[int, LinearForm]  # live unit -> pixel terms, bias b1 (the pre-activation s + b)
    target: LinearForm  # over hidden values "h<unit>", bias 0
    others: dict[int, LinearForm]  # class c -> S_c over hidden values, bias cb_c - cb_t + tie: D_c = T - S_c


@dataclass(frozen=True)
class CompiledBatchPredicate(CompiledPredicate):
    """A compiled predicate over K lane-packed images; `layout` says how the unlocking script packs them."""

    layout: LaneLayout = field(repr=False)

    @property
    def lanes(self) -> int:
        return self.layout.lanes

    def pushes(self, images: np.ndarray) -> bytes:
        """The unlocking fragment for K images (shape (K, n), integers 0..255)."""
        return self.layout.pushes(images)


def plan_batch_network(model: IntegerModel, digit: int) -> BatchPlan:
    _inputs, hidden_units, classes = model.shape
    w1, b1, w2, b2 = model.w1, model.b1, model.w2, model.b2
    class_bias = [int(b) for b in b2]
    hidden: dict[int, LinearForm] = {}
    rows: dict[int, list[int]] = {}
    for unit in range(hidden_units):
        row = [int(w) for w in w2[unit]]
        if len(set(row)) == 1:
            continue  # adds the same amount to every score: cannot change any lane's argmax
        nonzero = np.flatnonzero(w1[:, unit])
        if nonzero.size == 0:
            constant = max(0, int(b1[unit]))
            class_bias = [bias + constant * weight for bias, weight in zip(class_bias, row, strict=True)]
            continue
        hidden[unit] = LinearForm({f"x{i}": int(w1[i, unit]) for i in nonzero}, int(b1[unit]))
        common = Counter(row).most_common()
        offset = 0 if row.count(0) == common[0][1] else common[0][0]
        rows[unit] = [weight - offset for weight in row]

    def terms(cls: int) -> dict[str, int]:
        return {f"h{u}": weights[cls] for u, weights in rows.items() if weights[cls] != 0}

    others = {
        cls: LinearForm(terms(cls), class_bias[cls] - class_bias[digit] + (1 if cls < digit else 0))
        for cls in range(classes)
        if cls != digit
    }
    return BatchPlan(hidden, LinearForm(terms(digit), 0), others)


def _layer1_form(form: LinearForm, layout: LaneLayout) -> LinearForm:
    """W = sum w * P + (b + H) * U: every lane holds s + b + H (in 0..B-1 by the lane-width proof)."""
    return LinearForm({**form.terms, ONES: form.bias + layout.half}, 0)


def _other_form(form: LinearForm, layout: LaneLayout) -> LinearForm:
    """S_c with its bias minus H as a multiple of U, so that T - S_c holds score_t - score_c - tie + H."""
    coefficient = form.bias - layout.half
    return LinearForm({**form.terms, **({ONES: coefficient} if coefficient else {})}, 0)


def _to_lane_bytes(stack: StackTracker, layout: LaneLayout) -> None:
    stack.push_number(layout.packed_bytes)
    stack.binary(Opcode.OP_NUM2BIN)


def _drop_if_unused(stack: StackTracker, name: str) -> None:
    """A constant nothing used (a degenerate model) is rolled up and dropped: the stack must end clean."""
    if name in stack.items:
        stack.remaining_uses[name] = 1
        stack.fetch(name, f"{name} unused")
        stack.emit(Opcode.OP_DROP)
        stack.items.pop()


def emit_batch(plan: BatchPlan, layout: LaneLayout, mode: str) -> tuple[list[Instruction], int]:
    layer1 = {unit: _layer1_form(form, layout) for unit, form in plan.hidden.items()}
    others = {cls: _other_form(form, layout) for cls, form in plan.others.items()}
    uses: Counter[str] = Counter()
    for form in (*layer1.values(), plan.target, *others.values()):
        uses.update(list(form.terms))
    uses[HALF] += len(layer1)
    uses[MASK] += len(layer1) + 2
    uses[TARGET] += len(others)
    stack = StackTracker([f"x{i}" for i in layout.input_indices], uses)

    lanes_note = f"prologue: U (1 in each of {layout.lanes} lanes of {layout.lane_bytes} bytes)"
    stack.push_number(layout.ones, lanes_note)
    stack.rename_top(ONES)
    stack.push_number(layout.half, "H, the top bit of a lane")
    stack.rename_top(HALF)
    stack.emit(Opcode.OP_2DUP, "MASK = H * U as bytes: the top bit of every lane")
    stack.push_temporary()
    stack.push_temporary()
    stack.binary(Opcode.OP_MUL)
    _to_lane_bytes(stack, layout)
    stack.rename_top(MASK)

    order = sorted(layer1)
    for unit in order:
        form = layer1[unit]
        emit_linear(stack, form, f"layer 1, hidden unit {unit}: {len(form.terms) - 1} pixels, all lanes")
        _to_lane_bytes(stack, layout)
        stack.emit(Opcode.OP_DUP, "ReLU per lane: M = W AND MASK, W AND (M - M/H)")
        stack.push_temporary()
        stack.fetch(MASK)
        stack.binary(Opcode.OP_AND)
        stack.emit(Opcode.OP_BIN2NUM)
        stack.emit(Opcode.OP_DUP)
        stack.push_temporary()
        stack.fetch(HALF)
        stack.binary(Opcode.OP_DIV)
        stack.binary(Opcode.OP_SUB)
        _to_lane_bytes(stack, layout)
        stack.binary(Opcode.OP_AND)
        stack.emit(Opcode.OP_BIN2NUM)
        stack.emit(Opcode.OP_TOALTSTACK)
        stack.items.pop()
    _drop_if_unused(stack, HALF)
    for unit in reversed(order):
        note = "layer 2: packed hidden values back from the alt stack" if unit == order[-1] else ""
        stack.emit(Opcode.OP_FROMALTSTACK, note)
        stack.push_temporary()
        stack.rename_top(f"h{unit}")

    emit_linear(stack, plan.target, "layer 2, score of the target, all lanes")
    stack.rename_top(TARGET)
    stack.fetch(MASK, "verdict accumulator: MASK AND every difference")
    for cls, form in others.items():
        stack.fetch(TARGET)
        emit_linear(stack, form, f"layer 2, class {cls}: lane k = score_t - score_{cls} - tie + H")
        stack.binary(Opcode.OP_SUB)
        _to_lane_bytes(stack, layout)
        stack.binary(Opcode.OP_AND)
    _drop_if_unused(stack, ONES)
    stack.fetch(MASK, "argmax in every lane: no top bit was cleared")
    stack.binary(Opcode.OP_EQUAL)
    if mode == "verify":
        stack.emit(Opcode.OP_VERIFY)
        stack.items.pop()
    expected = 0 if mode == "verify" else 1
    if len(stack.items) != expected:
        raise CompileError(f"internal: {len(stack.items)} items left on the stack, expected {expected}")
    return stack.code, stack.max_items


def largest_value_bound(plan: BatchPlan, layout: LaneLayout) -> int:
    """A bound on |any number| the batch predicate computes for pixels in 0..255.

    Every value is a partial sum of some linear form over values whose lanes are bounded, so
    |value| <= C * U with C = sum |coefficient| * (largest lane of its operand): pixels have lanes
    <= 255, packed hidden values <= H - 1, U itself 1 per lane; T - S_c adds the bounds of both.
    """
    layer1 = max(
        (
            PIXEL_MAX * sum(abs(c) for c in form.terms.values()) + abs(form.bias) + layout.half
            for form in plan.hidden.values()
        ),
        default=0,
    )

    def layer2(form: LinearForm) -> int:
        return (layout.half - 1) * sum(abs(c) for c in form.terms.values()) + abs(form.bias) + layout.half

    target = layer2(plan.target)
    differences = max((target + layer2(f) for f in plan.others.values()), default=target)
    return max(layer1, differences, layout.half) * layout.ones


def compile_batch_predicate(
    model: IntegerModel,
    digit: int,
    lanes: int,
    *,
    mode: str = "standalone",
    optimise: bool = True,
    policy: Policy = DEFAULT_POLICY,
) -> CompiledBatchPredicate:
    """Compile "every one of `lanes` images classifies as `digit`" (see the module docstring)."""
    classes = model.shape[2]
    if isinstance(digit, bool) or not isinstance(digit, int | np.integer) or not 0 <= int(digit) < classes:
        raise CompileError(f"digit must be an integer in 0..{classes - 1}, got {digit!r}")
    if mode not in MODES:
        raise CompileError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if classes < 2:
        raise CompileError("a batch predicate needs at least two classes")
    digit = int(digit)
    layout = lane_layout(model, lanes)
    plan = plan_batch_network(model, digit)
    raw, max_items = emit_batch(plan, layout, mode)
    instructions = peephole.optimise(raw) if optimise else raw
    largest = largest_value_bound(plan, layout)
    largest_bytes = max(len(encode_number(largest)), layout.packed_bytes)
    constants = [abs(n) for n in (i.pushed_number() for i in instructions) if n is not None]
    stats = CompileStats(
        bytes=len(serialize(instructions)),
        instructions=len(instructions),
        opcodes=sum(1 for i in instructions if not i.is_push),
        largest_constant=max(constants, default=0),
        largest_push_bytes=max((len(i.data) for i in instructions if i.data is not None), default=0),
        largest_intermediate=largest,
        largest_intermediate_bytes=largest_bytes,
        max_stack_items=max_items,
        stack_memory_bound=max_items * (STACK_ITEM_OVERHEAD + largest_bytes),
        inputs=len(layout.input_indices),
        live_hidden_units=len(plan.hidden),
        layer1_terms=sum(len(f.terms) for f in plan.hidden.values()),
        layer2_terms=sum(len(f.terms) for f in (plan.target, *plan.others.values())),
        unoptimised_bytes=len(serialize(raw)),
    )
    compiled = CompiledBatchPredicate(
        digit=digit,
        mode=mode,
        shape=model.shape,
        input_indices=layout.input_indices,
        instructions=tuple(instructions),
        stats=stats,
        layout=layout,
    )
    try:
        policy.check_script(compiled.script, "the batch predicate")
        policy.check_number_bytes(largest_bytes, "the batch predicate's largest value")
        policy.check_stack_memory(stats.stack_memory_bound)
    except PolicyError as error:
        raise CompileError(error.reason) from None
    return compiled
