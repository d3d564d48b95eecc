"""`manage.py retrain`: one retraining run by hand, then the redeployment if the candidate is promoted."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandParser

from bounty.retraining import job, redeploy


class Command(BaseCommand):
    help = "Retrain the model on MNIST and the collected images; promote and redeploy if the gate passes."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--force", action="store_true", help="train even with few new images")
        parser.add_argument("--no-redeploy", action="store_true", help="promote only; leave the slots")
        parser.add_argument("--json", action="store_true", help="print the run as JSON")

    def handle(self, *args: object, **options: object) -> None:
        quiet = bool(options["json"])
        run = job.retrain(
            "command", force=bool(options["force"]), progress=None if quiet else self.stdout.write
        )
        running = []
        if run.state == run.State.PROMOTED and not options["no_redeploy"]:
            running = redeploy.resume()
        if quiet:
            payload = {
                "run": run.pk, "state": run.state, "reason": run.reason, "seconds": run.seconds,
                "candidate": run.candidate.name if run.candidate else None, "counts": run.counts,
                "gate": run.gate, "redeployments_waiting": [r.pk for r in running],
            }  # fmt: skip
            self.stdout.write(json.dumps(payload, indent=2))
            return
        self.stdout.write(f"run #{run.pk}: {run.state} in {run.seconds or 0:.1f} s: {run.reason}")
        for redeployment in running:
            self.stdout.write(
                f"redeployment #{redeployment.pk} is waiting for claims in flight (beat resumes it) "
                "or for the admin's signatures at /ops/sign/"
            )
