"""`manage.py backup` and `restore`: the same rows and files come back, nothing is overwritten, and an
archive that is damaged or does not load leaves the database exactly as it was."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django_celery_beat.models import PeriodicTask

from bounty.models import Bounty, ModelVersion, Slot, Submission, Transaction
from bounty.ops.backup import read_manifest

pytestmark = pytest.mark.django_db(transaction=True)


def add_submission(bounty: Bounty) -> Submission:
    submission = Submission(
        bounty=bounty, pixels=bytes(784), pixel_sha256="0" * 64, phash="0" * 64, claimed_digit=bounty.digit,
        payout_address="mxxx", state=Submission.State.REJECTED,
    )  # fmt: skip
    submission.original.save("digit.png", ContentFile(b"\x89PNG fake"), save=False)
    submission.save()
    return submission


def snapshot() -> tuple:
    return (
        sorted(
            (str(s.public_id), s.state, s.original.name, bytes(s.pixels)) for s in Submission.objects.all()
        ),
        sorted(Transaction.objects.values_list("txid", "kind", "raw_hex")),
        sorted(Slot.objects.values_list("vout", "state", "satoshis")),
    )


def test_it_restores_the_same_rows_and_media_into_an_empty_database(live_bounty, tmp_path, settings) -> None:  # type: ignore[no-untyped-def]
    submission = add_submission(live_bounty)
    archive = tmp_path / "backup.tar.gz"
    call_command("backup", "--output", str(archive))
    before = snapshot()
    manifest = read_manifest(archive)
    assert manifest["counts"]["bounty.Submission"] == 1 and manifest["media_files"] == 1
    assert oct(archive.stat().st_mode & 0o777) == "0o600"
    with tarfile.open(archive) as opened:
        assert f"media/{submission.original.name}" in opened.getnames()

    call_command("flush", interactive=False, verbosity=0)
    settings.MEDIA_ROOT = tmp_path / "restored-media"
    assert not Submission.objects.exists()
    call_command("restore", str(archive))
    assert snapshot() == before
    assert (settings.MEDIA_ROOT / submission.original.name).read_bytes() == b"\x89PNG fake"


def test_it_refuses_to_restore_over_existing_data(live_bounty, tmp_path) -> None:  # type: ignore[no-untyped-def]
    archive = tmp_path / "backup.tar.gz"
    call_command("backup", "--output", str(archive))
    add_submission(live_bounty)
    with pytest.raises(CommandError, match="already holds bounty data"):
        call_command("restore", str(archive))
    assert Submission.objects.count() == 1


def test_it_refuses_an_archive_that_is_not_a_backup(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bogus = tmp_path / "bogus.tar.gz"
    with tarfile.open(bogus, "w:gz") as archive:
        archive.add(__file__, arcname="something.py")
    with pytest.raises(CommandError, match="not a bounty backup"):
        call_command("restore", str(bogus))


def everything() -> tuple:
    """Every row a restore could touch: the bounty tables, the users and the schedules."""
    return (
        snapshot(),
        sorted(Bounty.objects.values_list("pk", "digit", "reward", "state")),
        sorted(ModelVersion.objects.values_list("pk", "name", "artifact")),
        sorted(User.objects.values_list("username", "password", "is_superuser")),
        sorted(PeriodicTask.objects.values_list("name", "task")),
    )


def rewrite_archive(
    archive: Path, change: Callable[[dict[str, bytes]], None], *, reseal: bool = True, format_1: bool = False
) -> None:
    """Rewrite the archive with `change` applied to its members ({name: bytes}, manifest.json aside).
    `reseal` updates the manifest's checksums to the changed members, as if the damage happened before
    the backup computed them; `format_1` rewrites it as the previous format (no checksums, no object
    counts)."""
    with tarfile.open(archive) as opened:
        members = {m.name: opened.extractfile(m).read() for m in opened.getmembers() if m.isfile()}  # type: ignore[union-attr]
    manifest = json.loads(members.pop("manifest.json"))
    change(members)
    if reseal:
        manifest["checksums"] = {name: hashlib.sha256(data).hexdigest() for name, data in members.items()}
    if format_1:
        manifest["format"] = 1
        manifest.pop("checksums", None)
        manifest.pop("objects", None)
    members["manifest.json"] = json.dumps(manifest).encode()
    with tarfile.open(archive, "w:gz") as opened:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            opened.addfile(info, io.BytesIO(data))


def change_dump(change: Callable[[list[dict]], list[dict]]) -> Callable[[dict[str, bytes]], None]:
    def apply(members: dict[str, bytes]) -> None:
        members["database.json"] = json.dumps(change(json.loads(members["database.json"]))).encode()

    return apply


def backed_up_service(live_bounty: Bounty, archive: Path) -> tuple:  # type: ignore[type-arg]
    """A service with a submission and an admin, backed up to `archive`, then changed (a second
    submission, a second user); returns the rows as they are after the change."""
    add_submission(live_bounty)
    User.objects.create_superuser("alice", password="correct horse battery staple")
    call_command("backup", "--output", str(archive))
    add_submission(live_bounty)
    User.objects.create_user("bob", password="another staple")
    return everything()


def cut_mid_object(members: dict[str, bytes]) -> None:
    members["database.json"] = members["database.json"][: len(members["database.json"]) // 2]


def cut_at_an_object(members: dict[str, bytes]) -> None:
    change_dump(lambda objects: objects[:-1])(members)


@pytest.mark.parametrize(
    ("cut", "reseal", "error"),
    [
        (cut_mid_object, True, "database.json is not complete JSON"),
        (cut_at_an_object, True, "its manifest says"),
        (cut_mid_object, False, "database.json does not match its checksum"),
    ],
    ids=["cut-mid-object", "cut-at-an-object-boundary", "cut-after-the-checksum"],
)
def test_it_leaves_every_row_and_user_in_place_when_the_dump_is_truncated(  # type: ignore[no-untyped-def]
    live_bounty, tmp_path, cut, reseal, error
) -> None:
    archive = tmp_path / "backup.tar.gz"
    before = backed_up_service(live_bounty, archive)
    rewrite_archive(archive, cut, reseal=reseal)
    with pytest.raises(CommandError, match=error):
        call_command("restore", str(archive), "--replace")
    assert everything() == before
    assert Submission.objects.count() == 2 and User.objects.count() == 2


@pytest.mark.parametrize("member", ["database.json", "media"])
def test_it_refuses_a_tampered_member_before_anything_changes(  # type: ignore[no-untyped-def]
    live_bounty, tmp_path, settings, member
) -> None:
    archive = tmp_path / "backup.tar.gz"
    before = backed_up_service(live_bounty, archive)

    def tamper(members: dict[str, bytes]) -> None:
        if member == "database.json":  # still valid JSON with the same objects: only the checksum tells
            members["database.json"] = members["database.json"].replace(b'"reward": 1000', b'"reward": 1')
            assert b'"reward": 1,' in members["database.json"]
        else:
            name = next(name for name in members if name.startswith("media/"))
            members[name] = b"\x89PNG something else"

    rewrite_archive(archive, tamper, reseal=False)
    settings.MEDIA_ROOT = tmp_path / "restored-media"
    with pytest.raises(CommandError, match=r"damaged or was altered: .* does not match its checksum"):
        call_command("restore", str(archive), "--replace")
    assert everything() == before
    assert not (tmp_path / "restored-media").exists()


def orphan_slot(objects: list[dict]) -> list[dict]:
    slot = next(o for o in objects if o["model"] == "bounty.slot")
    slot["fields"]["bounty"] = 999_999  # no such bounty: only the database can tell
    return objects


def null_satoshis(objects: list[dict]) -> list[dict]:
    slot = next(o for o in objects if o["model"] == "bounty.slot")
    slot["fields"]["satoshis"] = None  # a valid Python value that the NOT NULL column refuses
    return objects


def duplicate_outpoint(objects: list[dict]) -> list[dict]:
    first, second = [o for o in objects if o["model"] == "bounty.slot"][:2]
    second["fields"]["vout"] = first["fields"]["vout"]  # two slots on one output: the unique constraint
    return objects


@pytest.mark.parametrize("damage", [orphan_slot, null_satoshis, duplicate_outpoint])
def test_it_rolls_everything_back_when_the_dump_fails_to_load(live_bounty, tmp_path, damage) -> None:  # type: ignore[no-untyped-def]
    archive = tmp_path / "backup.tar.gz"
    before = backed_up_service(live_bounty, archive)
    rewrite_archive(archive, change_dump(damage))
    with pytest.raises(CommandError, match="rolled back, the database is unchanged"):
        call_command("restore", str(archive), "--replace")
    assert everything() == before


def test_it_round_trips_a_good_archive_over_changed_data_with_replace(
    live_bounty, tmp_path, settings
) -> None:  # type: ignore[no-untyped-def]
    archive = tmp_path / "backup.tar.gz"
    submission = add_submission(live_bounty)
    User.objects.create_superuser("alice", password="correct horse battery staple")
    call_command("backup", "--output", str(archive))
    backed_up = everything()
    manifest = read_manifest(archive)
    with tarfile.open(archive) as opened:
        contents = {m.name: opened.extractfile(m).read() for m in opened.getmembers() if m.isfile()}  # type: ignore[union-attr]
    assert manifest["checksums"] == {
        name: hashlib.sha256(data).hexdigest() for name, data in contents.items() if name != "manifest.json"
    }
    assert manifest["objects"]["bounty.submission"] == 1 and manifest["objects"]["auth.user"] == 1
    assert manifest["objects"]["bounty.slot"] == manifest["counts"]["bounty.Slot"] == 2

    add_submission(live_bounty)
    User.objects.create_user("bob", password="another staple")
    settings.MEDIA_ROOT = tmp_path / "restored-media"
    call_command("restore", str(archive), "--replace")
    assert everything() == backed_up
    assert (settings.MEDIA_ROOT / submission.original.name).read_bytes() == b"\x89PNG fake"


def test_it_never_deletes_existing_rows_without_replace(live_bounty, tmp_path) -> None:  # type: ignore[no-untyped-def]
    archive = tmp_path / "backup.tar.gz"
    add_submission(live_bounty)
    call_command("backup", "--output", str(archive))
    backed_up = snapshot()
    call_command("flush", interactive=False, verbosity=0)
    # a fresh database in which someone already made the admin account: no bounty data, so restore goes on
    User.objects.create_superuser("admin", password="made before the restore")
    call_command("restore", str(archive))
    assert snapshot() == backed_up
    assert User.objects.filter(username="admin").exists()


def test_it_still_restores_a_format_1_archive_and_refuses_a_truncated_one(live_bounty, tmp_path) -> None:  # type: ignore[no-untyped-def]
    good, cut = tmp_path / "good.tar.gz", tmp_path / "cut.tar.gz"
    before = backed_up_service(live_bounty, good)
    cut.write_bytes(good.read_bytes())
    rewrite_archive(good, lambda members: None, format_1=True)
    rewrite_archive(cut, cut_at_an_object, format_1=True)
    assert read_manifest(good)["format"] == 1 and "checksums" not in read_manifest(good)

    with pytest.raises(CommandError, match="its manifest says"):
        call_command("restore", str(cut), "--replace")
    assert everything() == before
    call_command("restore", str(good), "--replace")
    assert Submission.objects.count() == 1 and User.objects.count() == 1
