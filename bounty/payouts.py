"""Broadcasting stored transactions and settling what the chain says about a claim: paid exactly once.

A claim can end in more ways than "accepted" and "refused". ARC reports a conflicting spend with HTTP 200
(DOUBLE_SPEND_ATTEMPTED, SEEN_IN_ORPHAN_MEMPOOL), a transaction first seen can later be REJECTED, and a
competitor of our claim may be a copy of it with one unlocking push changed, which pays the same contributor
(unlocking scripts are not signed). So when a claim is contested or refused, `settle_claim` asks the chain
who holds the slot's output and decides from that, never from message text:

- our claim holds it: still the payment;
- a transaction that pays this submission's address the reward holds it: that transaction is the payment
  (recorded as the submission's claim; never paid again);
- a transaction that pays someone else holds it: once that is final (it is mined, or ours was rejected), the
  slot is retired and the submission goes back to "checked" to be paid from another slot; until then it waits;
- nobody holds it and ours was rejected: the claim is rebuilt from the same slot as new bytes
  (`bounty.claims`), at most CLAIM_MAX_ATTEMPTS times, then the submission is "stalled" for an admin, who
  retries it or gives it up, and the slot is free again.

A broadcast that keeps failing transiently stalls after BROADCAST_MAX_ATTEMPTS with the slot reconciled from
the chain the same way.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bounty import chain
from bounty.faults import fault_point
from bounty.models import Reason, Slot, Submission, Transaction

log = logging.getLogger(__name__)


class TryLater(Exception):
    """A transient failure (the chain backend unreachable); the task is retried and the sweeper catches it."""


# Parents read from the database, by txid, kept per process: a claim's parent is its slot's deploy
# transaction, megabytes for a bounty of a few hundred slots, the same for every claim of that bounty. A txid
# names its bytes, so a kept parent is never stale; only the bytes kept are bounded.
PARENTS_KEPT_BYTES = 64 * 1024 * 1024
_parents: OrderedDict[str, bytes] = OrderedDict()
_parents_lock = threading.Lock()


def parents_of(tx: Transaction) -> dict[str, bytes]:
    """The transactions `tx` spends that we built ourselves (txid -> raw), so ARC can be sent Extended
    Format; each is read from the database once per process while it stays among the most recent."""
    txids = chain.input_txids(tx.raw_hex)
    with _parents_lock:
        found = {txid: _parents[txid] for txid in txids if txid in _parents}
        for txid in found:
            _parents.move_to_end(txid)
    missing = [txid for txid in txids if txid not in found]
    if missing:
        read = Transaction.objects.filter(txid__in=missing).values_list("txid", "raw_hex")
        fresh = {txid: bytes.fromhex(raw_hex) for txid, raw_hex in read}
        found.update(fresh)
        with _parents_lock:
            _parents.update(fresh)
            kept = sum(len(raw) for raw in _parents.values())
            while kept > PARENTS_KEPT_BYTES and len(_parents) > 1:
                kept -= len(_parents.popitem(last=False)[1])
    return found


def record_failure(
    tx: Transaction, failure: str, error: BaseException, code: str = "", **fields: object
) -> None:
    changes = {"failure": failure, "reject_code": code, "last_error": str(error)[:2000], **fields}
    Transaction.objects.filter(pk=tx.pk).update(**changes)
    for name, value in changes.items():
        setattr(tx, name, value)


def send(tx: Transaction) -> bool:
    """Broadcast a stored transaction. True once the chain has it; False when it was refused or lost to a
    competitor (`tx.failure` says which; a contested claim stays `broadcast` and is settled by
    `settle_claim`); TryLater when the backend is unreachable."""
    if tx.status in (Transaction.Status.BROADCAST, Transaction.Status.CONFIRMED):
        return True
    if tx.status == Transaction.Status.FAILED:
        return False
    count_attempt(tx)
    try:
        chain.broadcast(tx.raw_hex, parents_of(tx))
    except chain.ChainError as error:
        return record_outcome(tx, error)
    fault_point("broadcast_sent")
    return record_outcome(tx, None)


def send_many(txs: list[Transaction]) -> int:
    """Broadcast stored transactions in one request (the sweeper's resends); returns how many the chain
    has now. TryLater when the backend cannot be reached at all."""
    pending = [tx for tx in txs if tx.status == Transaction.Status.STORED]
    if not pending:
        return 0
    parents: dict[str, bytes] = {}
    for tx in pending:
        count_attempt(tx)
        parents.update(parents_of(tx))
    try:
        results = chain.broadcast_many([tx.raw_hex for tx in pending], parents)
    except chain.ChainUnavailable as error:
        raise TryLater(str(error)) from error
    accepted = 0
    for tx, result in zip(pending, results, strict=True):
        try:
            accepted += int(record_outcome(tx, None if isinstance(result, str) else result))
        except TryLater:
            continue  # this one was answered "busy": the next sweep sends it again
    return accepted


def count_attempt(tx: Transaction) -> None:
    attempts = tx.broadcast_attempts + 1
    Transaction.objects.filter(pk=tx.pk).update(broadcast_attempts=attempts)
    tx.broadcast_attempts = attempts


def record_outcome(tx: Transaction, error: chain.ChainError | None) -> bool:
    """Store what a broadcast came to, by its type: True when the chain has the transaction (a contested
    claim included: ARC keeps it and it may still win), False when refused or lost, TryLater if transient."""
    if error is None:
        # Usually one update: a stored claim with no failure on record is now broadcast, its transient
        # errors cleared. Otherwise the two parts apart (a failure on record keeps its message).
        sent = Transaction.objects.filter(pk=tx.pk, status=Transaction.Status.STORED, failure="").update(
            status=Transaction.Status.BROADCAST, broadcast_at=timezone.now(), last_error=""
        )
        if not sent:
            mark_broadcast(tx)
            Transaction.objects.filter(pk=tx.pk, failure="").update(last_error="")
        tx.status = Transaction.Status.BROADCAST
        return True
    if isinstance(error, chain.DoubleSpend):
        record_failure(
            tx,
            Transaction.Failure.DOUBLE_SPEND,
            error,
            error.code or "",
            competing_txids=list(error.competing_txids),
        )
        if tx.kind == Transaction.Kind.CLAIM:
            mark_broadcast(tx)
            return True
        return fail(tx)
    if error.permanent:
        record_failure(tx, Transaction.Failure.REJECTED, error, error.code or "")
        return fail(tx)
    Transaction.objects.filter(pk=tx.pk).update(last_error=str(error)[:2000])
    raise TryLater(str(error)) from error


def mark_broadcast(tx: Transaction) -> None:
    Transaction.objects.filter(pk=tx.pk, status=Transaction.Status.STORED).update(
        status=Transaction.Status.BROADCAST, broadcast_at=timezone.now()
    )
    tx.status = Transaction.Status.BROADCAST


def fail(tx: Transaction) -> bool:
    Transaction.objects.filter(pk=tx.pk).update(status=Transaction.Status.FAILED)
    tx.status = Transaction.Status.FAILED
    return False


def claim_slot(submission: Submission, tx: Transaction) -> Slot | None:
    slot = (
        Slot.objects.filter(submission=submission).with_txids().first()
        or Slot.objects.filter(spent_by=tx).with_txids().first()
    )
    if slot is None and submission.batch_slot_id is not None:
        # a batch member other than the first: the slot its batch is claimed from
        slot = Slot.objects.filter(pk=submission.batch_slot_id).with_txids().first()
    if slot is None and submission.state == Submission.State.STALLED:
        # A stalled payout's slot was freed: found again by the output its claim spends, while nobody else
        # holds it, so an admin's retry or giving up still asks the chain about that output first.
        txid, vout, _ = chain.describe(tx.raw_hex)[0][0]  # a claim spends its slot alone
        slot = (
            Slot.objects.filter(deploy_tx__txid=txid, vout=vout, state=Slot.State.FREE).with_txids().first()
        )
    return slot


def batch_of(submission: Submission, tx: Transaction) -> list[Submission]:
    """The members of the batch claim `tx` that `submission` belongs to, output order ([] for a single)."""
    if submission.batch_slot_id is None:
        return []
    return list(
        Submission.objects.filter(claim_tx=tx, batch_slot=submission.batch_slot_id).order_by("claim_output")
    )


def pays_submission(submission: Submission, tx: Transaction, raw: str, outpoint: tuple[str, int]) -> bool:
    """Whether `raw` spends the slot and pays this submission: for a batch member, whether it pays every
    member of its batch (a copy of the batch claim pays all of them or it is not the batch's payment)."""
    reward = submission.bounty.reward
    members = batch_of(submission, tx)
    if members:
        return chain.pays_members(raw, outpoint, [m.payout_address for m in members], reward)
    return chain.pays(raw, outpoint, submission.payout_address, reward)


def settle_claim(submission: Submission, tx: Transaction, ours: chain.TxStatus | None = None) -> bool:
    """Decide what the chain's view means for a contested, refused or stalled claim (see the module
    docstring). Returns True when the submission went back to "checked" and should be processed again.
    TryLater when the chain cannot be asked."""
    if submission.batch_slot_id is not None:
        # A batch is settled as a whole through any of its members: a caller holding a member as it was
        # before that (the poller's loop over the claim's members) leaves it to whoever moved it since,
        # since its view of the claim (a refusal, say) may be older than the batch's rebuilt claim.
        seen = (submission.state, submission.claim_tx_id)
        submission.refresh_from_db()
        if (submission.state, submission.claim_tx_id) != seen or submission.claim_tx_id != tx.pk:
            return False
    slot = claim_slot(submission, tx)
    if slot is None:
        return False
    outpoint = (slot.deploy_txid, slot.vout)
    try:
        ours = ours or chain.status(tx.txid)
        holder = chain.spender(*outpoint)
        if holder == tx.txid:
            adopt(submission, slot, tx, ours)
            return False
        candidates = [holder] if holder else []
        candidates += [
            txid for txid in (*ours.competing_txids, *tx.competing_txids) if txid not in candidates
        ]
        for txid in candidates:
            if txid == tx.txid:
                continue
            try:
                raw = chain.get_transaction(txid)
            except chain.TransactionNotFound:
                continue  # a competitor only ARC has seen; the spend lookup will name it once it lands
            if pays_submission(submission, tx, raw, outpoint):
                paid_by_competitor(submission, slot, tx, txid, raw)
                return False
        if holder is not None:
            final = ours.state in (chain.TxState.REJECTED, chain.TxState.ORPHAN) or (
                chain.status(holder).state is chain.TxState.MINED
            )
            if final:
                lost_to_someone_else(submission, slot, tx, holder)
                return True
            return False  # contested: the next block decides
        refused = tx.failure in (Transaction.Failure.REJECTED, Transaction.Failure.UNREACHABLE)
        if (ours.state is chain.TxState.REJECTED or refused) and submission.batch_slot_id is not None:
            return refused_batch(submission, slot, tx)
        if ours.state is chain.TxState.REJECTED or refused:
            return refused_with_slot_unspent(submission, slot, tx)
        if ours.state in (chain.TxState.MEMPOOL, chain.TxState.MINED, chain.TxState.PENDING):
            adopt(submission, slot, tx, ours)
        return False
    except chain.ChainUnavailable as error:
        raise TryLater(f"cannot settle the claim of submission {submission.pk}: {error}") from error


def adopt(submission: Submission, slot: Slot, tx: Transaction, status: chain.TxStatus) -> None:
    """`tx` holds the slot's output: it is the submission's payment (again, if it had been given up)."""
    with transaction.atomic():
        Transaction.objects.filter(
            pk=tx.pk, status__in=(Transaction.Status.STORED, Transaction.Status.FAILED)
        ).update(status=Transaction.Status.BROADCAST, broadcast_at=timezone.now())
        # A batch slot stays held for its batch's first member; each member points at it by batch_slot.
        holder = {} if submission.batch_slot_id == slot.pk else {"submission": submission}
        Slot.objects.filter(pk=slot.pk).update(
            state=Slot.State.CLAIMED, spent_by=tx, updated=timezone.now(), **holder
        )
        if submission.claim_tx_id != tx.pk:
            Submission.objects.filter(pk=submission.pk).update(claim_tx=tx)
        if submission.state in (Submission.State.VERIFIED, Submission.State.STALLED):
            submission.advance(Submission.State.BROADCAST, claim_tx=tx)


def paid_by_competitor(submission: Submission, slot: Slot, ours: Transaction, txid: str, raw: str) -> None:
    """A transaction we did not broadcast (a malleated copy of our claim) pays this submission: record it as
    the payment; ours is superseded. Paid once."""
    log.warning("submission %s is paid by %s, a competitor of its claim %s", submission.pk, txid, ours.txid)
    with transaction.atomic():
        payment, _ = Transaction.objects.get_or_create(
            txid=txid,
            defaults={
                "raw_hex": raw,
                "kind": Transaction.Kind.CLAIM,
                "bounty": submission.bounty,
                "status": Transaction.Status.BROADCAST,
                "broadcast_at": timezone.now(),
                "built_here": False,
                "last_error": f"a copy of claim {ours.txid} that pays the same contributor",
            },
        )
        if ours.pk != payment.pk:
            Transaction.objects.filter(pk=ours.pk).update(
                status=Transaction.Status.FAILED,
                failure=Transaction.Failure.DOUBLE_SPEND,
                competing_txids=[txid],
            )
        adopt(submission, slot, payment, chain.TxStatus(txid, chain.TxState.MEMPOOL))
        for member in batch_of(submission, ours):  # it pays every member of the batch: all move with it
            adopt(member, slot, payment, chain.TxStatus(txid, chain.TxState.MEMPOOL))


def lost_to_someone_else(submission: Submission, slot: Slot, ours: Transaction, holder: str) -> None:
    """The slot's output is finally spent by a transaction that does not pay this submission: retire the
    slot and send the submission back to find another one. Our claim can no longer be mined."""
    log.warning(
        "slot %s of submission %s is spent by %s; paying from another slot", slot, submission.pk, holder
    )
    members = batch_of(submission, ours)  # a batch looks for another slot as a whole
    with transaction.atomic():
        Transaction.objects.filter(pk=ours.pk).update(
            status=Transaction.Status.FAILED, failure=Transaction.Failure.DOUBLE_SPEND
        )
        slot.mark_spent_elsewhere()
        another_try(submission)
        for member in members:
            another_try(member)
    stalled_holder_paid(holder)


def refused_with_slot_unspent(submission: Submission, slot: Slot, ours: Transaction) -> bool:
    """The network refused our claim and nothing spends the slot: build the claim again from the same slot,
    unless that has happened too often (then an admin looks: "stalled", and the slot is free again).

    While the claim is tried again the slot stays the submission's: should a refused claim reach a block
    after all (a node kept it), it and the next one spend one output, so at most one of them pays, and both
    pay this submission. A stalled payout waits for a person, so it holds no slot meanwhile: a redeployment
    waits for reserved slots, and the money stays refundable."""
    if submission.state == Submission.State.STALLED:
        return False  # settled so before; asked again by an admin's retry, which decides what follows
    with transaction.atomic():
        failure = ours.failure or Transaction.Failure.REJECTED
        Transaction.objects.filter(pk=ours.pk).update(status=Transaction.Status.FAILED, failure=failure)
        attempts = submission.payout_attempts + 1
        Submission.objects.filter(pk=submission.pk).update(payout_attempts=attempts)
        submission.payout_attempts = attempts
        if attempts >= settings.CLAIM_MAX_ATTEMPTS or ours.failure == Transaction.Failure.UNREACHABLE:
            slot.release()
            detail = f"claim {ours.txid[:16]}… not accepted: {ours.failure or 'rejected'} {ours.reject_code}"
            submission.advance(Submission.State.STALLED, reason_detail=detail.strip()[:300])
            return False
        if slot.submission_id == submission.pk:
            slot.hold_for_another_claim()
        else:
            slot.release()
        return another_try(submission)


def another_try(submission: Submission) -> bool:
    if submission.state in (Submission.State.VERIFIED, Submission.State.BROADCAST, Submission.State.STALLED):
        return submission.advance(Submission.State.CHECKED, claim_tx=None, batch_slot=None, claim_output=None)
    return False


def refused_batch(submission: Submission, slot: Slot, ours: Transaction) -> bool:
    """The network refused a batch claim and nothing spends its slot: the whole batch is settled at once
    (its slot is freed, so no member may keep pointing at it). Each member's image is checked alone in the
    VM; offenders are rejected and the others go back to "checked", to be claimed in a new batch without
    them. An attempt counts against the members only when no offender explains the refusal."""
    members = batch_of(submission, ours) or [submission]
    entries = [chain.BatchMember(m.pk, m.pixel_bytes, m.payout_address) for m in members]
    offenders = set(chain.batch_offenders(submission.bounty, slot, entries))
    log.warning("batch claim %s refused; offenders %s", ours.txid, sorted(offenders))
    with transaction.atomic():
        failure = ours.failure or Transaction.Failure.REJECTED
        Transaction.objects.filter(pk=ours.pk).update(status=Transaction.Status.FAILED, failure=failure)
        for member in members:
            if member.pk in offenders:
                detail = "the script refused it when its refused batch was checked image by image"
                member.advance(Submission.State.REJECTED, reason=Reason.WRONG_DIGIT, reason_detail=detail,
                               batch_slot=None, claim_tx=None)  # fmt: skip
                continue
            attempts = member.payout_attempts + (0 if offenders else 1)
            Submission.objects.filter(pk=member.pk).update(payout_attempts=attempts)
            member.payout_attempts = attempts
            if attempts >= settings.CLAIM_MAX_ATTEMPTS or ours.failure == Transaction.Failure.UNREACHABLE:
                detail = f"batch claim {ours.txid[:16]}… not accepted: {failure} {ours.reject_code}"
                member.advance(Submission.State.STALLED, reason_detail=detail.strip()[:300], batch_slot=None)
            else:
                another_try(member)
        slot.release()
    submission.refresh_from_db()
    return submission.state == Submission.State.CHECKED


def stalled_holder_paid(holder: str) -> None:
    """A claim of ours given up earlier (stalled) that the chain now holds: its submission is paid by it."""
    for submission in Submission.objects.filter(claim_tx__txid=holder, state=Submission.State.STALLED):
        tx = Transaction.objects.get(txid=holder)
        slot = claim_slot(submission, tx)
        if slot is not None:
            adopt(submission, slot, tx, chain.TxStatus(holder, chain.TxState.MEMPOOL))


def retry_stalled(submission: Submission) -> bool:
    """An admin retries a stalled payout: first ask the chain whether its last claim landed after all (then
    it is paid), otherwise back to "checked" with a fresh count of attempts. True: process it again."""
    if not still_stalled(submission):
        return False
    Submission.objects.filter(pk=submission.pk).update(payout_attempts=0)
    slot = Slot.objects.filter(submission=submission).first()
    if slot is not None:
        slot.release()
    return submission.advance(Submission.State.CHECKED, claim_tx=None, batch_slot=None, claim_output=None)


def give_up_stalled(submission: Submission) -> bool:
    """An admin stops trying to pay a stalled submission: first ask the chain whether its last claim landed
    after all (then it is paid, not given up); otherwise rejected as refused by the network, and its slot
    free again. True when it was rejected."""
    if not still_stalled(submission):
        return False
    log.warning("the payout of submission %s is given up by an admin", submission.pk)
    if not submission.reject(Reason.CHAIN_REJECTED, "the payout was given up by an admin"):
        return False
    Slot.release_reserved_by(submission.pk)
    return True


def still_stalled(submission: Submission) -> bool:
    """What an admin's action on a stalled payout asks first: did its last claim land after all (then it is
    settled as paid)? True if the submission is still stalled."""
    tx = submission.claim_tx
    if tx is not None:
        settle_claim(submission, tx)
        submission.refresh_from_db()
    return submission.state == Submission.State.STALLED


def give_up_broadcasting(submission: Submission, tx: Transaction) -> bool:
    """BROADCAST_MAX_ATTEMPTS transient failures: reconcile the slot from the chain and stop for an admin."""
    record_failure(tx, Transaction.Failure.UNREACHABLE, Exception(tx.last_error or "unreachable"))
    return settle_claim(submission, tx, chain.TxStatus(tx.txid, chain.TxState.UNKNOWN))
