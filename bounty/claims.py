"""Storing a built claim before it is broadcast, such that bytes the network refused are never sent again.

A claim is deterministic: the same slot, image, payee and reward give the same bytes (RFC 6979 signatures).
ARC answers a transaction it already holds with the status it holds (metamorph's ProcessTransaction), so a
claim it has marked REJECTED (a node dropped it after ARC had reported it seen, say) stays REJECTED however
often those bytes are sent. A claim tried again after such a refusal is therefore built anew with the next
nLockTime: the same payment with other bytes and another txid, which ARC judges afresh. The lock time never
delays anything, since the claim's only input has a final sequence. Bytes that never reached the network
(UNREACHABLE) are sent again as they are.
"""

from __future__ import annotations

from collections.abc import Callable

from bounty import chain
from bounty.models import Bounty, Transaction

# A claim refused this many times in one go is sent once more as it is: the network refuses it again and the
# payout stalls for an admin (bounty.payouts) instead of being rebuilt without end.
MAX_REBUILDS = 64


def store_claim(bounty: Bounty, built: chain.Built, rebuild: Callable[[int], chain.Built]) -> Transaction:
    """Store the claim `built` (or, when the network refused those bytes, the first `rebuild(lock_time)`
    whose bytes it has not refused) and return its row: new, as another worker stored it, or given back to
    be sent. Runs inside the caller's database transaction. Usually one insert that a stored row makes a
    no-op, and one read; each refused lock time adds a build and another insert and read."""
    tx, lock_time = stored(bounty, built), 0
    while refused(tx) and lock_time < MAX_REBUILDS:
        lock_time += 1
        tx = stored(bounty, rebuild(lock_time))
    if tx.status == Transaction.Status.FAILED and tx.failure in (
        Transaction.Failure.REJECTED,
        Transaction.Failure.UNREACHABLE,
    ):
        # Never delivered (or refused MAX_REBUILDS times, above) with the slot left unspent: sent again.
        Transaction.objects.filter(pk=tx.pk).update(
            status=Transaction.Status.STORED, failure="", broadcast_attempts=0
        )
        tx.status, tx.failure, tx.broadcast_attempts = Transaction.Status.STORED, "", 0
    return tx


def refused(tx: Transaction) -> bool:
    return tx.status == Transaction.Status.FAILED and tx.failure == Transaction.Failure.REJECTED


def stored(bounty: Bounty, built: chain.Built) -> Transaction:
    """The row of `built`, inserted unless its txid has one (another worker's, or an earlier try's)."""
    row = Transaction(
        txid=built.txid, raw_hex=built.raw_hex, kind=Transaction.Kind.CLAIM, bounty=bounty, fee=built.fee
    )
    Transaction.objects.bulk_create([row], ignore_conflicts=True)
    return Transaction.objects.get(txid=built.txid)
