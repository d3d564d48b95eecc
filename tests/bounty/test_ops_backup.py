"""`manage.py backup` and `restore`: the same rows and files come back, and nothing is overwritten."""

from __future__ import annotations

import tarfile

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command

from bounty.models import Bounty, Slot, Submission, Transaction
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
