"""`manage.py bootstrap`: the first-run set-up of `make run` (idempotent, safe to run every start).

Creates the admin user (credentials from DJANGO_ADMIN_USER / DJANGO_ADMIN_PASSWORD, or generated and printed
once), registers the model artifact as the active version, and on the local ledger funds the operator wallet
from the faucet and deploys a demo bounty.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError

from bounty import chain
from bounty.funding import draft_bounty, fund_and_deploy
from bounty.models import Bounty, ModelVersion

FAUCET_SATS = 50_000_000


class Command(BaseCommand):
    help = "Create the admin user, register the model, fund the wallet and deploy a demo bounty (first run)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--demo-digit", type=int, default=7)
        parser.add_argument("--demo-slots", type=int, default=20)
        parser.add_argument("--demo-reward", type=int, default=1000)
        parser.add_argument("--no-demo", action="store_true", help="skip the demo bounty")

    def handle(self, *args: object, **options: Any) -> None:
        self.admin_user()
        version = self.model_version()
        if options["no_demo"] or Bounty.objects.exists():
            return
        if settings.CHAIN_BACKEND != "local":
            self.stdout.write(
                "not on the local ledger: fund the operator wallet and create bounties in admin"
            )
            return
        address = chain.operator_address()
        if chain.wallet_balance(address) < FAUCET_SATS // 2:
            chain.faucet(address, FAUCET_SATS)
            self.stdout.write(
                f"funded the operator wallet {address} with {FAUCET_SATS:,} sat from the faucet"
            )
        self.demo_bounty(
            version, int(options["demo_digit"]), int(options["demo_slots"]), int(options["demo_reward"])
        )

    def admin_user(self) -> None:
        if User.objects.filter(is_superuser=True).exists():
            return
        username = os.environ.get("DJANGO_ADMIN_USER", "admin")
        password = os.environ.get("DJANGO_ADMIN_PASSWORD")
        User.objects.create_superuser(username, "", password or (generated := secrets.token_urlsafe(12)))
        if password:
            self.stdout.write(f"created the admin user {username!r} (password from DJANGO_ADMIN_PASSWORD)")
        else:
            self.stdout.write(f"created the admin user {username!r} with password {generated!r} (shown once)")

    def model_version(self) -> ModelVersion:
        artifact = Path(settings.MODEL_ARTIFACT)
        if not artifact.exists():
            raise CommandError(f"no model artifact at {artifact}: run `make model` or set MODEL_ARTIFACT")
        active = ModelVersion.active()
        if active is not None:
            return active
        version = ModelVersion.register(artifact, name=artifact.stem, activate=True)
        self.stdout.write(f"registered model {version} as the active version")
        return version

    def demo_bounty(self, version: ModelVersion, digit: int, slots: int, reward: int) -> None:
        bounty = draft_bounty(version, digit, slots, reward)
        cost = chain.claim_cost(version, digit, bounty.fee_rate)
        txs = fund_and_deploy(bounty)
        self.stdout.write(
            f"deployed demo bounty #{bounty.pk}: {slots} x {reward} sat for a {digit} "
            f"(claim fee {cost['claim_fee']} sat, {cost['bytes_per_paid_image']:,} bytes per paid image); "
            f"deploy {', '.join(tx.txid for tx in txs)}"
        )
