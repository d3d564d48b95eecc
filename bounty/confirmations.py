"""Following broadcast transactions into blocks: what the chain reports (a poll, or an ARC callback) moves a
transaction and the submissions it pays, and a contested or refused claim is settled by `bounty.payouts`."""

from __future__ import annotations

from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bounty import chain
from bounty.models import Submission, Transaction
from bounty.payouts import settle_claim
from bounty.queue import enqueue


def apply_status(tx: Transaction, status: chain.TxStatus) -> None:
    """Move a transaction (and the submissions it pays) along with what the chain reports, from a poll or
    an ARC callback. Idempotent, and never backwards: a late or repeated report changes nothing."""
    if status.state is chain.TxState.MINED:
        Transaction.objects.filter(pk=tx.pk).update(
            confirmations=status.confirmations, block_height=status.block_height
        )
        if status.confirmations >= settings.CONFIRMATIONS_REQUIRED:
            moved = Transaction.objects.filter(pk=tx.pk, status=Transaction.Status.BROADCAST).update(
                status=Transaction.Status.CONFIRMED, confirmed_at=timezone.now()
            )
            if moved and tx.kind == Transaction.Kind.CLAIM:
                for submission in Submission.objects.filter(claim_tx=tx, state=Submission.State.BROADCAST):
                    submission.advance(Submission.State.CONFIRMED)
        return
    if status.state is chain.TxState.UNKNOWN and tx.status == Transaction.Status.BROADCAST:
        Transaction.objects.filter(pk=tx.pk, status=Transaction.Status.BROADCAST).update(
            status=Transaction.Status.STORED
        )  # the backend forgot it: the sweeper sends it again
        return
    if not status.state.conflicted or tx.status != Transaction.Status.BROADCAST:
        return
    Transaction.objects.filter(pk=tx.pk).update(
        reject_code=status.state.value,
        competing_txids=list(status.competing_txids),
    )
    tx.refresh_from_db()
    if tx.kind != Transaction.Kind.CLAIM:
        if status.state is chain.TxState.REJECTED:
            Transaction.objects.filter(pk=tx.pk).update(
                status=Transaction.Status.FAILED, failure=Transaction.Failure.REJECTED
            )
        return
    for submission in Submission.objects.filter(claim_tx=tx).select_related("bounty"):
        if settle_claim(submission, tx, status):
            transaction.on_commit(partial(enqueue, submission.pk))


def poll_confirmations() -> int:
    """Follow broadcast transactions into blocks, and settle the contested and rejected ones; returns how
    many were confirmed now."""
    confirmed = 0
    for tx in Transaction.objects.filter(status=Transaction.Status.BROADCAST):
        status = chain.status(tx.txid)
        apply_status(tx, status)
        confirmed += int(Transaction.objects.filter(pk=tx.pk, status=Transaction.Status.CONFIRMED).exists())
    for tx in Transaction.objects.filter(status=Transaction.Status.CONFIRMED, confirmations__lt=6)[:200]:
        status = chain.status(tx.txid)
        if status.state == chain.TxState.MINED:
            Transaction.objects.filter(pk=tx.pk).update(confirmations=status.confirmations)
    # A submission that reached "broadcast" after its claim was confirmed (a worker moved it, or a batch's
    # other members, just after the poll above confirmed the transaction) follows its claim now.
    late = Submission.objects.filter(
        state=Submission.State.BROADCAST, claim_tx__status=Transaction.Status.CONFIRMED
    )
    for submission in late:
        submission.advance(Submission.State.CONFIRMED)
    return confirmed
