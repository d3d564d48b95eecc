"""Backup and restore of what the service cannot rebuild: the database, the media, the model artifacts.

One `.tar.gz` holds `database.json` (Django's `dumpdata`, natural keys, so it loads into any fresh database
of either engine), `media/` (the contributors' originals), `artifacts/` (every model artifact a ModelVersion
points at: slots locked to a model can only be claimed with it) and `manifest.json`: what is inside, the
number of objects of each model in the dump, the row counts of the bounty models and the sha256 of every
other member.

Restore checks the whole archive before it touches anything: every member's checksum, no member missing or
unlisted, every object of the dump parsed (its model, its fields, every plain field value) and the objects of
each model counted against the manifest. Only then does it migrate the target database and, in ONE
transaction, empty it (only with --replace: without it a database that holds bounty data is refused and
nothing is ever deleted), load the dump, check the row counts and put media and missing artifacts back; any
failure rolls the transaction back, so the database is left exactly as it was.

Archives of format 1 (before checksums) are still restored, checked as far as they can be: the dump parsed
object by object and its bounty rows counted against the manifest's row counts; a damaged media or artifact
file in them cannot be told from a good one.
Keys are not in the archive: they are backed up separately (deploy/README.md, "Keys").
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from django.apps import apps
from django.conf import settings
from django.core.exceptions import FieldDoesNotExist, ObjectDoesNotExist, ValidationError
from django.core.management import CommandError, call_command
from django.core.serializers.base import DeserializationError
from django.db import DatabaseError, connection, transaction
from django.db.models import Model

FORMAT = 2
READABLE_FORMATS = (1, 2)  # 1: no checksums and no per-model object counts
EXCLUDED = ("contenttypes", "auth.permission", "sessions")
DATABASE_MEMBER = "database.json"
CHUNK = 1 << 20


class BackupError(Exception):
    """The archive cannot be written, read or restored; the message says why."""


def counted_models() -> dict[str, type[Model]]:
    from bounty.models import Bounty, ModelVersion, Slot, Submission, Transaction

    return {
        "bounty.ModelVersion": ModelVersion,
        "bounty.Bounty": Bounty,
        "bounty.Slot": Slot,
        "bounty.Submission": Submission,
        "bounty.Transaction": Transaction,
    }


def row_counts() -> dict[str, int]:
    return {label: model._default_manager.count() for label, model in counted_models().items()}


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


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> str:
    """Add `data` as member `name`; returns its sha256 (of exactly the bytes written)."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o600, int(datetime.now(UTC).timestamp())
    archive.addfile(info, io.BytesIO(data))
    return hashlib.sha256(data).hexdigest()


def fixture_objects(data: bytes) -> list[dict]:
    """Every object of a `dumpdata` JSON dump, each checked the way loaddata will read it but without the
    database: a known model, known fields, every plain field value convertible. Foreign keys and unique
    values can only be checked by loading (inside the restore's transaction)."""
    try:
        objects = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BackupError(f"{DATABASE_MEMBER} is not complete JSON (truncated?): {error}") from None
    if not isinstance(objects, list):
        raise BackupError(f"{DATABASE_MEMBER} holds a {type(objects).__name__}, not a list of objects")
    for index, entry in enumerate(objects):
        where = f"{DATABASE_MEMBER} object {index}"
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("model"), str)
            and isinstance(entry.get("fields"), dict)
        ):
            raise BackupError(f"{where} is not a serialized model object: {str(entry)[:200]}")
        try:
            model = apps.get_model(entry["model"])
        except (LookupError, ValueError) as error:
            raise BackupError(f"{where}: unknown model {entry.get('model')!r} ({error})") from None
        for name, value in entry["fields"].items():
            try:
                field = model._meta.get_field(name)
            except FieldDoesNotExist:
                raise BackupError(f"{where} ({model._meta.label}): no field {name!r}") from None
            if field.is_relation:
                continue
            try:
                field.to_python(value)
            except (ValidationError, ValueError, TypeError) as error:
                raise BackupError(f"{where} ({model._meta.label}): field {name!r}: {error}") from None
    return objects


def object_counts(objects: list[dict]) -> dict[str, int]:
    """Objects per model label (lower case, as the dump spells it)."""
    return dict(sorted(Counter(entry["model"].lower() for entry in objects).items()))


def bounty_counts(objects_per_model: dict[str, int]) -> dict[str, int]:
    """The row counts of the bounty models that these objects make."""
    return {
        label: objects_per_model.get(model._meta.label_lower, 0) for label, model in counted_models().items()
    }


def create_backup(output: Path) -> dict:
    """Write the archive to `output` (mode 0600, via a temporary file renamed into place); returns its
    manifest. The counts come from the dump itself (parsed in full, so a dump cut short fails here, not on
    restore), so they always describe what the archive holds even if rows changed during the backup."""
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
        dump_bytes = dump.read_bytes()
        objects = object_counts(fixture_objects(dump_bytes))
        manifest: dict = {
            "format": FORMAT,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "database_vendor": connection.vendor,
            "counts": bounty_counts(objects),
            "objects": objects,
            "media_files": len(media),
            "artifacts": {f"artifacts/{i}/{p.name}": str(p) for i, p in enumerate(artifacts)},
            "checksums": {},
        }
        members = {f"media/{p.relative_to(media_root).as_posix()}": p for p in media}
        members.update((name, Path(path)) for name, path in manifest["artifacts"].items())
        descriptor, partial = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
        os.close(descriptor)
        os.chmod(partial, 0o600)  # contributor addresses and IPs are personal data
        try:
            with tarfile.open(partial, "w:gz") as archive:
                checksums = manifest["checksums"]
                checksums[DATABASE_MEMBER] = _add_bytes(archive, DATABASE_MEMBER, dump_bytes)
                for name, path in members.items():
                    # read once: the checksum is of exactly the bytes archived, even if the file changes
                    checksums[name] = _add_bytes(archive, name, path.read_bytes())
                # last, because only now are the checksums known (readers find it by name)
                _add_bytes(archive, "manifest.json", json.dumps(manifest, indent=2).encode())
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
    if not isinstance(manifest, dict) or manifest.get("format") not in READABLE_FORMATS:
        found = manifest.get("format") if isinstance(manifest, dict) else manifest
        raise BackupError(f"{archive_path}: backup format {found!r}, expected one of {READABLE_FORMATS}")
    return manifest


def _member_target(name: str, manifest: dict) -> PurePosixPath:
    """Where a member may be unpacked (relative), or BackupError for a name no backup writes."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise BackupError(f"the archive holds {name!r}, a path outside the archive")
    if (
        name == DATABASE_MEMBER
        or name in manifest["artifacts"]
        or (name.startswith("media/") and len(path.parts) > 1)
    ):
        return path
    raise BackupError(f"the archive holds {name!r}, which no backup writes")


def unpack_archive(archive_path: Path, manifest: dict, work: Path) -> dict[str, str]:
    """Unpack every file member into `work`, hashing it on the way; returns {member name: sha256}. Restore
    then reads only these files, so what it loads is exactly what it checked."""
    hashes: dict[str, str] = {}
    try:
        with tarfile.open(archive_path, "r:gz") as archive:
            for member in archive:
                if member.name == "manifest.json" or member.isdir():
                    continue
                if not member.isfile():
                    raise BackupError(f"the archive member {member.name!r} is not a regular file")
                target = work / _member_target(member.name, manifest)
                if member.name in hashes:
                    raise BackupError(f"the archive holds {member.name!r} twice")
                target.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(member)
                assert source is not None  # a regular file always has contents
                digest = hashlib.sha256()
                with target.open("wb") as sink:
                    while chunk := source.read(CHUNK):
                        digest.update(chunk)
                        sink.write(chunk)
                hashes[member.name] = digest.hexdigest()
    except (OSError, EOFError, tarfile.TarError) as error:
        raise BackupError(f"{archive_path} cannot be unpacked (truncated or damaged?): {error}") from None
    return hashes


def verify_archive(archive_path: Path, manifest: dict, work: Path) -> dict[str, int]:
    """Unpack the archive into `work` and check all of it (see the module docstring); returns the bounty
    row counts the restore must produce. Touches neither the database nor MEDIA_ROOT."""
    hashes = unpack_archive(archive_path, manifest, work)
    if DATABASE_MEMBER not in hashes:
        raise BackupError(f"the archive has no {DATABASE_MEMBER}")
    media = sum(1 for name in hashes if name.startswith("media/"))
    if media != manifest["media_files"]:
        listed_media = manifest["media_files"]
        raise BackupError(f"the archive holds {media} media file(s), its manifest says {listed_media}")
    if manifest["format"] >= 2:
        listed: dict[str, str] = manifest["checksums"]
        problems = [f"{name} is missing" for name in sorted(listed.keys() - hashes.keys())]
        problems += [f"{name} is not in the manifest" for name in sorted(hashes.keys() - listed.keys())]
        problems += [
            f"{name} does not match its checksum"
            for name in sorted(listed.keys() & hashes.keys())
            if listed[name] != hashes[name]
        ]
        if problems:
            raise BackupError(f"the archive is damaged or was altered: {'; '.join(problems)}")
    objects = object_counts(fixture_objects((work / DATABASE_MEMBER).read_bytes()))
    counts = bounty_counts(objects)
    if manifest["format"] >= 2 and objects != manifest["objects"]:
        raise BackupError(
            f"{DATABASE_MEMBER} holds objects {objects}, its manifest says {manifest['objects']}"
        )
    if counts != manifest["counts"]:
        raise BackupError(f"{DATABASE_MEMBER} holds {counts} rows, its manifest says {manifest['counts']}")
    return counts


def database_is_empty() -> bool:
    return not any(model._default_manager.exists() for model in counted_models().values())


def _install_files(work: Path, manifest: dict) -> None:
    """Put the archive's media into MEDIA_ROOT and its artifacts where they were, unless already there."""
    media_root = Path(settings.MEDIA_ROOT)
    unpacked_media = work / "media"
    if unpacked_media.is_dir():
        for source in sorted(p for p in unpacked_media.rglob("*") if p.is_file()):
            target = media_root / source.relative_to(unpacked_media)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    for name, location in manifest["artifacts"].items():
        target, source = Path(location), work / name
        if source.is_file() and not target.exists():  # never overwrite an artifact: same path, same weights
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)


def restore_backup(archive_path: Path, *, replace: bool = False) -> dict:
    """Restore the archive into the configured database and MEDIA_ROOT; returns the manifest. Raises
    BackupError, with the database as it was, if the archive is damaged, the database holds bounty data and
    `replace` is false, or the dump does not load."""
    manifest = read_manifest(archive_path)
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        expected = verify_archive(archive_path, manifest, work)
        call_command("migrate", interactive=False, verbosity=0)
        if not replace and not database_is_empty():
            raise BackupError(
                "the database already holds bounty data: restore into a fresh one (or --replace)"
            )
        try:
            with transaction.atomic():
                if replace:
                    # flush empties every table (the schedules a migration created too, which the dump
                    # brings back) and re-creates content types and permissions, which the dump refers to by
                    # natural key; inside the transaction, so a failed load brings every row back.
                    call_command("flush", interactive=False, verbosity=0)
                call_command("loaddata", str(work / DATABASE_MEMBER), verbosity=0)
                counts = row_counts()
                if counts != expected:
                    raise BackupError(
                        f"loaded row counts {counts} differ from the backup's {expected}: rolled back, "
                        "the database is unchanged"
                    )
                _install_files(work, manifest)
        except (
            DatabaseError,
            DeserializationError,
            ValidationError,
            ObjectDoesNotExist,
            ValueError,
            CommandError,
            OSError,
        ) as error:
            hint = (
                "" if replace else " (rows already in the database may clash with the archive's: --replace)"
            )
            raise BackupError(
                f"loading the archive was rolled back, the database is unchanged: {error}{hint}"
            ) from error
    return manifest
