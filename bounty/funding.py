"""Moving a bounty's money: price a draft, fund and deploy its slots from the operator wallet, refund what is
unused.

Transactions are stored in the database before they are broadcast, as claims are, so a crash between the
two is finished by the sweeper (`publish_deploys`) instead of losing track of coins.

A bounty too large for one transaction is deployed by several, each spending the previous one's change. A
slot exists only once the chain has its deploy (`Slot.objects.free()`): when a later deploy is refused the
bounty goes live with the slots the chain has, and nothing (a claim, a refund, a migration) ever spends a
slot that was never created. `resume_deploy` finishes a deploy from what the chain says, building the
refused part again from the operator wallet's current coins.
"""

from __future__ import annotations

import copy
import logging

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from bounty import chain, keys
from bounty.models import Bounty, ModelVersion, Slot, Transaction
from bounty.models.bounties import ON_CHAIN
from bounty.payouts import TryLater, send
from bounty.retraining.models import MigrationStep

log = logging.getLogger(__name__)
Status = Transaction.Status


class FundingError(Exception):
    """A funding action cannot be done; the message is shown to the admin."""


def price_and_lock(bounty: Bounty) -> dict[str, int]:
    """Price a draft and lock it to this service: the fee rate configured now, the claim fee each slot
    reserves at that rate for its model and digit, and the operator's and admin's public keys its slots
    will be locked to. Returns the cost (`chain.claim_cost`: claim fee, script and claim sizes). Only a
    draft: once deployed, its price and keys are on the chain (FundingError)."""
    if bounty.state != Bounty.State.DRAFT:
        raise FundingError(f"bounty #{bounty.pk} is {bounty.state}: only a draft is priced")
    lanes = bounty.batch_lanes if bounty.is_batch else 0
    cost = chain.claim_cost(bounty.model_version, bounty.digit, settings.FEE_RATE, lanes)
    bounty.fee_rate, bounty.claim_fee = settings.FEE_RATE, cost["claim_fee"]
    bounty.operator_pubkey, bounty.admin_pubkey = chain.public_keys()
    return cost


def draft_bounty(version: ModelVersion, digit: int, slots: int, reward: int, **fields: object) -> Bounty:
    """A new draft bounty for `digit` on `version`, priced and locked (`price_and_lock`), saved."""
    bounty = Bounty(digit=digit, reward=reward, slot_count=slots, model_version=version, **fields)
    price_and_lock(bounty)
    bounty.save()
    return bounty


def fund_and_deploy(bounty: Bounty) -> list[Transaction]:
    """Build, store and broadcast the deploy transaction(s) creating the bounty's slots."""
    if bounty.state != Bounty.State.DRAFT:
        raise FundingError(f"bounty #{bounty.pk} is {bounty.state}, only a draft can be funded")
    try:
        built = chain.build_deploy(bounty)
    except chain.ContractsError as error:
        raise FundingError(str(error)) from error
    with transaction.atomic():
        won = Bounty.objects.filter(pk=bounty.pk, state=Bounty.State.DRAFT).update(
            state=Bounty.State.FUNDED, funded_at=timezone.now()
        )
        if won != 1:
            raise FundingError(f"bounty #{bounty.pk} is already being funded")
        stored = store_deploys(bounty, built)
    bounty.state = Bounty.State.FUNDED
    publish_deploys(bounty)
    bounty.refresh_from_db()
    return stored


def store_deploys(bounty: Bounty, built: list[chain.Built]) -> list[Transaction]:
    stored = []
    for deploy in built:
        tx = Transaction.objects.create(
            txid=deploy.txid,
            raw_hex=deploy.raw_hex,
            kind=Transaction.Kind.DEPLOY,
            bounty=bounty,
            fee=deploy.fee,
        )
        Slot.objects.bulk_create(
            Slot(bounty=bounty, deploy_tx=tx, vout=vout, satoshis=satoshis, lanes=bounty.lanes)
            for vout, satoshis in deploy.slots
        )
        stored.append(tx)
    return stored


def deploys(bounty: Bounty) -> QuerySet[Transaction]:
    return Transaction.objects.filter(bounty=bounty, kind=Transaction.Kind.DEPLOY).order_by("pk")


def publish_deploys(bounty: Bounty) -> bool:
    """Broadcast stored deploys in order; True once each is settled and the chain has at least one.

    A refused deploy is final: its slots never existed, and a deploy spending its change can never be
    accepted, so that one is marked failed without being sent. Once nothing waits, the bounty is active
    with the slots the chain has (`Bounty.slots_left`); `resume_deploy` builds the missing ones again.
    False while a deploy waits for the chain (the sweeper tries again) or when the chain took none."""
    refused: set[str] = set()
    for tx in deploys(bounty):
        if tx.status == Status.STORED and refused.intersection(chain.input_txids(tx.raw_hex)):
            never_sendable(tx, "it spends an output of a refused deploy")
        was = tx.status
        try:
            if send(tx):
                continue
        except TryLater:
            return False
        refused.add(tx.txid)
        if was != Status.FAILED:
            log.error("deploy %s of bounty %s refused: %s", tx.txid, bounty.pk, tx.last_error)
    if not deploys(bounty).filter(status__in=ON_CHAIN).exists():
        return False
    Bounty.objects.filter(pk=bounty.pk, state=Bounty.State.FUNDED).update(state=Bounty.State.ACTIVE)
    if Slot.objects.free().filter(bounty=bounty).exists():
        # slots rebuilt by resume_deploy reopen a bounty whose other slots were all paid
        Bounty.objects.filter(pk=bounty.pk, state=Bounty.State.EXHAUSTED).update(state=Bounty.State.ACTIVE)
    return True


def never_sendable(tx: Transaction, why: str) -> None:
    """A stored deploy that can never be accepted: failed, never sent."""
    Transaction.objects.filter(pk=tx.pk, status=Status.STORED).update(
        status=Status.FAILED, failure=Transaction.Failure.REJECTED, last_error=f"never sent: {why}"
    )
    tx.refresh_from_db()


def on_chain(tx: Transaction, state: chain.TxState) -> bool | None:
    """Whether the chain has `tx`, from its `state`: True, False (refused, lost to a competitor, or never
    seen), or None while the chain cannot tell yet (received, not yet on the network)."""
    if state in (chain.TxState.MEMPOOL, chain.TxState.MINED):
        return True
    if state is chain.TxState.PENDING:
        return None
    if state is chain.TxState.DOUBLE_SPEND:
        # contested: it holds its inputs, or a competitor does
        inputs, _ = chain.describe(tx.raw_hex)
        txid, vout, _ = inputs[0]
        return chain.spender(txid, vout) == tx.txid
    return False


def reconcile(tx: Transaction) -> None:
    """Make a deploy's status what the chain says: one it has is sent (even if it was recorded as refused),
    one it refused after first taking it has failed, and one it forgot is stored, to be sent again.
    ChainUnavailable when the chain cannot be asked."""
    if tx.status == Status.CONFIRMED:
        return
    state = chain.status(tx.txid).state
    has = on_chain(tx, state)
    if has is None:
        if tx.status == Status.FAILED:
            raise TryLater(f"the chain has not decided about deploy {tx.txid} yet")
        return
    if has and tx.status in (Status.STORED, Status.FAILED):
        log.warning("deploy %s of bounty %s is on the chain after all", tx.txid, tx.bounty_id)
        Transaction.objects.filter(pk=tx.pk).update(
            status=Status.BROADCAST, failure="", broadcast_at=tx.broadcast_at or timezone.now()
        )
    elif not has and tx.status == Status.BROADCAST and state is chain.TxState.UNKNOWN:
        Transaction.objects.filter(pk=tx.pk).update(status=Status.STORED)  # forgotten: sent again
    elif not has and tx.status == Status.BROADCAST:
        Transaction.objects.filter(pk=tx.pk).update(
            status=Status.FAILED, failure=Transaction.Failure.REJECTED
        )
    tx.refresh_from_db()


def migrating(bounty: Bounty) -> bool:
    return (
        MigrationStep.objects.filter(bounty=bounty)
        .exclude(state__in=(MigrationStep.State.DONE, MigrationStep.State.FAILED))
        .exists()
    )


def resume_deploy(bounty: Bounty) -> Transaction | None:
    """Finish a bounty's deploy from what the chain says: each deploy the chain has counts as sent (even
    one recorded as refused), stored ones are sent, and the slots of refused ones are deployed again, once,
    from the operator wallet's current coins (on the bounty's current model). Returns the new deploy, or
    None when no slot was missing. TryLater while the chain cannot be asked or a deploy waits for it."""
    if bounty.state not in (Bounty.State.FUNDED, Bounty.State.ACTIVE, Bounty.State.EXHAUSTED):
        raise FundingError(f"bounty #{bounty.pk} is {bounty.state}: there is no deploy to resume")
    if migrating(bounty):
        raise FundingError(f"bounty #{bounty.pk} is moving to another model: resume once that is done")
    try:
        for tx in deploys(bounty):
            reconcile(tx)
    except chain.ChainUnavailable as error:
        raise TryLater(f"cannot ask the chain about the deploys of bounty {bounty.pk}: {error}") from error
    publish_deploys(bounty)
    if deploys(bounty).filter(status=Status.STORED).exists():
        raise TryLater(f"a deploy of bounty {bounty.pk} is waiting for the chain")
    rebuilt = rebuild_missing(bounty)
    if rebuilt is not None:
        publish_deploys(bounty)  # a TryLater leaves it stored: resume again, it is sent, not rebuilt
        rebuilt.refresh_from_db()
    bounty.refresh_from_db()
    return rebuilt


def rebuild_missing(bounty: Bounty) -> Transaction | None:
    """Store one deploy for the slots that refused deploys never created. The bounty's row is locked while
    counting and storing, so two admins resuming at once deploy the missing slots once."""
    with transaction.atomic():
        locked = Bounty.objects.select_for_update().get(pk=bounty.pk)
        if deploys(locked).filter(status=Status.STORED).exists():
            return None  # another resume stored one first
        deployed = Slot.objects.filter(bounty=locked, deploy_tx__kind=Transaction.Kind.DEPLOY)
        missing = locked.slot_count - deployed.exclude(deploy_tx__status=Status.FAILED).count()
        if missing <= 0:
            return None
        # build_deploy funds the bounty's slot_count slots: an unsaved copy asks for the missing ones only
        part = copy.copy(locked)
        part.slot_count = missing
        try:
            built = chain.build_deploy(part)
        except chain.ChainUnavailable as error:
            raise TryLater(f"cannot read the operator wallet: {error}") from error
        except chain.ContractsError as error:
            raise FundingError(str(error)) from error
        log.warning(
            "bounty %s: deploying %d slot(s) again that a refused deploy never created", bounty.pk, missing
        )
        return store_deploys(locked, built)[0]


def settle_stored_deploys(bounty: Bounty) -> None:
    """Before a refund, a deploy still stored is decided from the chain: one the chain has counts as sent
    (its slots are refunded with the others), one it does not have is never sent now."""
    for tx in deploys(bounty).filter(status=Status.STORED):
        try:
            has = on_chain(tx, chain.status(tx.txid).state)
        except chain.ChainUnavailable as error:
            raise FundingError(f"cannot ask the chain about deploy {tx.txid}, try again: {error}") from error
        if has is None:
            raise FundingError(f"deploy {tx.txid} is not yet decided by the chain: refund once it is")
        if has:
            reconcile(tx)
        else:
            never_sendable(tx, "the bounty was refunded first")


def refund_unused(bounty: Bounty, to_address: str | None = None) -> Transaction | None:
    """Sweep every free slot the chain has back to `to_address` (default: the operator wallet) through the
    admin branch."""
    if not keys.admin_key_on_server():
        raise FundingError(
            "the admin key is kept off this server: prepare the refund for offline signing at /ops/sign/"
        )
    if migrating(bounty):
        raise FundingError(f"bounty #{bounty.pk} is moving to another model: refund once that is done")
    settle_stored_deploys(bounty)
    to_address = to_address or chain.operator_address()
    mine: list[Slot] = []
    for slot in Slot.objects.free().filter(bounty=bounty).with_txids():
        taken = Slot.objects.filter(pk=slot.pk, state=Slot.State.FREE).update(
            state=Slot.State.REFUNDED, updated=timezone.now()
        )
        if taken:
            mine.append(slot)
    Bounty.objects.filter(pk=bounty.pk).exclude(state=Bounty.State.DRAFT).update(state=Bounty.State.REFUNDED)
    if not mine:
        return None
    try:
        built = chain.build_refund(bounty, mine, to_address)
    except chain.ContractsError as error:
        Slot.objects.filter(pk__in=[s.pk for s in mine]).update(state=Slot.State.FREE)
        raise FundingError(str(error)) from error
    with transaction.atomic():
        tx = Transaction.objects.create(
            txid=built.txid, raw_hex=built.raw_hex, kind=Transaction.Kind.REFUND, bounty=bounty, fee=built.fee
        )
        Slot.objects.filter(pk__in=[s.pk for s in mine]).update(spent_by=tx)
    try:
        if not send(tx):
            Slot.objects.filter(pk__in=[s.pk for s in mine]).update(state=Slot.State.FREE, spent_by=None)
            raise FundingError(f"the refund was refused: {tx.last_error}")
    except TryLater:
        pass  # stored; the sweeper broadcasts it when the chain is back
    return tx
