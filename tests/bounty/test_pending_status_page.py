"""What a contributor reads about a kept (pending) image: that it is kept, until when, that a later model
reading it as the digit pays it automatically (or, for a bounty that does not pay so, that it does not),
and to keep the link; the page stops polling while it waits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bounty_testing import BaseTestCase

from bounty.models import Bounty, Reason, Submission


class PendingStatusTestCase(BaseTestCase):
    def pending(self) -> Submission:
        until = datetime(2026, 12, 30, 9, 15, tzinfo=UTC)
        return self.make_submission(
            state=Submission.State.PENDING, predicted_digit=1, pending_until=until, scores=list(range(10))
        )

    def test_the_page_says_it_is_kept_until_when_and_paid_automatically(self) -> None:
        submission = self.pending()
        status = self.client.get(f"/submissions/{submission.public_id}/status.json").json()
        self.assertEqual((status["state"], status["pending"], status["paid"]), ("pending", True, False))
        self.assertTrue(status["final"], "the page stops polling: the link brings the contributor back")
        note = status["pending_note"]
        self.assertIn("The network read it as a 1, not a 7.", note)
        self.assertIn("kept until 2026-12-30 09:15 UTC", note)
        self.assertIn(
            "if a future version reads your image as a 7 by then, it will be paid automatically", note
        )
        self.assertIn("Keep this link", note)
        html = self.client.get(f"/submissions/{submission.public_id}/").content.decode()
        self.assertIn('<div id="pending" class="keep">', html)
        self.assertIn("kept until 2026-12-30 09:15 UTC", html)
        self.assertNotIn('http-equiv="refresh"', html)

    def test_a_bounty_that_does_not_pay_on_learn_says_so(self) -> None:
        Bounty.objects.filter(pk=self.bounty.pk).update(pay_on_learn=False)
        note = self.client.get(f"/submissions/{self.pending().public_id}/status.json").json()["pending_note"]
        self.assertIn("does not pay kept images later", note)
        self.assertNotIn("paid automatically", note)

    def test_an_expired_image_says_why_and_what_to_do(self) -> None:
        submission = self.pending()
        Submission.objects.filter(pk=submission.pk).update(pending_until=self.now() - timedelta(seconds=1))
        submission.refresh_from_db()
        submission.reject(Reason.PENDING_EXPIRED)
        status = self.client.get(f"/submissions/{submission.public_id}/status.json").json()
        self.assertEqual((status["pending"], status["pending_note"]), (False, ""))
        self.assertIn("none read it as the digit in time", status["reason"])
        self.assertIn("your image stays collected", status["tip"])

    def now(self) -> datetime:
        return datetime.now(UTC)
