"""When a batch bounty's waiting images are claimed (bounty.batches.decide): the K oldest at once, or all of
them once the oldest has waited the maximum. The claims themselves: test_batch_claims.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pytest_django import Settings

from bounty.batches import BatchAction, WaitingImage, decide, max_wait

LANES = 4
NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def waiting(*ages: float) -> list[WaitingImage]:
    return [WaitingImage(100 + i, NOW - timedelta(seconds=age)) for i, age in enumerate(ages)]


def test_a_full_batch_is_claimed_at_once_oldest_first() -> None:
    decision = decide(waiting(5, 50, 1, 30, 2), LANES, NOW, timedelta(seconds=60))
    assert decision.action is BatchAction.CLAIM
    assert decision.members == (101, 103, 100, 104), "the four oldest, oldest first"
    assert decision.missing == 0


def test_a_partial_batch_waits_until_its_oldest_image_has_waited_the_maximum() -> None:
    decision = decide(waiting(20, 5), LANES, NOW, timedelta(seconds=60))
    assert decision.action is BatchAction.WAIT and decision.members == ()
    assert (decision.missing, decision.wait_seconds) == (2, 40)
    assert decision.status() == "waiting for 2 more images or at most 40 seconds"
    almost = decide(waiting(59.5, 5), LANES, NOW, timedelta(seconds=60))
    assert almost.status() == "waiting for 2 more images or at most 1 seconds"
    late = decide(waiting(60, 5, 3), LANES, NOW, timedelta(seconds=60))
    assert late.action is BatchAction.CLAIM and late.members == (100, 101, 102)
    assert late.missing == 1


def test_nothing_waiting_means_nothing_to_claim() -> None:
    decision = decide([], LANES, NOW, timedelta(seconds=60))
    assert decision.action is BatchAction.WAIT and decision.missing == LANES
    assert decision.status() == "waiting for 4 more images or at most 60 seconds"
    with pytest.raises(ValueError, match="at least one"):
        decide([], 0, NOW)


def test_the_maximum_wait_is_a_setting_of_60_seconds_by_default(settings: Settings) -> None:
    assert max_wait() == timedelta(seconds=60)
    settings.BATCH_MAX_WAIT = 15
    assert max_wait() == timedelta(seconds=15)
    assert decide(waiting(10), LANES, NOW).wait_seconds == 5
