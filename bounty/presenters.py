"""What the status page and its JSON endpoint show about a submission (and nothing private).

Every value is text, a number, a boolean or a list: never None, so no page can ever print "None" (or
"null" from its script). What is not known yet is an empty string.
"""

from __future__ import annotations

from django.conf import settings

from bounty.batches import decision_for
from bounty.models import Reason, Slot, Submission

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
    Submission.State.PENDING: "Not paid yet: the network read another digit; your image is kept for later.",
    Submission.State.STALLED: (
        "Accepted by the model: the network has not taken your payment yet. We are on it and will send it "
        "again; nothing is lost."
    ),
}
EXPLORERS = {
    "mainnet": "https://whatsonchain.com/tx/",
    "testnet": "https://test.whatsonchain.com/tx/",
}
NO_COST = "This cost you nothing: an image that is not paid never takes anything from your wallet."


def is_paid(submission: Submission) -> bool:
    return submission.state in (Submission.State.BROADCAST, Submission.State.CONFIRMED)


def explorer_url(txid: str) -> str:
    """Where anyone can look the transaction up: WhatsOnChain for mainnet and testnet; nothing on the
    local ledger or regtest, which no public explorer sees."""
    if not txid or settings.CHAIN_BACKEND == "local" or settings.NETWORK not in EXPLORERS:
        return ""
    return EXPLORERS[settings.NETWORK] + txid


def rejection_tip(submission: Submission) -> str:
    """One concrete thing to do next, for a rejected submission."""
    digit = submission.claimed_digit
    reason = submission.reason
    if reason == Reason.WRONG_DIGIT:
        return (
            f"Tip: draw the {digit} large, so it fills most of the box, with one firm stroke and nothing "
            "else in the picture, then submit it again."
        )
    if reason == Reason.DUPLICATE:
        return f"Tip: draw a new {digit} of your own rather than sending the same image again."
    if reason in (Reason.EXHAUSTED, Reason.CLOSED):
        return "Tip: the list of open bounties shows where your next digit can still be paid."
    if reason == Reason.RATE_LIMITED:
        return "Tip: wait an hour, then submit again."
    if reason == Reason.REVIEWER:
        return f"Tip: send a {digit} written by your own hand, on plain paper or in the box, nothing else."
    if reason == Reason.PENDING_EXPIRED:
        return f"Tip: draw the {digit} again, large and in the middle of the box; your image stays collected."
    if reason == Reason.CHAIN_REJECTED:
        return "Tip: nothing is wrong with your image; submit another one in a few minutes."
    return f"Tip: draw the {digit} again, large and in the middle of the box."


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


def block_text(submission: Submission) -> str:
    tx = submission.claim_tx if is_paid(submission) else None
    if tx is None or not tx.block_height:
        return "waiting for a block"
    plural = "" if tx.confirmations == 1 else "s"
    return f"{tx.block_height} ({tx.confirmations} confirmation{plural})"


def pending_note(submission: Submission) -> str:
    """What a pending image's contributor needs to know: it is kept, until when, and what happens then."""
    if submission.state != Submission.State.PENDING:
        return ""
    digit, bounty = submission.claimed_digit, submission.bounty
    until = submission.pending_until.strftime("%Y-%m-%d %H:%M UTC") if submission.pending_until else ""
    read = ""
    if submission.predicted_digit is not None:
        read = f"The network read it as a {submission.predicted_digit}, not a {digit}. "
    if not bounty.pay_on_learn:
        return (
            f"{read}Your image is kept until {until}: reviewers look at kept images and the genuine ones "
            "teach the next model. This bounty does not pay kept images later. Keep this link to come back."
        )
    return (
        f"{read}Your image is kept until {until}. The model is retrained on the digits people send; if a "
        f"future version reads your image as a {digit} by then, it will be paid automatically to the address "
        "you gave, while the bounty has rewards left: nothing to do. Keep this link: it is the way back to "
        "see whether it was paid."
    )


def paid_by_note(submission: Submission) -> str:
    """A paid-on-learn submission names the model version that read it as the digit."""
    version = submission.paid_by_version
    if version is None or not is_paid(submission):
        return ""
    return (
        f"Paid on learn: the network first read another digit; model version {version.name}, retrained on "
        f"digits people sent, read your image as a {submission.claimed_digit}."
    )


def batch_wait(submission: Submission) -> str:
    """For an accepted image of a batch bounty that waits for its batch: how many more images the batch
    needs, or at most how long it waits ('waiting for 3 more images or at most 42 seconds')."""
    if submission.state != Submission.State.CHECKED or not submission.bounty.is_batch:
        return ""
    batch = submission.batch_slot
    if batch is not None and batch.state == Slot.State.RESERVED:
        return "Your image is in a batch being paid now."
    waiting = decision_for(submission.bounty).status()
    return f"Your image waits for its batch of {submission.bounty.lanes}: {waiting}."


def status_payload(submission: Submission) -> dict:
    paid = is_paid(submission)
    tx = submission.claim_tx if paid else None
    rejected = submission.state == Submission.State.REJECTED
    predicted = submission.predicted_digit
    txid = tx.txid if tx else ""
    return {
        "state": submission.state,
        "paid": paid,
        # A pending image waits days for a later model: the page stops polling, the link brings it back.
        "final": submission.is_final or submission.state == Submission.State.PENDING,
        "pending": submission.state == Submission.State.PENDING,
        "pending_note": pending_note(submission),
        "batch_wait": batch_wait(submission),
        "paid_by": paid_by_note(submission),
        "rejected": rejected,
        "headline": HEADLINES[Submission.State(submission.state)],
        "reason": submission.reason_text,
        "digit": submission.claimed_digit,
        "predicted": "" if predicted is None else predicted,
        "tip": rejection_tip(submission) if rejected else "",
        "cost": NO_COST if rejected else "",
        "bars": score_bars(submission.scores, predicted),
        "txid": txid,
        "explorer_url": explorer_url(txid),
        "amount": submission.bounty.reward if tx else 0,
        "block_height": (tx.block_height or 0) if tx else 0,
        "confirmations": tx.confirmations if tx else 0,
        "block": block_text(submission),
        "steps": [
            {"state": state, "label": label, "done": step_done(submission, state)} for state, label in STEPS
        ],
    }


def step_done(submission: Submission, state: Submission.State) -> bool:
    order = [s for s, _ in STEPS]
    if submission.state == Submission.State.REJECTED:
        return state == Submission.State.RECEIVED or (
            state == Submission.State.CHECKED and submission.checked_at is not None
        )
    if submission.state == Submission.State.PENDING:
        return state == Submission.State.RECEIVED
    # Held and stalled payouts wait after the check: the steps stop there.
    waiting = (Submission.State.HELD, Submission.State.STALLED)
    current = Submission.State.CHECKED if submission.state in waiting else Submission.State(submission.state)
    return order.index(state) <= order.index(current)
