"""`manage.py render_plots [--version N] [--force]`: draw the model page's plots and store them.

The retraining job draws them as it registers and promotes versions; this command is for the rest: after
`bootstrap` or an activation or rollback by hand, or to draw every plot again with --force.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bounty.models import ModelVersion
from bounty.retraining import plots


class Command(BaseCommand):
    help = "Draw the model page's plots that are not stored yet (--force: all of them again)."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # --version here names a model version; it replaces Django's "print Django's version and exit".
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--version", help="id or name of the version whose own plots to draw (default: the active one)"
        )
        parser.add_argument("--force", action="store_true", help="draw again the plots already stored")

    def handle(self, *args: object, **options: object) -> None:
        version = None
        if options["version"] is not None:
            key = str(options["version"])
            version = ModelVersion.objects.filter(name=key).first()
            if version is None and key.isdigit():
                version = ModelVersion.objects.filter(pk=int(key)).first()
            if version is None:
                raise CommandError(f"no model version named {key!r}")
        written = plots.render(version, force=bool(options["force"]))
        if not written:
            self.stdout.write("every plot is drawn already")
        for path in written:
            self.stdout.write(f"drew {path.relative_to(plots.root())}")
