"""Moving a bounty's money: fund and deploy its slots from the operator wallet, refund what is unused.

Transactions are stored in the database before they are broadcast, as claims are, so a crash between the
two is finished by the sweeper (`publish_deploys`) instead of losing track of coins.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from bounty import chain, keys
from bounty.models import Bounty, Slot, Transaction
from bounty.payouts import TryLater, send

log = logging.getLogger(__name__)


class FundingError(Exception):
    """A funding action cannot be done; the message is shown to the admin."""


def fund_and_deploy(bounty: Bounty) -> list[Transaction]:
    """Build, store and broadcast the deploy transaction(s) creating the bounty's slots."""
    if bounty.state != Bounty.State.DRAFT:
        raise FundingError(f"bounty #{bounty.pk} is {bounty.state}, only a draft can be funded")
    try:
        built = chain.build_deploy(bounty)
    except chain.ContractsError as error:
        raise FundingError(str(error)) from error
    stored: list[Transaction] = []
    with transaction.atomic():
        won = Bounty.objects.filter(pk=bounty.pk, state=Bounty.State.DRAFT).update(
            state=Bounty.State.FUNDED, funded_at=timezone.now()
        )
        if won != 1:
            raise FundingError(f"bounty #{bounty.pk} is already being funded")
        for deploy in built:
            tx = Transaction.objects.create(
                txid=deploy.txid,
                raw_hex=deploy.raw_hex,
                kind=Transaction.Kind.DEPLOY,
                bounty=bounty,
                fee=deploy.fee,
            )
            Slot.objects.bulk_create(
                Slot(bounty=bounty, deploy_tx=tx, vout=vout, satoshis=satoshis)
                for vout, satoshis in deploy.slots
            )
            stored.append(tx)
    bounty.state = Bounty.State.FUNDED
    publish_deploys(bounty)
    bounty.refresh_from_db()
    return stored


def publish_deploys(bounty: Bounty) -> bool:
    """Broadcast stored deploys in order; the bounty becomes active once the chain has all of them."""
    for tx in Transaction.objects.filter(bounty=bounty, kind=Transaction.Kind.DEPLOY).order_by("pk"):
        try:
            if not send(tx):
                log.error("deploy %s of bounty %s refused: %s", tx.txid, bounty.pk, tx.last_error)
                return False
        except TryLater:
            return False
    Bounty.objects.filter(pk=bounty.pk, state=Bounty.State.FUNDED).update(state=Bounty.State.ACTIVE)
    return True


def refund_unused(bounty: Bounty, to_address: str | None = None) -> Transaction | None:
    """Sweep every free slot back to `to_address` (default: the operator wallet) through the admin branch."""
    if not keys.admin_key_on_server():
        raise FundingError(
            "the admin key is kept off this server: prepare the refund for offline signing at /ops/sign/"
        )
    to_address = to_address or chain.operator_address()
    mine: list[Slot] = []
    for slot in Slot.objects.filter(bounty=bounty, state=Slot.State.FREE).select_related("deploy_tx"):
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
