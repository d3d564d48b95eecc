"""`manage.py resume_deploy BOUNTY [--json]`: finish a bounty's deploy from what the chain says (a deploy
refused part way: the slots the chain lacks are deployed again, once, from the operator wallet)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bounty.funding import FundingError, resume_deploy
from bounty.models import Bounty
from bounty.payouts import TryLater


class Command(BaseCommand):
    help = "Finish a bounty's deploy from what the chain says (re-deploy slots a refused deploy left out)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("bounty", type=int, help="the bounty's id")
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args: object, **options: Any) -> None:
        bounty = Bounty.objects.filter(pk=options["bounty"]).first()
        if bounty is None:
            raise CommandError(f"no bounty #{options['bounty']}")
        try:
            tx = resume_deploy(bounty)
        except (FundingError, TryLater) as error:
            raise CommandError(str(error)) from error
        bounty.refresh_from_db()
        result = {
            "bounty": bounty.pk,
            "state": bounty.state,
            "slots_left": bounty.slots_left(),
            "new_deploy": tx.txid if tx is not None else None,
        }
        if options["json"]:
            self.stdout.write(json.dumps(result))
        elif tx is None:
            self.stdout.write(f"bounty #{bounty.pk}: nothing missing ({result['slots_left']} slots free)")
        else:
            self.stdout.write(f"bounty #{bounty.pk}: deployed the missing slots in {tx.txid}")
