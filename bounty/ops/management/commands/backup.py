"""`manage.py backup [--output FILE]`: database, media and model artifacts in one archive."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from bounty.ops.backup import BackupError, create_backup


class Command(BaseCommand):
    help = "Back up the database, the media files and the model artifacts into one archive."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--output", type=Path, help="archive path (default: VAR_DIR/backups/bounty-<UTC time>.tar.gz)"
        )
        parser.add_argument("--json", action="store_true", help="print the manifest as JSON")

    def handle(self, *args: object, **options: object) -> None:
        output = options["output"] or Path(settings.VAR_DIR) / "backups" / (
            f"bounty-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.tar.gz"
        )
        try:
            manifest = create_backup(Path(output))  # type: ignore[arg-type]
        except (BackupError, OSError) as error:
            raise CommandError(f"backup failed: {error}") from error
        if options["json"]:
            self.stdout.write(json.dumps({"archive": str(output), **manifest}, indent=2))
            return
        counts = ", ".join(f"{n} {label.split('.')[1]}" for label, n in manifest["counts"].items())
        self.stdout.write(
            f"wrote {output}: {counts}, {manifest['media_files']} media file(s), "
            f"{len(manifest['artifacts'])} artifact file(s)"
        )
