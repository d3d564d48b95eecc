"""The reviewers' grid in Chromium: the first image has the focus, one key confirms or discards it (the same
CSRF-protected POST as its button), arrows move, x selects for a bulk action."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from bounty_testing import staff
from test_contributor_browser import browser, make_bounty, make_submission  # noqa: F401  (browser: a fixture)

from bounty.models import Reason, Submission

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
GRID = "/admin/bounty/reviewitem/pending/"


@pytest.fixture
def desk(browser):  # type: ignore[no-untyped-def]  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


def test_keys_confirm_discard_and_select(desk, live_server) -> None:  # type: ignore[no-untyped-def]
    bounty = make_bounty(digit=7)
    until = datetime.now(UTC) + timedelta(days=30)
    kept = [make_submission(bounty, "pending", predicted_digit=3, pending_until=until) for _ in range(4)]
    staff("rita", "reviewer")
    desk.goto(f"{live_server.url}/admin/login/?next={GRID}")
    desk.fill("#id_username", "rita")
    desk.fill("#id_password", "password-of-rita")
    desk.click("input[type=submit]")
    desk.wait_for_url(f"**{GRID}")

    def state(submission: Submission) -> tuple[str, bool]:
        row = Submission.objects.get(pk=submission.pk)
        return row.state, row.review_approved

    desk.keyboard.press("c")  # the first (oldest) image has the focus
    desk.wait_for_selector("text=Confirmed 1 pending image(s).")
    assert state(kept[0]) == ("pending", True)
    # The confirmed one now sorts after the unreviewed: the first tile is the second image.
    desk.keyboard.press("d")
    desk.wait_for_selector("text=Discarded 1 pending image(s).")
    second = Submission.objects.get(pk=kept[1].pk)
    assert (second.state, second.reason) == ("rejected", Reason.REVIEWER)
    desk.keyboard.press("x")
    desk.keyboard.press("ArrowRight")
    desk.keyboard.press("x")
    desk.click("button[name=bulk][value=confirm]")
    desk.wait_for_selector("text=Confirmed 2 pending image(s).")
    assert [state(s) for s in kept[2:]] == [("pending", True), ("pending", True)]
