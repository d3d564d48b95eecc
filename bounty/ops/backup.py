"""Backup and restore of what the service cannot rebuild: the database, the media, the model artifacts.

One `.tar.gz` holds `manifest.json` (what is inside, with row counts), `database.json` (Django's `dumpdata`,
natural keys, so it loads into any fresh database of either engine), `media/` (the contributors' originals)
and `artifacts/` (every model artifact a ModelVersion points at: slots locked to a model can only be claimed
with it). Restore migrates the target database, refuses one that already holds bounty data (unless told to
replace it), loads the dump, puts media and missing artifacts back and checks the row counts.
Keys are not in the archive: they are backed up separately (deploy/README.md, "Keys").
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.management import call_command
from django.db import connection

FORMAT = 1
EXCLUDED = ("contenttypes", "auth.permission", "sessions")


class BackupError(Exception):
    """The archive cannot be written, read or restored; the message says why."""


def counted_models() -> dict[str, type]:
    from bounty.models import Bounty, ModelVersion, Slot, Submission, Transaction

    return {
        "bounty.ModelVersion": ModelVersion,
        "bounty.Bounty": Bounty,
        "bounty.Slot": Slot,
        "bounty.Submission": Submission,
        "bounty.Transaction": Transaction,
    }


def row_counts() -> dict[str, int]:
    return {label: model.objects.count() for label, model in counted_models().items()}


def media_files() -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def artifact_files() -> list[Path]:
    from bounty.models import ModelVersion

    files: set[Path] = set()
    for artifact in ModelVersion.objects.values_list("artifact", flat=True):
        path = Path(artifact)
        for candidate in (path, path.with_suffix(".json")):
            if candidate.is_file():
                files.add(candidate.resolve())
    return sorted(files)


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o600, int(datetime.now(UTC).timestamp())
    archive.addfile(info, io.BytesIO(data))


def create_backup(output: Path) -> dict:
    """Write the archive to `output` (mode 0600, via a temporary file renamed into place); returns its
    manifest."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    media, artifacts = media_files(), artifact_files()
    media_root = Path(settings.MEDIA_ROOT)
    with tempfile.TemporaryDirectory() as work:
        dump = Path(work) / "database.json"
        call_command(
            "dumpdata", natural_foreign=True, natural_primary=True, exclude=list(EXCLUDED),
            output=str(dump), indent=None, verbosity=0,
        )  # fmt: skip
        manifest = {
            "format": FORMAT,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "database_vendor": connection.vendor,
            "counts": row_counts(),
            "media_files": len(media),
            "artifacts": {f"artifacts/{i}/{p.name}": str(p) for i, p in enumerate(artifacts)},
        }
        descriptor, partial = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
        os.close(descriptor)
        os.chmod(partial, 0o600)  # contributor addresses and IPs are personal data
        try:
            with tarfile.open(partial, "w:gz") as archive:
                _add_bytes(archive, "manifest.json", json.dumps(manifest, indent=2).encode())
                archive.add(dump, arcname="database.json")
                for path in media:
                    archive.add(path, arcname=f"media/{path.relative_to(media_root).as_posix()}")
                for name, path in manifest["artifacts"].items():
                    archive.add(path, arcname=name)
            os.replace(partial, output)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
    return manifest


def read_manifest(archive_path: Path) -> dict:
    try:
        with tarfile.open(archive_path, "r:gz") as archive:
            member = archive.extractfile("manifest.json")
            if member is None:
                raise KeyError("manifest.json")
            manifest = json.loads(member.read())
    except (OSError, KeyError, tarfile.TarError, json.JSONDecodeError) as error:
        raise BackupError(f"{archive_path} is not a bounty backup: {error}") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{archive_path}: backup format {manifest.get('format')!r}, expected {FORMAT}")
    return manifest


def _safe_member(name: str, prefix: str) -> PurePosixPath | None:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not name.startswith(prefix):
        return None
    return path.relative_to(prefix)


def database_is_empty() -> bool:
    return not any(model.objects.exists() for model in counted_models().values())


def restore_backup(archive_path: Path, *, replace: bool = False) -> dict:
    """Restore the archive into the configured database and MEDIA_ROOT; returns the manifest."""
    manifest = read_manifest(archive_path)
    call_command("migrate", interactive=False, verbosity=0)
    if not database_is_empty() and not replace:
        raise BackupError("the database already holds bounty data: restore into a fresh one (or --replace)")
    # flush empties every table (the schedules a migration created too, which the dump brings back) and
    # re-creates content types and permissions, which the dump refers to by natural key.
    call_command("flush", interactive=False, verbosity=0)
    media_root = Path(settings.MEDIA_ROOT)
    with tempfile.TemporaryDirectory() as work, tarfile.open(archive_path, "r:gz") as archive:
        archive.extract("database.json", work, filter="data")
        call_command("loaddata", str(Path(work) / "database.json"), verbosity=0)
        for member in archive.getmembers():
            if not member.isfile():
                continue
            relative = _safe_member(member.name, "media/")
            if relative is not None:
                target = media_root / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(member)
                assert source is not None
                target.write_bytes(source.read())
            elif member.name in manifest["artifacts"]:
                target = Path(manifest["artifacts"][member.name])
                if not target.exists():  # never overwrite an artifact: same path, same weights
                    target.parent.mkdir(parents=True, exist_ok=True)
                    source = archive.extractfile(member)
                    assert source is not None
                    target.write_bytes(source.read())
    counts = row_counts()
    if counts != manifest["counts"]:
        raise BackupError(f"restored row counts {counts} differ from the backup's {manifest['counts']}")
    return manifest
