"""The admin screens for collected images a staff reviewer uses: flagged images listed with why, approved to
train on, or excluded for good."""

from __future__ import annotations

from bounty_testing import BaseTestCase
from django.contrib.auth.models import Permission, User

from bounty.retraining import dataset
from bounty.retraining.models import CollectedImage

URL = "/admin/retraining/collectedimage/"


class FlaggedReviewTestCase(BaseTestCase):
    def setUp(self) -> None:
        super().setUp()
        # Dora reviews images: staff, with permission to see and change collected images and nothing else.
        self.dora = User.objects.create_user("dora", "dora@example.org", "password-of-dora", is_staff=True)
        self.dora.user_permissions.add(
            *Permission.objects.filter(
                content_type__app_label="retraining",
                codename__in=["view_collectedimage", "change_collectedimage"],
            )
        )
        self.flagged = [
            self.collect(CollectedImage.Role.FLAGGED, f"labelled 8, but the model read {n}") for n in (3, 5)
        ]
        self.heldout = self.collect(CollectedImage.Role.HELDOUT, "")

    def collect(self, role: str, note: str) -> CollectedImage:
        submission = self.make_submission(true_digit=8)
        return CollectedImage.objects.create(
            submission=submission, pixel_sha256=submission.pixel_sha256, label=8, source="reviewer",
            role=role, note=note,
        )  # fmt: skip

    def act(self, action: str, *images: CollectedImage):  # type: ignore[no-untyped-def]
        data = {"action": action, "_selected_action": [str(image.pk) for image in images], "index": "0"}
        return self.client.post(URL, data, follow=True)

    def roles(self) -> list[str]:
        return [CollectedImage.objects.get(pk=i.pk).role for i in (*self.flagged, self.heldout)]

    def test_it_lists_flagged_images_with_the_reason(self) -> None:
        self.client.force_login(self.dora)
        page = self.client.get(URL, {"role__exact": "flagged"})
        self.assertContains(page, "labelled 8, but the model read 3")
        self.assertContains(page, "labelled 8, but the model read 5")
        self.assertContains(page, "2 collected images")

    def test_a_reviewer_approves_a_flagged_image_for_training(self) -> None:
        self.client.force_login(self.dora)
        self.assertEqual(dataset.new_since_last_training(), 0)
        response = self.act("train_on", self.flagged[0], self.heldout)
        self.assertContains(response, "1 image(s) will be trained on.")
        self.assertEqual(self.roles(), ["train", "flagged", "heldout"], "a held-out image stays held out")
        self.assertEqual(
            CollectedImage.objects.get(pk=self.flagged[0].pk).note, "approved for training by a reviewer"
        )
        _, labels, ids = dataset.arrays(CollectedImage.Role.TRAIN)
        self.assertEqual((ids, list(labels)), ([self.flagged[0].pk], [8]))
        self.assertEqual(dataset.new_since_last_training(), 1)

    def test_a_reviewer_excludes_images_from_training_for_good(self) -> None:
        self.client.force_login(self.dora)
        response = self.act("exclude_from_training", self.flagged[1])
        self.assertContains(response, "1 image(s) excluded.")
        self.assertEqual(self.roles(), ["flagged", "excluded", "heldout"])
        self.act("train_on", self.flagged[1])  # approving only applies to flagged images
        self.assertEqual(self.roles(), ["flagged", "excluded", "heldout"])
        self.assertEqual(dataset.arrays(CollectedImage.Role.TRAIN)[2], [])

    def test_someone_who_is_not_staff_cannot_review(self) -> None:
        charlie = User.objects.create_user("charlie", "charlie@example.org", "password-of-charlie")
        self.client.force_login(charlie)
        self.assertEqual(self.client.get(URL).status_code, 302)
        self.act("train_on", self.flagged[0])
        self.assertEqual(self.roles(), ["flagged", "flagged", "heldout"])
