"""The base test case: named actors and small builders shared by the bounty tests.

Alice funds bounties and administers the site; Bob and Charlie are contributors with their own testnet
addresses. Charlie should never see or change what belongs to Alice or Bob.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from functools import cache
from importlib import import_module
from pathlib import Path

import numpy as np
import pytest
from django.apps import apps as django_apps
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.files.base import ContentFile
from django.test import TestCase
from PIL import Image

from bounty import chain, images
from bounty.funding import draft_bounty, fund_and_deploy
from bounty.models import Bounty, ModelVersion, Slot, Submission, Transaction
from contracts.keys import Key

ROOT = Path(__file__).resolve().parents[2]
QUICK_MODEL = Path.home() / ".cache" / "digit-bounty" / "bounty-tests-quick-model.npz"

# Set in the second pytest process of test_postgresql.py, which runs this suite again on PostgreSQL.
ON_POSTGRES_RERUN = "BOUNTY_SUITE_ON_POSTGRES"
# That re-run leaves out the tests whose faults are in the broker, the worker process or the HTTP layer, not
# the database: they would test nothing new there and double the time.
NOT_ON_POSTGRES_RERUN = pytest.mark.skipif(
    os.environ.get(ON_POSTGRES_RERUN) == "1",
    reason="a broker/worker/HTTP fault, not a database one: run once, in the SQLite run",
)


@cache
def model_artifact() -> Path:
    """The committed default model; until it exists, a small one trained once and cached (about a minute)."""
    default = ROOT / "classifier" / "models" / "default.npz"
    if default.exists():
        return default
    if not QUICK_MODEL.exists():
        QUICK_MODEL.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "classifier", "train", "--epochs", "2", "--prune-epochs", "1"]
        command += ["--quant-epochs", "1", "--limit", "20000", "--out", str(QUICK_MODEL)]
        subprocess.run(command, check=True, cwd=ROOT, capture_output=True)
    return QUICK_MODEL


@cache
def reference_predictions() -> np.ndarray:
    from classifier.integer_model import IntegerModel

    x_test, _ = mnist_test_set()
    model = IntegerModel.load(model_artifact())
    return np.asarray(model.predict(x_test[:2000].reshape(-1, 784)))


def mnist_index(label: int, nth: int = 0) -> int:
    """The nth MNIST test image of `label` that the model also reads as `label`."""
    _, y_test = mnist_test_set()
    matches = np.flatnonzero((y_test[:2000] == label) & (reference_predictions() == label))
    return int(matches[nth])


def mnist_pixels(label: int, nth: int = 0) -> np.ndarray:
    return mnist_test_set()[0][mnist_index(label, nth)]


@cache
def mnist_test_set() -> tuple[np.ndarray, np.ndarray]:
    from classifier.data import load_mnist

    mnist = load_mnist()
    return mnist.x_test, mnist.y_test


def mnist_png(index: int) -> bytes:
    """An MNIST test image as a PNG file, black digit on white as a phone photo or scan would be."""
    x_test, _ = mnist_test_set()
    buffer = io.BytesIO()
    Image.fromarray(255 - x_test[index]).resize((112, 112)).save(buffer, format="PNG")
    return buffer.getvalue()


def blank_png(color: int = 255, size: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (size, size), color).save(buffer, format="PNG")
    return buffer.getvalue()


def stroke_png() -> bytes:
    """A hand-made '1': one thick vertical stroke on black, like the canvas sends."""
    array = np.zeros((280, 280), dtype=np.uint8)
    array[40:240, 125:155] = 255
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def staff(username: str, *groups: str) -> User:
    """A staff user in `groups` (the roles of migration 0007: "funder", "reviewer"), password-of-<name>.

    The roles are made again first when a transactional test before this one flushed the rows migration
    0007 wrote (a flush empties every table, groups and permissions included)."""
    if Group.objects.filter(name__in=groups).count() < len(set(groups)):
        import_module("bounty.migrations.0007_roles").make_groups(django_apps, None)
    user = User.objects.create_user(username, f"{username}@example.org", f"password-of-{username}")
    user.is_staff = True
    user.save()
    user.groups.add(*Group.objects.filter(name__in=groups))
    return user


class BaseTestCase(TestCase):
    def setUp(self) -> None:
        super().setUp()
        self.alice = User.objects.create_superuser("alice", "alice@example.org", "password-of-alice")
        self.bob_address = Key.generate("testnet").address
        self.charlie_address = Key.generate("testnet").address
        self.version = ModelVersion.objects.create(
            name="default", artifact=str(settings.MODEL_ARTIFACT), sha256="ab" * 32, is_active=True,
            metrics={"integer_test_accuracy": 0.975},
        )  # fmt: skip
        self.bounty = Bounty.objects.create(
            digit=7, reward=1000, slot_count=3, model_version=self.version, fee_rate=100, claim_fee=2000,
            state=Bounty.State.ACTIVE,
        )  # fmt: skip
        # The bounty is live: its deploy is on chain (a stored-only deploy would create no usable slots).
        self.deploy = Transaction.objects.create(
            txid="d" * 64, raw_hex="00", kind=Transaction.Kind.DEPLOY, status=Transaction.Status.BROADCAST
        )
        for vout in range(3):
            Slot.objects.create(bounty=self.bounty, deploy_tx=self.deploy, vout=vout, satoshis=3000)

    def make_submission(self, pixels: np.ndarray | None = None, **fields: object) -> Submission:
        if pixels is None:
            pixels = np.random.default_rng(Submission.objects.count()).integers(
                0, 256, (28, 28), dtype=np.uint8
            )
        submission = Submission(
            bounty=fields.pop("bounty", self.bounty),
            pixels=pixels.tobytes(),
            pixel_sha256=images.pixel_sha256(pixels),
            phash=images.perceptual_hash(pixels),
            claimed_digit=fields.get("bounty", self.bounty).digit,  # type: ignore[union-attr]
            payout_address=fields.pop("payout_address", self.bob_address),
            contributor_ip=fields.pop("contributor_ip", "192.0.2.10"),
            **fields,
        )
        submission.original.save("x.png", ContentFile(images.png_bytes(pixels)), save=False)
        submission.save()
        return submission


class ChainTestCase(BaseTestCase):
    """A real model version, a funded operator wallet on a fresh local ledger, and a deployed bounty for 7."""

    def setUp(self) -> None:
        super().setUp()
        ModelVersion.objects.update(is_active=False)
        self.version = ModelVersion.register(model_artifact(), name="test-model", activate=True)
        chain.faucet(chain.operator_address(), 5_000_000)
        self.live = self.create_bounty(digit=7, slots=3)

    def create_bounty(self, digit: int, slots: int, reward: int = 1000, **fields: object) -> Bounty:
        return deployed_bounty(self.version, digit, slots, reward, **fields)


def deployed_bounty(
    version: ModelVersion, digit: int, slots: int, reward: int = 1000, **fields: object
) -> Bounty:
    """A bounty locked to the configured operator and admin keys, funded by the operator wallet, deployed."""
    bounty = draft_bounty(version, digit, slots, reward, **fields)
    fund_and_deploy(bounty)
    return bounty


def tamper_stored_claim(submission: Submission) -> None:
    """Change the payout script of a submission's stored, signed claim: the chain must refuse it for good."""
    tx = submission.claim_tx
    assert tx is not None
    # The claim's last 29 bytes are its output's 25-byte P2PKH script and the locktime.
    tampered = tx.raw_hex[:-58] + "00000000" + tx.raw_hex[-50:]
    Transaction.objects.filter(pk=tx.pk).update(raw_hex=tampered)
