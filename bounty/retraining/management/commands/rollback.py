"""`manage.py rollback VERSION`: make an earlier model version active again and move the bounties to it."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bounty.models import ModelVersion
from bounty.retraining import redeploy
from bounty.retraining.models import Redeployment


class Command(BaseCommand):
    help = "Roll back to an earlier model version (name or id), migrating free slots to it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("version", help="the version's name or id")
        parser.add_argument("--reason", default="rolled back by hand")

    def handle(self, *args: object, **options: object) -> None:
        key = str(options["version"])
        version = ModelVersion.objects.filter(name=key).first()
        if version is None and key.isdigit():
            version = ModelVersion.objects.filter(pk=int(key)).first()
        if version is None:
            raise CommandError(f"no model version named {key!r}")
        if version.is_active:
            raise CommandError(f"{version.name} is already the active version")
        redeployment = redeploy.start(version, Redeployment.Kind.ROLLBACK, str(options["reason"]))
        waiting = redeploy.resume()
        steps = redeployment.steps.all()
        self.stdout.write(
            f"rolled back to {version.name}: {sum(s.state == 'done' for s in steps)} bounty(ies) moved"
            + (f", {len(waiting)} waiting (claims in flight or the admin's signatures)" if waiting else "")
        )
