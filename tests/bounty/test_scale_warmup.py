"""A worker compiles the open bounties' contracts and loads its models before it takes a task.

Without it, the first submissions each worker took paid for the contract's compilation, the native VM's
form of the locking script and MNIST's neighbours (a second and more under load_http's burst, while the queue
grew). Here the claim path, after warm_up, computes none of them; the warm-up skips what no open bounty needs,
survives a failure, and a real worker runs it before its pool starts and then pays a claim.
"""

from __future__ import annotations

import logging
import time
from unittest import mock

import pytest
from bounty_testing import NOT_ON_POSTGRES_RERUN, ChainTestCase, mnist_pixels
from fault_support import (
    FAULT_BROKER_URL,
    deploy_bounty,
    png_of,
    private_queue,
    start_fault_worker,
    upload,
    wait_until,
)

from bounty import chain, pipeline, warmup
from bounty.classify import reference_model
from bounty.models import Bounty, Submission
from bounty.retraining import dataset
from classifier.second_opinion.model import load_cached
from contracts import vm
from contracts.keys import Key


def forget_everything() -> None:
    for cached in (chain.slot_contract, chain.batch_slot_contract, vm.native_chunks, vm.parsed_script):
        cached.cache_clear()
    for cached in (reference_model, load_cached, dataset.mnist_train_as_float):
        cached.cache_clear()


class WarmUpTestCase(ChainTestCase):
    def setUp(self) -> None:
        super().setUp()
        forget_everything()

    def test_after_it_a_claim_compiles_and_converts_nothing(self) -> None:
        done = warmup.warm_up()
        # The base bounty has no keys (never deployed): only the live one has a contract.
        self.assertEqual(done["contracts"][0], 1)
        self.assertEqual(done["second opinion"][0], 1)
        self.assertEqual(done["nearest neighbours"][0], 1)  # the live bounty keeps pending images
        made = (chain.slot_contract.cache_info().misses, vm.native_chunks.cache_info().misses)
        self.assertEqual(made, (1, 1))

        submission = self.make_submission(mnist_pixels(7), bounty=self.live, payout_address=self.bob_address)
        self.assertEqual(pipeline.process(submission.pk), Submission.State.BROADCAST)
        self.assertEqual(
            (chain.slot_contract.cache_info().misses, vm.native_chunks.cache_info().misses), made
        )
        self.assertGreater(vm.native_chunks.cache_info().hits, 0)
        self.assertEqual(reference_model.cache_info().misses, 1)
        self.assertEqual(load_cached.cache_info().misses, 1)

        pending = self.make_submission(mnist_pixels(3), bounty=self.live, payout_address=self.charlie_address)
        self.assertEqual(pipeline.process(pending.pk), Submission.State.PENDING)
        self.assertEqual(dataset.mnist_train_as_float.cache_info().misses, 1)

    def test_it_leaves_out_what_no_open_bounty_needs(self) -> None:
        Bounty.objects.update(pending_days=0)
        Bounty.objects.filter(pk=self.live.pk).update(paused=True)
        with self.settings(SECOND_OPINION=False):
            done = warmup.warm_up()
        needed = {name: count for name, (count, _) in done.items() if name != "stored originals"}
        self.assertEqual(needed, dict.fromkeys(needed, 0))
        self.assertEqual(chain.slot_contract.cache_info().currsize, 0)
        self.assertEqual(dataset.mnist_train_as_float.cache_info().currsize, 0)

    def test_one_contract_per_model_digit_and_keys(self) -> None:
        self.create_bounty(digit=7, slots=1)  # the same contract as the live bounty's
        self.create_bounty(digit=3, slots=1)
        self.assertEqual(warmup.warm_up()["contracts"][0], 2)
        self.assertEqual(chain.slot_contract.cache_info().misses, 2)

    def test_a_failure_is_logged_and_the_rest_still_warms(self) -> None:
        with (
            mock.patch.object(chain, "bounty_contract", side_effect=RuntimeError("no artifact")),
            self.assertLogs("bounty.warmup", logging.WARNING) as logs,
        ):
            done = warmup.warm_up()
        self.assertEqual(done["contracts"][0], 0)
        self.assertEqual(done["second opinion"][0], 1)
        self.assertIn(
            "warm-up of the contracts failed (the first task computes it): no artifact", logs.output[0]
        )
        self.assertRegex(warmup.describe(done), r"^contracts 0 \(\d+\.\d\d s\), second opinion 1 \(")


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
@NOT_ON_POSTGRES_RERUN
def test_a_real_worker_warms_up_before_its_pool_starts_then_pays(runtime, settings) -> None:  # type: ignore[no-untyped-def]
    bounty = deploy_bounty(runtime, settings, digit=7, slots=2)
    queue = f"bounty-warmup-{time.monotonic_ns()}"
    with private_queue(queue):
        process = start_fault_worker(runtime, FAULT_BROKER_URL, queue, "warm", concurrency=2)
        try:
            log_file = runtime.base / "warm.log"
            wait_until(lambda: "ready." in log_file.read_text(errors="replace"), 90, "the worker to be ready")
            log = log_file.read_text(errors="replace")
            assert "warmed up in" in log, log[-2000:]
            line = next(line for line in log.splitlines() if "warmed up in" in line)
            assert (
                "contracts 1 (" in line and "second opinion 1 (" in line and "nearest neighbours 1 (" in line
            )
            assert log.index("warmed up in") < log.index("ready.")

            submission = upload(bounty, png_of(mnist_pixels(7)), Key.generate("testnet").address)
            wait_until(
                lambda: Submission.objects.get(pk=submission.pk).state == Submission.State.BROADCAST,
                60,
                "the claim to be broadcast",
            )
        finally:
            process.terminate()
            process.wait(timeout=30)
