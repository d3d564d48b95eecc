"""What the fault tests share: the invariant checker (run against the database and the ledger itself), a
Celery worker subprocess on a private queue of the fault tests' Redis database, a deployed bounty, uploads
through the web form, and the `fault_broker` fixture (tests/bounty/conftest.py offers it to every test).

Invariants:
- every submission accepted by the form reaches a final state (broadcast, confirmed or rejected);
- no slot is spent twice, and none is stranded (reserved with nobody to finish it, or marked claimed while
  the chain does not have the claim);
- no contributor is paid twice for one submission, and a rejected submission is not paid at all (a batch
  claim paying K submissions counts each once, by the output each records);
- every transaction the chain has is in the database, stored before the chain accepted it.

test_faults_invariants.py shows that the checker catches each violation, so a fault test that passes means
something.
"""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from bounty_testing import ROOT, model_artifact
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image
from redis_databases import redis_url

from bounty import chain, confirmations, payouts, sweeper
from bounty.celery import app as celery_app
from bounty.funding import fund_and_deploy
from bounty.models import Bounty, ModelVersion, Slot, Submission, Transaction
from contracts.address import parse_address
from contracts.ledger import DB_NAME
from contracts.txverify import parse_transaction

# (pending: kept for a later model; no worker moves it until a promotion re-reads it)
SETTLED = {
    Submission.State.BROADCAST,
    Submission.State.CONFIRMED,
    Submission.State.REJECTED,
    Submission.State.PENDING,
}


class InvariantBroken(AssertionError):
    pass


def ledger_rows(ledger_dir: Path) -> list[tuple[str, bytes, str, float]]:
    """(txid, raw, kind, accepted_at) of every transaction the local ledger accepted, read from its file
    (any process's ledger, without going through the service)."""
    with sqlite3.connect(Path(ledger_dir) / DB_NAME, timeout=30) as db:
        rows = db.execute("SELECT txid, raw, kind, accepted_at FROM txs ORDER BY seq").fetchall()
    return [(txid, bytes(raw), kind, float(at)) for txid, raw, kind, at in rows]


def check_invariants(ledger_dir: Path | None = None) -> dict[str, int]:
    """Raise InvariantBroken naming the first broken invariant; return a few counts otherwise."""
    ledger_dir = Path(ledger_dir or settings.LEDGER_DIR)
    unsettled = list(Submission.objects.exclude(state__in=SETTLED).values_list("pk", "state"))
    if unsettled:
        raise InvariantBroken(f"submissions not in a final state: {unsettled}")

    stored = {tx.txid: tx for tx in Transaction.objects.all()}
    spent_by: dict[str, str] = {}  # outpoint -> txid on the ledger
    spends = Counter()
    for txid, raw, kind, accepted_at in ledger_rows(ledger_dir):
        if kind == "faucet":
            continue
        tx = stored.get(txid)
        if tx is None:
            raise InvariantBroken(f"the chain has {txid}, which the database never stored")
        if tx.raw_hex != raw.hex():
            raise InvariantBroken(f"the chain's {txid} differs from the stored transaction")
        if tx.built_here and tx.created.timestamp() > accepted_at:
            raise InvariantBroken(f"{txid} reached the chain before it was stored")
        for tx_input in parse_transaction(raw).inputs:
            outpoint = f"{tx_input.source_txid}:{tx_input.source_output_index}"
            spends[outpoint] += 1
            spent_by[outpoint] = txid
    twice = [outpoint for outpoint, count in spends.items() if count > 1]
    if twice:
        raise InvariantBroken(f"outputs spent twice on the chain: {twice}")

    paid = Counter()
    for slot in Slot.objects.select_related("deploy_tx", "spent_by", "submission"):
        on_chain = spent_by.get(slot.outpoint)
        if slot.state == Slot.State.RESERVED:
            raise InvariantBroken(f"slot {slot.outpoint} is stranded: reserved by {slot.submission}")
        if slot.state == Slot.State.FREE and on_chain is not None:
            raise InvariantBroken(f"slot {slot.outpoint} is free but spent by {on_chain}")
        if slot.state == Slot.State.CLAIMED:
            if slot.spent_by is None or on_chain != slot.spent_by.txid:
                raise InvariantBroken(f"slot {slot.outpoint} is claimed but the chain has {on_chain}")
            if slot.submission is None or slot.submission.claim_tx_id != slot.spent_by_id:
                raise InvariantBroken(f"slot {slot.outpoint} was claimed for no submission")
            if slot.lanes > 1:  # a batch slot: its claim pays every member once, each by its own output
                for member in batch_members_paid(slot, stored[on_chain]):
                    paid[member] += 1
            else:
                paid[slot.submission_id] += 1
        if on_chain is not None and stored[on_chain].kind == Transaction.Kind.CLAIM:
            submission = Submission.objects.filter(claim_tx__txid=on_chain).first()
            if submission is None or submission.state == Submission.State.REJECTED:
                raise InvariantBroken(f"the chain pays {on_chain} for a rejected or unknown submission")
    twice = [pk for pk, count in paid.items() if count > 1]
    if twice:
        raise InvariantBroken(f"submissions paid twice: {twice}")
    unpaid = Submission.objects.filter(
        state__in=[Submission.State.BROADCAST, Submission.State.CONFIRMED]
    ).exclude(pk__in=list(paid))
    if unpaid.exists():
        raise InvariantBroken(f"broadcast submissions without a claimed slot: {list(unpaid)}")
    return {
        "paid": len(paid),
        "rejected": Submission.objects.filter(state=Submission.State.REJECTED).count(),
        "ledger_spends": len(spends),
    }


def batch_members_paid(slot: Slot, claim: Transaction) -> list[int]:
    """The submissions a batch claim on the chain pays: each member linked to it must be paid the reward by
    the output it records, and every other output may only return change to the operator wallet (the
    padded lanes' rewards). Raises InvariantBroken otherwise."""
    members = list(Submission.objects.filter(claim_tx=claim).order_by("claim_output"))
    outputs = parse_transaction(bytes.fromhex(claim.raw_hex)).outputs
    if [m.claim_output for m in members] != list(range(len(members))):
        raise InvariantBroken(f"batch claim {claim.txid} of slot {slot.outpoint} has members {members} "
                              "whose outputs are not 0..n-1")  # fmt: skip
    for member in members:
        out = outputs[member.claim_output]  # type: ignore[index]
        owed = parse_address(member.payout_address).locking_script()
        if out.locking_script.serialize() != owed or out.satoshis < slot.bounty.reward:
            raise InvariantBroken(f"batch claim {claim.txid} does not pay {member} by its output")
    change = parse_address(chain.operator_address()).locking_script()
    strangers = [o for o in outputs[len(members) :] if o.locking_script.serialize() != change]
    if strangers or len(outputs) > len(members) + 1:
        raise InvariantBroken(f"batch claim {claim.txid} pays someone outside its batch")
    return [m.pk for m in members]


# -- shared by the fault tests ------------------------------------------------------------------------------

FAULT_BROKER_URL = redis_url("faults")
FAULT_QUEUE = f"bounty-faults-{os.getpid()}"  # a private queue: parallel runs never take each other's tasks


def route_tasks_to(queue: str, broker_url: str) -> None:
    """Publish this process's tasks (the web views' and the test's) to `queue` on `broker_url`."""
    celery_app.conf.broker_url = broker_url
    celery_app.conf.task_default_queue = queue
    celery_app.conf.task_routes = {"bounty.tasks.*": {"queue": queue}}
    renew_router()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


def start_fault_worker(
    runtime,
    broker_url: str,
    queue: str,
    name: str,
    *,
    env: dict[str, str] | None = None,
    concurrency: int = 1,
) -> subprocess.Popen:  # type: ignore[no-untyped-def]
    """A Celery worker subprocess consuming `queue`; one process (solo pool) so a SIGKILL in a task kills
    the whole worker as a crash or an OOM kill would, leaving its message unacknowledged."""
    log = open(runtime.base / f"{name}.log", "ab")  # noqa: SIM115  (closed with the process)
    command = [sys.executable, "-m", "celery", "-A", "bounty", "worker", "--loglevel", "INFO", "-Q", queue]
    pool = (
        ["--pool", "solo"] if concurrency == 1 else ["--pool", "prefork", "--concurrency", str(concurrency)]
    )
    command += [*pool, "--hostname", f"{name}-{os.getpid()}@%h"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    environment = {**runtime.environment(), "REDIS_URL": broker_url, "CELERY_QUEUE": queue}
    environment.update({"STUCK_AFTER": "1", **(env or {})})
    return subprocess.Popen(command, env=environment, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def deploy_bounty(runtime, settings, digit: int = 7, slots: int = 4) -> Bounty:  # type: ignore[no-untyped-def]
    """A deployed bounty on the runtime's ledger, which the worker subprocesses share."""
    settings.LEDGER_DIR, settings.MEDIA_ROOT = runtime.ledger, runtime.media
    chain.reset()
    version = ModelVersion.register(model_artifact(), name="faults", activate=True)
    chain.faucet(chain.operator_address(), 2_000_000)
    cost = chain.claim_cost(version, digit, settings.FEE_RATE)
    operator, admin = chain.public_keys()
    bounty = Bounty.objects.create(
        digit=digit, reward=1000, slot_count=slots, model_version=version, fee_rate=settings.FEE_RATE,
        claim_fee=cost["claim_fee"], operator_pubkey=operator, admin_pubkey=admin,
    )  # fmt: skip
    fund_and_deploy(bounty)
    return bounty


def wait_until(predicate, timeout: float = 60, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; unsettled: {unsettled()}")


def unsettled() -> list[tuple[object, ...]]:
    """Each submission not confirmed or rejected, with its claim as the database last saw it: what a timeout
    reports, so a stuck payout names where it stopped."""
    done = (Submission.State.CONFIRMED, Submission.State.REJECTED)
    rows = Submission.objects.exclude(state__in=done).values_list(
        "pk", "state", "hold", "reason", "payout_attempts", "claim_tx__txid", "claim_tx__status",
        "claim_tx__failure", "claim_tx__broadcast_attempts", "claim_tx__last_error",
    )  # fmt: skip
    return [tuple(row) for row in rows]


def png_of(pixels) -> bytes:  # type: ignore[no-untyped-def]
    """An MNIST digit as a contributor's photo: dark on light, 140x140."""
    buffer = io.BytesIO()
    Image.fromarray(255 - pixels).resize((140, 140)).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(bounty: Bounty, png: bytes, address: str, client: Client | None = None) -> Submission:
    """Submit through the web form, as a contributor does; the form must accept it."""
    response = (client or Client()).post(
        f"/bounties/{bounty.pk}/",
        {"payout_address": address, "image": SimpleUploadedFile("digit.png", png, "image/png")},
    )
    assert response.status_code == 302, response.content[:500]
    return Submission.objects.get(public_id=response["Location"].split("/")[-2])


def forget_queue(broker: redis.Redis, queue: str) -> None:
    """Drop `queue` and the unacknowledged messages of it that a killed worker left in the broker."""
    broker.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
    for tag, entry in broker.hgetall("unacked").items():
        if queue.encode() in entry:
            broker.hdel("unacked", tag)
            broker.zrem("unacked_index", tag)


def default_routes() -> None:
    celery_app.conf.task_default_queue = "celery"
    celery_app.conf.task_routes = None
    renew_router()


def renew_router() -> None:
    """Celery builds its router once, from the routes of that moment: build it again."""
    celery_app.amqp.flush_routes()
    celery_app.amqp.router = celery_app.amqp.Router()


def settled() -> bool:
    return not Submission.objects.exclude(state__in=SETTLED).exists()


def all_confirmed() -> bool:
    """One round of what beat does (a block, the poll, the sweeper), then: is every submission done?"""
    chain.mine(1)
    try:
        confirmations.poll_confirmations()
        sweeper.sweep()
    except payouts.TryLater:
        return False
    states = set(Submission.objects.values_list("state", flat=True))
    return states <= {Submission.State.CONFIRMED, Submission.State.REJECTED}


@contextmanager
def private_queue(queue: str, broker_url: str = FAULT_BROKER_URL) -> Iterator[redis.Redis]:
    """This process's tasks go to `queue` on `broker_url` while inside; the queue and what a killed worker
    left unacknowledged in it are dropped before and after."""
    connection = redis.Redis.from_url(broker_url)
    forget_queue(connection, queue)
    route_tasks_to(queue, broker_url)
    try:
        yield connection
    finally:
        forget_queue(connection, queue)
        default_routes()


@pytest.fixture
def fault_broker() -> Iterator[redis.Redis]:
    """The fault tests' Redis database, with this run's FAULT_QUEUE routed and emptied around the test."""
    with private_queue(FAULT_QUEUE) as connection:
        yield connection
