from __future__ import annotations

import pytest
from bounty_testing import BaseTestCase

from bounty.models import Reason, Submission


class SubmissionStateTestCase(BaseTestCase):
    def test_it_advances_along_allowed_transitions_and_stamps_times(self) -> None:
        submission = self.make_submission()
        self.assertTrue(submission.advance(Submission.State.CHECKED))
        self.assertIsNotNone(submission.checked_at)
        submission.refresh_from_db()
        self.assertEqual(submission.state, "checked")

    def test_it_refuses_a_transition_the_machine_does_not_allow(self) -> None:
        submission = self.make_submission()
        with pytest.raises(ValueError):
            submission.advance(Submission.State.CONFIRMED)

    def test_it_reports_when_another_worker_moved_the_row_first(self) -> None:
        submission = self.make_submission()
        stale = Submission.objects.get(pk=submission.pk)
        self.assertTrue(submission.advance(Submission.State.CHECKED))
        self.assertFalse(stale.advance(Submission.State.CHECKED))

    def test_it_explains_a_wrong_digit_in_plain_words(self) -> None:
        submission = self.make_submission()
        submission.predicted_digit = 3
        submission.reject(Reason.WRONG_DIGIT)
        self.assertIn("read your image as a 3", submission.reason_text)

    def test_final_states_are_final(self) -> None:
        submission = self.make_submission()
        submission.reject(Reason.DUPLICATE)
        self.assertTrue(submission.is_final)
        with pytest.raises(ValueError):
            submission.advance(Submission.State.CHECKED)
