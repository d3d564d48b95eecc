"""`manage.py restore ARCHIVE [--replace]`: into a fresh database (migrated here) and MEDIA_ROOT."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from bounty.ops.backup import BackupError, restore_backup


class Command(BaseCommand):
    help = "Restore a `manage.py backup` archive into the configured (fresh) database and MEDIA_ROOT."

    def add_arguments(self, parser) -> None:
        parser.add_argument("archive", type=Path)
        parser.add_argument(
            "--replace",
            action="store_true",
            help="empty a database that already holds bounty data first, in the same transaction as the load "
            "(a restore that fails changes nothing)",
        )
        parser.add_argument("--json", action="store_true", help="print the manifest as JSON")

    def handle(self, *args: object, **options: object) -> None:
        archive: Path = options["archive"]  # type: ignore[assignment]
        if not archive.is_file():
            raise CommandError(f"no archive at {archive}")
        try:
            manifest = restore_backup(archive, replace=bool(options["replace"]))
        except BackupError as error:
            raise CommandError(f"restore failed: {error}") from error
        if options["json"]:
            self.stdout.write(json.dumps(manifest, indent=2))
            return
        counts = ", ".join(f"{n} {label.split('.')[1]}" for label, n in manifest["counts"].items())
        self.stdout.write(f"restored {archive} (made {manifest['created']}): {counts}")
