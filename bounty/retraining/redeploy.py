"""Redeployment: move every active bounty's free slots to the target model through the admin branch.

Each bounty is one MigrationStep whose state is written before the work it allows, so a crash anywhere is
finished by running `resume()` again, never by guessing: slots are taken by conditional updates, migration
transactions are stored before they are broadcast and rebroadcast by txid (the chain answers "already
known"), and new slots are recorded with get-or-create on their outpoint. Slots reserved by a claim in flight
are left alone: the bounty is paused for new claims and the step waits until those claims finish. With the
admin key off the server (ADMIN_PUBKEY, no ADMIN_KEY) a step waits for an admin's signatures instead of
signing: its migrations are prepared unsigned and shown at /ops/sign/, like refunds.

A bounty with many slots moves in several transactions. The new slots of each are recorded as soon as the
chain has it. When a later one is refused after earlier ones were accepted, the accepted ones stand and the
old slots the chain still holds are moved by new transactions built from the operator wallet's current coins
(or signed again by the admin), so a bounty never stays on two models and no satoshi is left unrecorded; a
step that cannot build them yet (no wallet coins, too many refusals) waits, paused, and is resumed later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from bounty import chain, keys
from bounty.models import Bounty, ModelVersion, Slot, SlotKind, Transaction
from bounty.models.bounties import ON_CHAIN
from bounty.ops import signing
from bounty.payouts import TryLater, send
from bounty.retraining import pending
from bounty.retraining.models import MigrationStep, Redeployment, RetrainingRun

log = logging.getLogger(__name__)
Step = MigrationStep.State
FINAL = (Step.DONE, Step.FAILED)
T = TypeVar("T")
# Migrations of one redeployment the chain may refuse before the step stops building more and waits for an
# admin: a refusal that repeats (a fee policy the bounty's rate no longer meets) would otherwise store a new
# transaction at every resume.
MAX_REFUSALS = 3


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
        # A migration moves single slots only: a batch bounty stays on its model (its slots untouched).
        bounties = Bounty.objects.filter(state=Bounty.State.ACTIVE).exclude(model_version=target)
        bounties = bounties.exclude(slot_kind=SlotKind.BATCH)
        for bounty in bounties:
            MigrationStep.objects.get_or_create(
                redeployment=redeployment, bounty=bounty, defaults={"from_version": bounty.model_version}
            )
    for step in redeployment.steps.exclude(state__in=FINAL).select_related("bounty", "from_version"):
        if superseded and step.state in (Step.PENDING, Step.DRAINING):
            abandon(step, "superseded: another version became active before this bounty moved")
            continue
        if superseded and step.state == Step.SIGNING and not step.txids:
            # (with some of its migrations accepted it finishes instead: its bounty is partly moved already)
            give_back(step, Step.SIGNING, "superseded: another version became active before it was signed")
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
            Slot.objects.free().filter(bounty_id=step.bounty_id).order_by("pk").values_list("pk", flat=True)
        )
        taken = Slot.objects.filter(pk__in=ids, state=Slot.State.FREE).update(
            state=Slot.State.MIGRATED, updated=timezone.now()
        )
        if taken != len(ids) or not step.advance(Step.DRAINING, Step.TAKEN, slot_ids=ids, detail=""):
            transaction.set_rollback(True)  # a claim or another worker got there first: try again later
            step.refresh_from_db()


def contracts_for(step: MigrationStep, target: ModelVersion) -> tuple[chain.SlotContract, chain.SlotContract]:
    bounty = step.bounty
    old = chain.slot_contract(
        step.from_version.artifact, bounty.digit, bounty.operator_pubkey, bounty.admin_pubkey
    )
    new = chain.slot_contract(target.artifact, bounty.digit, bounty.operator_pubkey, bounty.admin_pubkey)
    return old, new


def taken_slots(step: MigrationStep) -> list[Slot]:
    return list(Slot.objects.filter(pk__in=step.slot_ids).with_txids().order_by("pk"))


def building(step: MigrationStep, build: Callable[[], T], give_up: bool = True) -> T | None:
    """Run `build`; a transient chain error is retried later, any other failure gives the slots back (or,
    with `give_up` False, leaves the step waiting with the reason)."""
    try:
        return build()
    except chain.ChainError as error:
        if not error.permanent:
            raise TryLater(str(error)) from error
        problem: Exception = error
    except (chain.ContractsError, ValueError) as error:
        problem = error
    detail = f"could not build the migration: {problem}"
    if give_up:
        give_back(step, step.state, detail)
    else:
        MigrationStep.objects.filter(pk=step.pk).update(detail=detail[:2000])
    return None


def store(step: MigrationStep, target: ModelVersion) -> None:
    """Build and verify the migration transaction(s) and store them before any broadcast. With the admin
    key off this server, prepare them unsigned instead and wait for an admin (`prepare_for_signing`)."""
    if not step.slot_ids:
        step.advance(Step.TAKEN, Step.BROADCAST)
        return
    if not keys.admin_key_on_server():
        prepare_for_signing(step, target, taken_slots(step), Step.TAKEN)
        return
    built = building(step, migrations_of(step, target, taken_slots(step)))
    if built is not None:
        record(step, Step.TAKEN, built)


def migrations_of(
    step: MigrationStep, target: ModelVersion, slots: list[Slot]
) -> Callable[[], list[tuple[chain.BuiltTransaction, list[Slot]]]]:
    """How to build, sign and verify the migrations of `slots`, funded by the operator wallet's coins now."""
    bounty = step.bounty
    old, new = contracts_for(step, target)

    def build() -> list[tuple[chain.BuiltTransaction, list[Slot]]]:
        built = []
        funding = chain.operator_coins()
        for group, utxos in chain.migration_groups(slots, old, new):
            # A slot holds reward + claim fee; writing a new slot's script costs more than that in fee, so
            # the operator wallet tops each migration up and every free slot becomes exactly one new slot.
            tx = chain.build_migration(bounty, utxos, new, funding)
            built.append((tx, group))
            used = {(u.txid, u.vout) for u in tx.spent}
            funding = [c for c in funding if (c.txid, c.vout) not in used]
            outputs = tx.outputs()
            if len(outputs) > len(group):
                funding.append(outputs[len(group)])  # the change, spendable unconfirmed by the next one
        return built

    return build


def record(step: MigrationStep, frm: str, built: list[tuple[chain.BuiltTransaction, list[Slot]]]) -> bool:
    """Store the verified migrations after those of the step the chain has already accepted, and mark the
    old slots spent by them, as one change; False if another process moved the step first."""
    accepted = totals(accepted_migrations(step))
    fields = {
        "txids": accepted["txids"] + [tx.txid for tx, _ in built],
        "new_slots": accepted["new_slots"] + sum(len(tx.slots) for tx, _ in built),
        "fee": accepted["fee"] + sum(tx.fee for tx, _ in built),
        "bytes": accepted["bytes"] + sum(tx.size for tx, _ in built),
    }
    with transaction.atomic():
        # A step already stored (some of its migrations accepted) may be rebuilt by one process only: the
        # update also requires the version of the step this process read.
        rows = MigrationStep.objects.filter(pk=step.pk, state=frm)
        if frm == Step.STORED:
            rows = rows.filter(updated=step.updated)
        moved = rows.update(state=Step.STORED, unsigned=[], detail="", updated=timezone.now(), **fields) == 1
        step.refresh_from_db()
        if not moved:
            transaction.set_rollback(True)
            return False
        for tx, group in built:
            row = Transaction.objects.create(
                txid=tx.txid, raw_hex=tx.hex, kind=Transaction.Kind.MIGRATE, bounty=step.bounty, fee=tx.fee
            )
            Slot.objects.filter(pk__in=[s.pk for s in group]).update(spent_by=row)
    return True


# -- the admin key off the server: migrations wait for an admin's signatures at /ops/sign/ -----------------


def prepare_for_signing(step: MigrationStep, target: ModelVersion, slots: list[Slot], frm: str) -> None:
    """Prepare the unsigned migrations of `slots` (funding coins chosen now) and keep them on the step until
    an admin signs them. Unsigned, a migration has no txid yet, so a second one cannot spend the first one's
    change: each takes other coins of the operator wallet. From `stored` (a later migration was refused),
    the step keeps the accepted ones and waits when nothing can be prepared yet."""
    bounty = step.bounty
    old, new = contracts_for(step, target)

    def prepare() -> list[dict[str, Any]]:
        prepared = []
        funding = chain.operator_coins()
        for group, utxos in chain.migration_groups(slots, old, new):
            unsigned = chain.prepare_migration(bounty, utxos, new, funding)
            used = {(u.txid, u.vout) for u in unsigned.spent}
            funding = [c for c in funding if (c.txid, c.vout) not in used]
            prepared.append({"slot_ids": [s.pk for s in group], "migration": unsigned.to_json()})
        return prepared

    prepared = building(step, prepare, give_up=frm == Step.TAKEN)
    if prepared is not None:
        detail = "waiting for an admin to sign the migration at /ops/sign/"
        step.advance(frm, Step.SIGNING, unsigned=prepared, detail=detail)


def unsigned_migrations(step: MigrationStep) -> list[tuple[chain.UnsignedMigration, list[int]]]:
    """The step's prepared migrations, read back exactly (so the same preimages), with their old slots'
    ids."""
    migrations = []
    for entry in step.unsigned:
        try:
            migrations.append((chain.UnsignedMigration.from_json(entry["migration"]), entry["slot_ids"]))
        except (KeyError, TypeError, ValueError) as error:
            # e.g. a step prepared before migrations were stored in contracts' JSON form
            raise signing.SigningError(
                f"this step's prepared migrations cannot be read ({error}): abandon it and redeploy"
            ) from error
    return migrations


@dataclass(frozen=True)
class MigrationToSign:
    """What the signing page shows for a step waiting for the admin."""

    step: MigrationStep
    inputs: list[signing.InputToSign]  # every old slot of every transaction, in signing order
    transactions: int
    new_slots: int
    slot_value: int
    from_wallet: int  # what the operator wallet pays, net of the change it gets back
    fee: int
    admin_pubkey: str


def to_sign(step: MigrationStep) -> MigrationToSign:
    if step.state != Step.SIGNING:
        raise signing.SigningError(f"this migration is {step.state}, not waiting for signatures")
    migrations = unsigned_migrations(step)
    inputs: list[signing.InputToSign] = []
    for unsigned, _ in migrations:
        admin_spent = unsigned.spent[: unsigned.admin_inputs]
        inputs += signing.inputs_to_sign(unsigned.admin_preimages(), admin_spent, first=len(inputs))
    spent = [u for unsigned, _ in migrations for u in unsigned.spent]
    wallet = [u for unsigned, _ in migrations for u in unsigned.spent[unsigned.admin_inputs :]]
    outputs = [value for unsigned, _ in migrations for _, value in unsigned.outputs]
    change = [value for unsigned, _ in migrations for _, value in unsigned.outputs[unsigned.slots :]]
    return MigrationToSign(
        step=step, inputs=inputs, transactions=len(migrations),
        new_slots=sum(unsigned.slots for unsigned, _ in migrations),
        slot_value=migrations[0][0].outputs[0][1] if migrations else 0,
        from_wallet=sum(u.satoshis for u in wallet) - sum(change),
        fee=sum(u.satoshis for u in spent) - sum(outputs), admin_pubkey=step.bounty.admin_pubkey,
    )  # fmt: skip


def accept_signatures(step: MigrationStep, texts: list[str]) -> MigrationStep:
    """Put the admin's signatures (hex, one per old slot, in the page's order) in place, sign the wallet's
    inputs, verify every transaction and store them (signing -> stored). Broadcasting and completing are the
    usual steps (`process`, or beat's `resume`). SigningError when anything does not verify: nothing
    changes."""
    if step.state != Step.SIGNING:
        raise signing.SigningError(f"this migration is {step.state}, not waiting for signatures")
    migrations = unsigned_migrations(step)
    parsed = signing.parse_signatures(texts, sum(unsigned.admin_inputs for unsigned, _ in migrations))
    built = []
    for unsigned, slot_ids in migrations:
        mine, parsed = parsed[: unsigned.admin_inputs], parsed[unsigned.admin_inputs :]
        try:
            tx = chain.sign_migration(step.bounty, unsigned, mine)
        except (chain.ContractsError, ValueError) as error:
            raise signing.SigningError(f"the signed migration does not verify: {error}") from error
        built.append((tx, list(Slot.objects.filter(pk__in=slot_ids))))
    if refused_before(built):
        raise signing.SigningError("the chain refused this same migration before: nothing was stored")
    if not record(step, Step.SIGNING, built):
        raise signing.SigningError(f"this migration is {step.state} now: nothing was stored")
    return step


def broadcast(step: MigrationStep) -> None:
    """Send the stored transactions in order, recording the new slots of each as soon as the chain has it
    (one the chain already has counts as sent). If the first is refused nothing was spent: the slots go
    back. If a later one is refused, the accepted ones stand and the old slots the chain still holds are
    moved again (`move_the_rest`)."""
    for index, txid in enumerate(step.txids):
        tx = Transaction.objects.get(txid=txid)
        if send(tx):
            record_slots(step, tx)
            continue
        if index == 0:
            give_back(step, Step.STORED, f"the chain refused the migration: {tx.last_error}")
            return
        log.warning(
            "migration %s of bounty %s refused after earlier ones were accepted", txid, step.bounty_id
        )
        drop(step, index)
        break
    if left_behind(step):
        if move_the_rest(step):
            broadcast(step)
        return
    step.advance(Step.STORED, Step.BROADCAST, **totals(accepted_migrations(step)))


def record_slots(step: MigrationStep, tx: Transaction) -> None:
    """The new slots of an accepted migration: its first outputs, one per old slot it spends, at the values
    it holds. Recorded once (get-or-create on the outpoint), however often this runs."""
    _, outputs = chain.describe(tx.raw_hex)
    for vout, satoshis, _ in outputs[: Slot.objects.filter(spent_by=tx).count()]:
        Slot.objects.get_or_create(
            deploy_tx=tx, vout=vout, defaults={"bounty_id": step.bounty_id, "satoshis": satoshis}
        )


def totals(accepted: list[Transaction]) -> dict[str, Any]:
    """What the step records of the migrations the chain has: their txids, new slots, fee and bytes."""
    return {
        "txids": [tx.txid for tx in accepted],
        "new_slots": Slot.objects.filter(deploy_tx__in=accepted).count(),
        "fee": sum(tx.fee for tx in accepted),
        "bytes": sum(tx.size for tx in accepted),
    }


def accepted_migrations(step: MigrationStep) -> list[Transaction]:
    """The step's migrations the chain has, in the step's order."""
    rows = {tx.txid: tx for tx in Transaction.objects.filter(txid__in=step.txids, status__in=ON_CHAIN)}
    return [rows[txid] for txid in step.txids if txid in rows]


def drop(step: MigrationStep, index: int) -> None:
    """Transaction `index` was refused after earlier ones were accepted: it and those after it (never sent,
    and possibly spending its change) leave the step; one of those the chain has after all stays."""
    kept = step.txids[:index]
    for txid in step.txids[index + 1 :]:
        tx = Transaction.objects.get(txid=txid)
        state = chain_state(txid)
        if state in (chain.TxState.MEMPOOL, chain.TxState.MINED):
            Transaction.objects.filter(pk=tx.pk, status=Transaction.Status.STORED).update(
                status=Transaction.Status.BROADCAST, broadcast_at=timezone.now()
            )
            record_slots(step, tx)
            kept.append(txid)
        else:
            Transaction.objects.filter(pk=tx.pk, status=Transaction.Status.STORED).update(
                status=Transaction.Status.FAILED,
                failure=Transaction.Failure.REJECTED,
                last_error="never sent: an earlier migration of its step was refused",
            )
    now = timezone.now()
    with transaction.atomic():
        MigrationStep.objects.filter(pk=step.pk, state=Step.STORED).update(txids=kept, updated=now)
        # their old slots stay the step's (taken, spent by nothing yet) until `move_the_rest` moves them
        dropped = [txid for txid in step.txids[index:] if txid not in kept]
        Slot.objects.filter(spent_by__txid__in=dropped).update(spent_by=None, updated=now)
    step.txids, step.updated = kept, now


def chain_state(txid: str) -> chain.TxState:
    try:
        return chain.status(txid).state
    except chain.ChainUnavailable as error:
        raise TryLater(str(error)) from error


def left_behind(step: MigrationStep) -> list[Slot]:
    """The step's old slots that none of its transactions spends (their transaction was refused)."""
    mine = Q(spent_by__txid__in=step.txids)
    taken = Slot.objects.filter(pk__in=step.slot_ids, state=Slot.State.MIGRATED)
    return list(taken.filter(Q(spent_by__isnull=True) | ~mine).with_txids().order_by("pk"))


def move_the_rest(step: MigrationStep) -> bool:
    """Move the old slots a refused migration left behind, from what the chain says: a slot whose output
    another transaction spent is retired; the others go into new migrations built from the operator
    wallet's current coins, stored after the accepted ones (True: send them now), or prepared for the
    admin's signatures. Waits (False, the reason in the step's detail) when they cannot be built yet."""
    left = []
    for slot in left_behind(step):
        try:
            holder = chain.spender(slot.deploy_txid, slot.vout)
        except chain.ChainUnavailable as error:
            raise TryLater(str(error)) from error
        ours = Transaction.objects.filter(
            txid=holder, kind=Transaction.Kind.MIGRATE, bounty_id=step.bounty_id
        ).first()
        if holder is None:
            left.append(slot)
        elif ours is not None:
            adopt(step, slot, ours)  # recorded as refused, yet the chain took it
        else:
            log.warning("slot %s taken by a migration is spent by %s", slot, holder)
            Slot.objects.filter(pk=slot.pk, state=Slot.State.MIGRATED).update(
                state=Slot.State.SPENT_ELSEWHERE, spent_by=None, updated=timezone.now()
            )
    if not left:
        return True
    refused = Transaction.objects.filter(
        bounty_id=step.bounty_id, kind=Transaction.Kind.MIGRATE, status=Transaction.Status.FAILED,
        broadcast_attempts__gt=0, created__gte=step.redeployment.created,
    ).count()  # fmt: skip
    if refused >= MAX_REFUSALS:
        detail = f"{refused} migrations refused; {len(left)} old slot(s) still to move: needs attention"
        MigrationStep.objects.filter(pk=step.pk).update(detail=detail)
        return False
    target = step.redeployment.target
    if not keys.admin_key_on_server():
        prepare_for_signing(step, target, left, Step.STORED)
        return False
    built = building(step, migrations_of(step, target, left), give_up=False)
    if built is None:
        return False
    if refused_before(built):
        # the same slots and coins give the same bytes, which the chain judged already: wait for the
        # wallet's coins to change rather than send them again at every resume
        detail = "the migration built again is one the chain refused: waiting for other wallet coins"
        MigrationStep.objects.filter(pk=step.pk).update(detail=detail)
        return False
    return record(step, Step.STORED, built)


def refused_before(built: list[tuple[chain.BuiltTransaction, list[Slot]]]) -> bool:
    return Transaction.objects.filter(txid__in=[tx.txid for tx, _ in built]).exists()


def adopt(step: MigrationStep, slot: Slot, tx: Transaction) -> None:
    """A migration of the step that the chain has although it was recorded as refused: it spends `slot`,
    counts as sent, and joins the step's transactions with its new slots."""
    now = timezone.now()
    with transaction.atomic():
        Transaction.objects.filter(pk=tx.pk).exclude(status__in=ON_CHAIN).update(
            status=Transaction.Status.BROADCAST, failure="", broadcast_at=now
        )
        Slot.objects.filter(pk=slot.pk).update(spent_by=tx, updated=now)
        txids = step.txids if tx.txid in step.txids else [*step.txids, tx.txid]
        MigrationStep.objects.filter(pk=step.pk, state=Step.STORED).update(txids=txids, updated=now)
        step.txids, step.updated = txids, now
        record_slots(step, tx)


def complete(step: MigrationStep, target: ModelVersion) -> None:
    """Record the new slots (those not yet recorded) and switch the bounty to the target model, as one
    change."""
    bounty = step.bounty
    _, new = contracts_for(step, target)
    with transaction.atomic():
        for txid in step.txids:
            record_slots(step, Transaction.objects.get(txid=txid))
        Bounty.objects.filter(pk=bounty.pk).update(
            model_version=target, claim_fee=chain.claim_fee(new, bounty.fee_rate), paused=step.was_paused
        )
        if step.txids:
            # a claim that found no free slot while they were taken may have marked the bounty exhausted
            Bounty.objects.filter(pk=bounty.pk, state=Bounty.State.EXHAUSTED).update(
                state=Bounty.State.ACTIVE
            )
        if not step.advance(Step.BROADCAST, Step.DONE, detail=f"{step.new_slots} slot(s) on {target.name}"):
            transaction.set_rollback(True)
        else:
            # Pay on learn: the bounty's pending images are read again by its new model (a task, on commit).
            pending.after_migration(bounty.pk)


def give_back(step: MigrationStep, state: str, detail: str) -> None:
    """Nothing was spent: the taken slots are free again on the old model and the pause is undone."""
    log.warning("migration of bounty %s failed: %s", step.bounty_id, detail)
    with transaction.atomic():
        if not step.advance(state, Step.FAILED, detail=detail[:2000]):
            transaction.set_rollback(True)
            return
        # (never a slot that a migration the chain has spends)
        taken = Slot.objects.filter(pk__in=step.slot_ids, state=Slot.State.MIGRATED)
        taken.filter(Q(spent_by__isnull=True) | ~Q(spent_by__status__in=ON_CHAIN)).update(
            state=Slot.State.FREE, spent_by=None, updated=timezone.now()
        )
        Bounty.objects.filter(pk=step.bounty_id).update(paused=step.was_paused)


def abandon(step: MigrationStep, detail: str) -> None:
    with transaction.atomic():
        was = step.state
        if step.advance(was, Step.FAILED, detail=detail) and was == Step.DRAINING:
            Bounty.objects.filter(pk=step.bounty_id).update(paused=step.was_paused)
