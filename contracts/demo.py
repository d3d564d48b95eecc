"""The end-to-end demo on a local ledger: fund, deploy a bounty, claim with real images, refund the rest.

`run_demo` takes a model and labelled images as plain arrays (the library stays independent of `classifier`);
the `python -m contracts demo` command loads MNIST and the default model through `classifier` and calls it.
Images the model classifies as the target are paid; the others are refused by the builder's interpreter run
and, submitted anyway, by the ledger. Each step is reported with txids, sizes and fees.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from contracts.chain import Utxo
from contracts.errors import TransactionRejected, VerificationError
from contracts.fees import FeeRate
from contracts.keys import Key
from contracts.ledger import LocalLedger
from contracts.model import IntegerModel
from contracts.refunds import build_refund
from contracts.slot import SlotContract
from contracts.transactions import BuiltTransaction, assemble_claim, build_claim, build_deploy


@dataclass
class DemoReport:
    digit: int
    steps: list[dict[str, Any]] = field(default_factory=list)

    def add(self, step: str, **facts: Any) -> dict[str, Any]:
        entry = {"step": step, **facts}
        self.steps.append(entry)
        return entry

    def to_json(self) -> dict[str, Any]:
        paid = [s for s in self.steps if s["step"] == "claim" and s["accepted"]]
        refused = [s for s in self.steps if s["step"] == "claim" and not s["accepted"]]
        return {"digit": self.digit, "paid": len(paid), "refused": len(refused), "steps": self.steps}


def describe(built: BuiltTransaction) -> dict[str, Any]:
    return {"txid": built.txid, "bytes": built.size, "fee": built.fee}


def parse_payout(claim: BuiltTransaction) -> int:
    return claim.outputs()[0].satoshis


def run_demo(
    ledger: LocalLedger,
    model: IntegerModel,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    digit: int,
    slots: int = 4,
    reward: int = 1_000,
    wrong_images: int = 2,
    fee_rate: FeeRate | None = None,
    say: Callable[[str], None] = print,
) -> DemoReport:
    """Run the whole life of a bounty on `ledger`. `images` are flat (n, 784) uint8 with true `labels`."""
    if slots < 2:
        raise ValueError("the demo needs at least 2 slots: some to claim and one to refund")
    rate = fee_rate or ledger.fee_rate
    report = DemoReport(digit)
    funder, operator, admin, contributor = (Key.generate("regtest") for _ in range(4))
    contract = SlotContract.from_model(model, digit, operator.public_key, admin.public_key)
    say(f"bounty: digit {digit}, {slots} slots of {reward} sat + {contract.claim_fee(rate)} sat claim fee")
    say(
        f"  slot script {len(contract.locking_script):,} bytes; "
        f"worst claim {contract.max_claim_tx_bytes:,} bytes"
    )

    funding = (
        slots * contract.slot_value(reward, rate) + rate.fee_for(slots * contract.slot_output_bytes) + 5_000
    )
    faucet = ledger.fund(funder.address, funding)
    report.add("fund", txid=faucet, satoshis=funding, address=funder.address)
    say(f"fund   {faucet}  {funding:,} sat -> {funder.address}")

    deploys = build_deploy(contract, reward, slots, ledger.utxos(funder.address), funder, fee_rate=rate)
    slot_utxos: list[Utxo] = []
    for deploy in deploys:
        ledger.broadcast(deploy.raw)
        slot_utxos.extend(deploy.slots)
        report.add("deploy", slots=len(deploy.slots), **describe(deploy))
        say(f"deploy {deploy.txid}  {deploy.size:,} bytes, fee {deploy.fee} sat, {len(deploy.slots)} slots")
    ledger.mine()

    predictions = np.array([int(model.predict(image)) for image in images])
    matching = images[(predictions == digit) & (labels == digit)][: slots - 1]
    others = images[predictions != digit][:wrong_images]
    free = list(slot_utxos)
    for image in matching:
        slot = free.pop(0)
        claim = build_claim(slot, contract, image, contributor.address, operator, fee_rate=rate)
        ledger.broadcast(claim.raw)
        report.add(
            "claim", accepted=True, paid=claim.check.size and slot.satoshis - claim.fee, **describe(claim)
        )
        say(f"claim  {claim.txid}  {claim.size:,} bytes, fee {claim.fee} sat: paid {parse_payout(claim)} sat")
    for image in others:
        slot = free[0]
        seen_as = int(model.predict(image))
        try:
            build_claim(slot, contract, image, contributor.address, operator, fee_rate=rate)
            raise AssertionError("the builder accepted an image of the wrong class")  # pragma: no cover
        except VerificationError as error:
            builder_reason = error.reason
        payout = slot.satoshis - contract.claim_fee(rate)
        forced = assemble_claim(slot, contract, image, contributor.address, operator, payout=payout)
        try:
            ledger.broadcast(forced.serialize())
            ledger_reason = "accepted?!"  # pragma: no cover
        except TransactionRejected as error:
            ledger_reason = f"{error.code} {error}"
        report.add("claim", accepted=False, seen_as=seen_as, builder=builder_reason, ledger=ledger_reason)
        say(
            f"claim  refused: the network reads it as {seen_as}; "
            f"builder: {builder_reason}; ledger: {ledger_reason}"
        )

    if free:
        refund = build_refund(free, admin, admin.address, fee_rate=rate)
        ledger.broadcast(refund.raw)
        report.add("refund", slots=len(free), **describe(refund))
        say(f"refund {refund.txid}  {len(free)} slots -> {admin.address}, fee {refund.fee} sat")
    height = ledger.mine()[-1]
    paid = sum(u.satoshis for u in ledger.utxos(contributor.address))
    report.add("mine", height=height, contributor_balance=paid)
    say(f"mined block {height}; contributor {contributor.address} holds {paid:,} sat")
    return report


def load_demo_inputs(model_path: Path | None) -> tuple[IntegerModel, np.ndarray, np.ndarray]:
    """The default model and the MNIST test set, through `classifier` (glue for the CLI only)."""
    from classifier.data import load_mnist

    path = model_path or Path(__file__).resolve().parent.parent / "classifier" / "models" / "default.npz"
    if not path.exists():
        raise FileNotFoundError(f"no model at {path}: run `make model` or pass --model PATH")
    model = IntegerModel.load(path)
    mnist = load_mnist()
    return model, mnist.x_test.reshape(len(mnist.x_test), -1), mnist.y_test
