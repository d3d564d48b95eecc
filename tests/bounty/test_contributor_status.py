"""The status page and its JSON in every state a submission can be in: never a "None", the link to keep, the
transaction on a block explorer of the configured network, and a rejection explained with what to do."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from bounty_testing import BaseTestCase

from bounty.models import Reason, Submission, Transaction

SCORES = [-120, 40, 15, 310, -8, 77, 2, 96, -40, 11]  # read as a 3
TXID = "ab" * 32


class Page(HTMLParser):
    """The ids of a page, its elements' attributes, and its visible text (what `hidden` leaves)."""

    VOID = frozenset({"area", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"})

    def __init__(self, html: str) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.hidden_depth = 0
        self.stack: list[bool] = []
        self.visible: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = {name: value or "" for name, value in attrs}
        self.elements.append((tag, attributes))
        if "id" in attributes:
            self.ids.add(attributes["id"])
        if tag in self.VOID:
            return
        hides = "hidden" in attributes or tag in ("script", "style", "head", "noscript")
        self.stack.append(hides)
        self.hidden_depth += hides

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID or not self.stack:
            return
        self.hidden_depth -= self.stack.pop()

    def handle_data(self, data: str) -> None:
        if not self.hidden_depth:
            self.visible.append(data)

    @property
    def text(self) -> str:
        return re.sub(r"\s+", " ", " ".join(self.visible))

    def element(self, id_: str) -> dict[str, str]:
        return next(attributes for _, attributes in self.elements if attributes.get("id") == id_)


def no_none(value: object) -> bool:
    if value is None:
        return False
    if isinstance(value, dict):
        return all(no_none(item) for item in value.values())
    if isinstance(value, list):
        return all(no_none(item) for item in value)
    return True


class StatusPageTestCase(BaseTestCase):
    def submission_in(self, state: str, **fields: object) -> Submission:
        """A submission moved straight to `state` with what that state carries (scores, a claim, a block)."""
        submission = self.make_submission()
        txid = str(fields.pop("txid", f"{submission.pk:064x}"))
        changes: dict[str, object] = {"state": state}
        if state != "received":
            changes.update(predicted_digit=7, scores=[*SCORES[:7], 400, *SCORES[8:]])
        if state in ("broadcast", "confirmed"):
            confirmed = state == "confirmed"
            changes["claim_tx"] = Transaction.objects.create(
                txid=txid, raw_hex="00", kind=Transaction.Kind.CLAIM, status=state,
                block_height=812 if confirmed else None, confirmations=1 if confirmed else 0,
            )  # fmt: skip
        changes.update(fields)
        Submission.objects.filter(pk=submission.pk).update(**changes)
        return Submission.objects.get(pk=submission.pk)

    def every_state(self) -> list[Submission]:
        # Every state the model knows, so a new one cannot ship without its page being checked.
        states = [self.submission_in(s) for s in Submission.State.values if s != Submission.State.REJECTED]
        for reason in Reason:
            states.append(self.submission_in("rejected", reason=reason, predicted_digit=3, scores=SCORES))
        states.append(
            self.submission_in("rejected", reason=Reason.DUPLICATE, predicted_digit=None, scores=None)
        )
        return states

    def wrong_digit(self) -> Submission:
        return self.submission_in("rejected", reason=Reason.WRONG_DIGIT, predicted_digit=3, scores=SCORES)

    def page(self, submission: Submission) -> tuple[str, Page]:
        response = self.client.get(f"/submissions/{submission.public_id}/")
        self.assertEqual(response.status_code, 200)
        html = response.content.decode()
        return html, Page(html)

    def test_no_state_ever_shows_none(self) -> None:
        for submission in self.every_state():
            html, page = self.page(submission)
            label = f"{submission.state} {submission.reason}"
            self.assertNotIn("None", html, label)
            self.assertNotIn("None", page.text, label)
            data = self.client.get(f"/submissions/{submission.public_id}/status.json").json()
            self.assertTrue(no_none(data), f"{label}: {data}")

    def test_an_unpaid_page_has_no_payment_details_on_show(self) -> None:
        for submission in self.every_state():
            _, page = self.page(submission)
            shown = "Amount" in page.text
            self.assertEqual(shown, submission.state in ("broadcast", "confirmed"), submission.state)

    def test_it_says_to_keep_the_link(self) -> None:
        submission = self.submission_in("received")
        _, page = self.page(submission)
        self.assertIn("Keep this link: it is the only way back to this submission.", page.text)
        self.assertIn(f"/submissions/{submission.public_id}/", page.text)

    def test_a_paid_transaction_links_to_the_explorer_of_the_network(self) -> None:
        submission = self.submission_in("confirmed", txid=TXID)
        for backend, network, link in [
            ("arc", "mainnet", f"https://whatsonchain.com/tx/{TXID}"),
            ("arc", "testnet", f"https://test.whatsonchain.com/tx/{TXID}"),
        ]:
            with self.settings(CHAIN_BACKEND=backend, NETWORK=network):
                _, page = self.page(submission)
                data = self.client.get(f"/submissions/{submission.public_id}/status.json").json()
            self.assertEqual(page.element("explorer")["href"], link)
            self.assertNotIn("hidden", page.element("explorer"))
            self.assertEqual(data["explorer_url"], link)
        self.assertIn("812 (1 confirmation)", page.text)

    def test_the_local_ledger_and_regtest_link_to_no_explorer(self) -> None:
        submission = self.submission_in("broadcast", txid=TXID)
        for backend, network in [("local", "regtest"), ("local", "testnet"), ("arc", "regtest")]:
            with self.settings(CHAIN_BACKEND=backend, NETWORK=network):
                html, page = self.page(submission)
            self.assertNotIn("whatsonchain", html)
            self.assertIn("hidden", page.element("explorer"))
            self.assertIn(TXID, page.text)
            self.assertIn("waiting for a block", page.text)

    def test_a_rejection_shows_what_the_network_read_a_tip_and_that_it_cost_nothing(self) -> None:
        submission = self.submission_in(
            "rejected", reason=Reason.WRONG_DIGIT, predicted_digit=3, scores=SCORES
        )
        _, page = self.page(submission)
        self.assertIn("The network read: 3", page.text)
        self.assertIn("Tip: draw the 7 large", page.text)
        self.assertIn("This cost you nothing", page.text)
        self.assertIn("Not paid.", page.text)

    def test_every_rejection_has_one_tip_and_says_it_cost_nothing(self) -> None:
        for submission in self.every_state():
            _, page = self.page(submission)
            rejected = submission.state == "rejected"
            self.assertEqual(page.text.count("Tip:"), 1 if rejected else 0, submission.reason)
            self.assertEqual("cost you nothing" in page.text, rejected, submission.reason)

    def test_state_changes_are_announced_to_screen_readers(self) -> None:
        _, page = self.page(self.submission_in("received"))
        live = page.element("announce")
        self.assertEqual(live.get("aria-live"), "polite")
        headline = html_inside(
            self.client.get(f"/submissions/{self.submission_in('held').public_id}/"), "announce"
        )
        self.assertIn('id="headline"', headline)

    def test_each_score_bar_has_its_number_beside_it(self) -> None:
        submission = self.submission_in(
            "rejected", reason=Reason.WRONG_DIGIT, predicted_digit=3, scores=SCORES
        )
        html, _ = self.page(submission)
        rows = re.findall(r'<li class="bar( top)?">(.*?)</li>', html, re.S)
        self.assertEqual(len(rows), 10)
        for digit, (top, row) in enumerate(rows):
            self.assertIn(f'<span class="score">{SCORES[digit]}', row)
            self.assertEqual(bool(top), digit == 3)

    def test_every_aria_reference_points_to_an_element_of_the_page(self) -> None:
        for submission in (
            self.submission_in("confirmed"),
            self.submission_in("rejected", reason="wrong_digit"),
        ):
            _, page = self.page(submission)
            assert_references_exist(self, page)


def html_inside(response, id_: str) -> str:  # type: ignore[no-untyped-def]
    html = response.content.decode()
    start = html.index(f'id="{id_}"')
    return html[start : html.index("</div>", start)]


def assert_references_exist(test: BaseTestCase, page: Page) -> None:
    for tag, attributes in page.elements:
        for name in ("aria-describedby", "aria-labelledby", "aria-controls", "for"):
            for ref in attributes.get(name, "").split():
                test.assertIn(ref, page.ids, f"<{tag} {name}={ref!r}> points to no element")
