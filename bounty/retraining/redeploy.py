"""Redeployment: move every active bounty's free slots to the target model through the admin branch.

Each bounty is one MigrationStep whose state is written before the work it allows, so a crash anywhere is
finished by running `resume()` again, never by guessing: slots are taken by conditional updates, migration
transactions are stored before they are broadcast and rebroadcast by txid (the chain answers "already
known"), and new slots are recorded with get-or-create on their outpoint. Slots reserved by a claim in flight
are left alone: the bounty is paused for new claims and the step waits until those claims finish.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bounty import chain, keys
from bounty.models import Bounty, ModelVersion, Slot, Transaction
from bounty.pipeline import TryLater, send
from bounty.retraining.models import MigrationStep, Redeployment, RetrainingRun
from contracts.chain import Utxo
from contracts.errors import ChainError, ContractsError
from contracts.fees import FeeRate
from contracts.transactions import build_migration, migration_slots_per_transaction

log = logging.getLogger(__name__)
Step = MigrationStep.State
FINAL = (Step.DONE, Step.FAILED)


def start(target: ModelVersion, kind: str, reason: str, run: RetrainingRun | None = None) -> Redeployment:
    """Make `target` the active version and open a redeployment to it (a rollback names an older one)."""
    with transaction.atomic():
        previous = ModelVersion.active()
        target.activate()
        return Redeployment.objects.create(
            target=target, previous=previous, kind=kind, reason=reason, run=run
        )


def resume() -> list[Redeployment]:
    """Advance every unfinished redeployment, oldest first; returns those still running."""
    running = []
    for redeployment in Redeployment.objects.filter(state=Redeployment.State.RUNNING).order_by("pk"):
        if not process(redeployment):
            running.append(redeployment)
    return running


def process(redeployment: Redeployment) -> bool:
    """Advance each bounty's step as far as it goes now; True once all are final."""
    target = redeployment.target
    superseded = ModelVersion.active() != target
    if not superseded:
        bounties = Bounty.objects.filter(state=Bounty.State.ACTIVE).exclude(model_version=target)
        for bounty in bounties:
            MigrationStep.objects.get_or_create(
                redeployment=redeployment, bounty=bounty, defaults={"from_version": bounty.model_version}
            )
    for step in redeployment.steps.exclude(state__in=FINAL).select_related("bounty", "from_version"):
        if superseded and step.state in (Step.PENDING, Step.DRAINING):
            abandon(step, "superseded: another version became active before this bounty moved")
            continue
        try:
            advance(step, target)
        except TryLater as error:
            MigrationStep.objects.filter(pk=step.pk).update(detail=f"waiting for the chain: {error}"[:2000])
    if redeployment.steps.exclude(state__in=FINAL).exists():
        return False
    Redeployment.objects.filter(pk=redeployment.pk, state=Redeployment.State.RUNNING).update(
        state=Redeployment.State.DONE, finished=timezone.now()
    )
    return True


def advance(step: MigrationStep, target: ModelVersion) -> None:
    if step.state == Step.PENDING:
        pause(step)
    if step.state == Step.DRAINING:
        take(step)
    if step.state == Step.TAKEN:
        store(step, target)
    if step.state == Step.STORED:
        broadcast(step)
    if step.state == Step.BROADCAST:
        complete(step, target)


def pause(step: MigrationStep) -> None:
    """Stop new claims on the bounty, remembering whether its funder had paused it already."""
    with transaction.atomic():
        paused = Bounty.objects.values_list("paused", flat=True).get(pk=step.bounty_id)
        if step.advance(Step.PENDING, Step.DRAINING, was_paused=paused):
            Bounty.objects.filter(pk=step.bounty_id).update(paused=True)
        else:
            step.refresh_from_db()


def take(step: MigrationStep) -> None:
    """Mark every free slot as spent by this step, once no claim holds a reserved slot."""
    with transaction.atomic():
        reserved = Slot.objects.filter(bounty_id=step.bounty_id, state=Slot.State.RESERVED).count()
        if reserved:
            MigrationStep.objects.filter(pk=step.pk).update(
                detail=f"waiting for {reserved} claim(s) in flight to finish", updated=timezone.now()
            )
            return
        ids = list(
            Slot.objects.filter(bounty_id=step.bounty_id, state=Slot.State.FREE)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        taken = Slot.objects.filter(pk__in=ids, state=Slot.State.FREE).update(
            state=Slot.State.REFUNDED, updated=timezone.now()
        )
        if taken != len(ids) or not step.advance(Step.DRAINING, Step.TAKEN, slot_ids=ids, detail=""):
            transaction.set_rollback(True)  # a claim or another worker got there first: try again later
            step.refresh_from_db()


def contracts_for(step: MigrationStep, target: ModelVersion):  # type: ignore[no-untyped-def]
    bounty = step.bounty
    old = chain.slot_contract(
        step.from_version.artifact, bounty.digit, bounty.operator_pubkey, bounty.admin_pubkey
    )
    new = chain.slot_contract(target.artifact, bounty.digit, bounty.operator_pubkey, bounty.admin_pubkey)
    return old, new


def store(step: MigrationStep, target: ModelVersion) -> None:
    """Build and verify the migration transaction(s) and store them before any broadcast."""
    bounty = step.bounty
    slots = list(Slot.objects.filter(pk__in=step.slot_ids).select_related("deploy_tx").order_by("pk"))
    if not slots:
        step.advance(Step.TAKEN, Step.BROADCAST) or step.refresh_from_db()
        return
    old, new = contracts_for(step, target)
    operator, admin = keys.operator_key(), keys.admin_key()
    rate = FeeRate(bounty.fee_rate)
    chunk = migration_slots_per_transaction(new)
    built = []
    try:
        funding = chain.backend().utxos(operator.address)
        for start_at in range(0, len(slots), chunk):
            group = slots[start_at : start_at + chunk]
            utxos = [Utxo(s.deploy_tx.txid, s.vout, s.satoshis, old.locking_script) for s in group]
            # A slot holds reward + claim fee; writing a new slot's script costs more than that in fee, so
            # the operator wallet tops each migration up and every free slot becomes exactly one new slot.
            tx = build_migration(
                utxos, admin, new, bounty.reward, operator.address, fee_rate=rate,
                funding=(funding, operator), network=settings.NETWORK,
            )  # fmt: skip
            built.append((tx, group))
            used = {(u.txid, u.vout) for u in tx.spent}
            funding = [c for c in funding if (c.txid, c.vout) not in used]
            outputs = tx.outputs()
            if len(outputs) > len(group):
                funding.append(outputs[len(group)])  # the change, spendable unconfirmed by the next one
    except ChainError as error:
        if not error.permanent:
            raise TryLater(str(error)) from error
        give_back(step, Step.TAKEN, f"could not build the migration: {error}")
        return
    except (ContractsError, ValueError) as error:
        give_back(step, Step.TAKEN, f"could not build the migration: {error}")
        return
    with transaction.atomic():
        moved = step.advance(
            Step.TAKEN, Step.STORED, txids=[tx.txid for tx, _ in built], new_slots=len(slots),
            fee=sum(tx.fee for tx, _ in built), bytes=sum(tx.size for tx, _ in built),
        )  # fmt: skip
        if not moved:
            transaction.set_rollback(True)
            step.refresh_from_db()
            return
        for tx, group in built:
            row = Transaction.objects.create(
                txid=tx.txid, raw_hex=tx.hex, kind=Transaction.Kind.MIGRATE, bounty=bounty, fee=tx.fee
            )
            Slot.objects.filter(pk__in=[s.pk for s in group]).update(spent_by=row)


def broadcast(step: MigrationStep) -> None:
    """Send the stored transactions in order; a transaction the chain already has counts as sent."""
    for index, txid in enumerate(step.txids):
        tx = Transaction.objects.get(txid=txid)
        if send(tx):
            continue
        if index == 0:
            give_back(step, Step.STORED, f"the chain refused the migration: {tx.last_error}")
        else:
            MigrationStep.objects.filter(pk=step.pk, state=Step.STORED).update(
                state=Step.FAILED,
                detail=f"transaction {index + 1} refused after earlier ones were sent, needs attention: "
                f"{tx.last_error}",
            )
        return
    step.advance(Step.STORED, Step.BROADCAST) or step.refresh_from_db()


def complete(step: MigrationStep, target: ModelVersion) -> None:
    """Record the new slots and switch the bounty to the target model, as one change."""
    bounty = step.bounty
    _, new = contracts_for(step, target)
    rate = FeeRate(bounty.fee_rate)
    value = new.slot_value(bounty.reward, rate)
    with transaction.atomic():
        created = 0
        for txid in step.txids:
            tx = Transaction.objects.get(txid=txid)
            for vout in range(Slot.objects.filter(spent_by=tx).count()):
                _, made = Slot.objects.get_or_create(
                    deploy_tx=tx, vout=vout, defaults={"bounty": bounty, "satoshis": value}
                )
                created += int(made)
        Bounty.objects.filter(pk=bounty.pk).update(
            model_version=target, claim_fee=new.claim_fee(rate), paused=step.was_paused
        )
        if step.txids:
            # a claim that found no free slot while they were taken may have marked the bounty exhausted
            Bounty.objects.filter(pk=bounty.pk, state=Bounty.State.EXHAUSTED).update(
                state=Bounty.State.ACTIVE
            )
        if not step.advance(Step.BROADCAST, Step.DONE, detail=f"{step.new_slots} slot(s) on {target.name}"):
            transaction.set_rollback(True)
            step.refresh_from_db()


def give_back(step: MigrationStep, state: str, detail: str) -> None:
    """Nothing was spent: the taken slots are free again on the old model and the pause is undone."""
    log.warning("migration of bounty %s failed: %s", step.bounty_id, detail)
    with transaction.atomic():
        if not step.advance(state, Step.FAILED, detail=detail[:2000]):
            transaction.set_rollback(True)
            return
        Slot.objects.filter(pk__in=step.slot_ids, state=Slot.State.REFUNDED).update(
            state=Slot.State.FREE, spent_by=None, updated=timezone.now()
        )
        Bounty.objects.filter(pk=step.bounty_id).update(paused=step.was_paused)


def abandon(step: MigrationStep, detail: str) -> None:
    with transaction.atomic():
        was = step.state
        if step.advance(was, Step.FAILED, detail=detail) and was == Step.DRAINING:
            Bounty.objects.filter(pk=step.bounty_id).update(paused=step.was_paused)
