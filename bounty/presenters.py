"""What the status page and its JSON endpoint show about a submission (and nothing private)."""

from __future__ import annotations

from bounty.models import Submission

STEPS = [
    (Submission.State.RECEIVED, "Received"),
    (Submission.State.CHECKED, "Checked"),
    (Submission.State.VERIFIED, "Verified"),
    (Submission.State.BROADCAST, "Paid (broadcast)"),
    (Submission.State.CONFIRMED, "Confirmed"),
]
HEADLINES = {
    Submission.State.RECEIVED: "Received: waiting for the network to look at your digit…",
    Submission.State.CHECKED: "Accepted by the model: preparing your payment…",
    Submission.State.HELD: "Accepted by the model: your payment is waiting for a quick review.",
    Submission.State.VERIFIED: "Payment transaction built and verified: sending it…",
    Submission.State.BROADCAST: "Paid! The payment is on its way (waiting for a block).",
    Submission.State.CONFIRMED: "Paid and confirmed in a block.",
    Submission.State.REJECTED: "Not paid.",
}


def is_paid(submission: Submission) -> bool:
    return submission.state in (Submission.State.BROADCAST, Submission.State.CONFIRMED)


def score_bars(scores: list[int] | None, predicted: int | None) -> list[dict]:
    if not scores:
        return []
    low, high = min(scores), max(scores)
    span = max(high - low, 1)
    return [
        {
            "digit": digit,
            "score": int(score),
            "width": round(4 + 96 * (score - low) / span),
            "top": digit == predicted,
        }
        for digit, score in enumerate(scores)
    ]


def status_payload(submission: Submission) -> dict:
    tx = submission.claim_tx if is_paid(submission) else None
    slot_value = None
    if tx is not None:
        slot_value = submission.bounty.reward
    return {
        "state": submission.state,
        "paid": is_paid(submission),
        "final": submission.is_final,
        "headline": HEADLINES[submission.state],
        "reason": submission.reason_text,
        "digit": submission.claimed_digit,
        "predicted": submission.predicted_digit,
        "bars": score_bars(submission.scores, submission.predicted_digit),
        "txid": tx.txid if tx else None,
        "amount": slot_value,
        "block_height": tx.block_height if tx else None,
        "confirmations": tx.confirmations if tx else 0,
        "steps": [
            {"state": state, "label": label, "done": step_done(submission, state)} for state, label in STEPS
        ],
    }


def step_done(submission: Submission, state: str) -> bool:
    order = [s for s, _ in STEPS]
    if submission.state == Submission.State.REJECTED:
        return state == Submission.State.RECEIVED or (
            state == Submission.State.CHECKED and submission.checked_at is not None
        )
    current = Submission.State.CHECKED if submission.state == Submission.State.HELD else submission.state
    return order.index(state) <= order.index(current)
