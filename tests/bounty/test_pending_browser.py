"""What a contributor sees in Chromium when the image is kept pending, and when it is later paid on learn:
the page turns to the kept note by itself, stops asking, and names the version that paid."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from test_contributor_browser import (  # noqa: F401  (browser, screen and never_queued are fixtures)
    SCORES,
    assert_no_none,
    browser,
    make_bounty,
    make_submission,
    move,
    never_queued,
    screen,
)

from bounty.models import ModelVersion

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
UNTIL = datetime(2026, 12, 30, 9, 15, tzinfo=UTC)


def test_a_kept_image_says_so_as_it_happens_and_the_page_stops_polling(screen, live_server) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    submission = make_submission(make_bounty(digit=7))
    page = screen.page
    page.goto(f"{live_server.url}/submissions/{submission.public_id}/")
    assert not page.locator("#pending").is_visible()
    move(submission, "pending", predicted_digit=3, scores=SCORES, pending_until=UNTIL)
    page.wait_for_selector("#pending", state="visible", timeout=15_000)
    note = page.inner_text("#pending-note")
    assert "The network read it as a 3, not a 7." in note
    assert "kept until 2026-12-30 09:15 UTC" in note
    assert "paid automatically" in note and "Keep this link" in note
    assert "kept for later" in page.inner_text("#headline")
    assert not page.locator("#rejection").is_visible()
    assert_no_none(screen)
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if "status.json" in request.url else None)
    page.wait_for_timeout(4000)
    assert asked == [], "a kept image's page does not poll: its link brings the contributor back"


def test_a_paid_on_learn_image_names_the_version_that_paid(screen, live_server) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    bounty = make_bounty(digit=7)
    learned = ModelVersion.objects.create(name="retrained-7-abcd", artifact="x.npz", sha256="ef" * 32)
    submission = make_submission(bounty, "pending", predicted_digit=3, pending_until=UNTIL)
    move(submission, "confirmed", paid_by_version=learned)
    screen.page.goto(f"{live_server.url}/submissions/{submission.public_id}/")
    text = screen.page.inner_text("#paid-by")
    assert "model version retrained-7-abcd" in text and "read your image as a 7" in text
    assert not screen.page.locator("#pending").is_visible()
    assert_no_none(screen)
