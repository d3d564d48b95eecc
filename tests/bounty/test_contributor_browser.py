"""What contributors see, in Chromium on a desktop window and on a 390x844 touch phone.

Bounties and submissions are made directly in the database (no worker, no ledger: nothing here waits on the
chain); a submission that the page creates is stored but never queued. Set BOUNTY_SCREENSHOTS to a folder
to keep screenshots of the pages (status paid, rejected and held; bounty open and exhausted).
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings as django_settings
from PIL import Image
from test_browser import CHROMIUM_ARGS, ensure_chromium

from bounty import pipeline
from bounty.models import Bounty, ModelVersion, Reason, Slot, Submission, Transaction
from contracts.keys import Key

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORTS = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True},
}
SCORES = [-120, 40, 15, 310, -8, 77, 2, 96, -40, 11]  # read as a 3
ADDRESS = Key.generate("testnet").address
NONE_WORDS = re.compile(r"\b(None|null|undefined|NaN)\b")


# ---- Browser, pages and gestures -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    executable = ensure_chromium()
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API keeps an event loop here
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


class Screen:
    """A page in one of the two windows, with the gestures that window uses."""

    def __init__(self, browser, kind: str, **options: object) -> None:  # type: ignore[no-untyped-def]
        self.kind = kind
        self.touch = kind == "phone"
        self.context = browser.new_context(**VIEWPORTS[kind], **options)
        self.page = self.context.new_page()

    def press(self, selector: str) -> None:
        """A tap on the phone, a click on the desktop."""
        target = self.page.locator(selector)
        target.scroll_into_view_if_needed()
        if self.touch:
            target.tap()
        else:
            target.click()

    def draw_one(self) -> None:
        """One vertical stroke down the middle of the canvas: by finger (touch events) or by mouse."""
        canvas = self.page.locator("#canvas")
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()
        assert box is not None
        x = box["x"] + box["width"] / 2
        ys = [box["y"] + box["height"] * (0.15 + 0.7 * step / 20) for step in range(21)]
        if self.touch:
            cdp = self.context.new_cdp_session(self.page)
            touch = {"type": "touchStart", "touchPoints": [{"x": x, "y": ys[0]}]}
            cdp.send("Input.dispatchTouchEvent", touch)
            for y in ys[1:]:
                cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
            cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
            # A finger lifts and moves on: a tap within milliseconds of the stroke is taken by the
            # browser's gesture detection as part of it, not as a click of its own.
            self.page.wait_for_timeout(500)
        else:
            self.page.mouse.move(x, ys[0])
            self.page.mouse.down()
            for y in ys[1:]:
                self.page.mouse.move(x, y)
            self.page.mouse.up()

    def ink(self) -> int:
        """How many canvas pixels are white ink."""
        return int(
            self.page.evaluate(
                """() => {
                const c = document.getElementById('canvas');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0;
                for (let i = 0; i < d.length; i += 4) if (d[i] > 128) n++;
                return n;
            }"""
            )
        )

    def text(self) -> str:
        return self.page.inner_text("body")

    def shot(self, name: str) -> None:
        folder = os.environ.get("BOUNTY_SCREENSHOTS")
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(folder) / f"{name}-{self.kind}.png"), full_page=True)


@pytest.fixture(params=sorted(VIEWPORTS))
def screen(request, browser):  # type: ignore[no-untyped-def]
    screen = Screen(browser, request.param)
    yield screen
    screen.context.close()


@pytest.fixture(autouse=True)
def never_queued(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(pipeline, "enqueue", lambda submission_id: None)


# ---- Data ------------------------------------------------------------------------------------------------
def make_bounty(digit: int = 1, slots: int = 3, **fields: object) -> Bounty:
    version, _ = ModelVersion.objects.get_or_create(
        name="browser", defaults={"artifact": str(django_settings.MODEL_ARTIFACT), "sha256": "cd" * 32,
                                  "is_active": True, "metrics": {"integer_test_accuracy": 0.975}},
    )  # fmt: skip
    bounty = Bounty.objects.create(
        digit=digit, reward=1000, slot_count=slots, model_version=version, fee_rate=100, claim_fee=2000,
        state=fields.pop("state", Bounty.State.ACTIVE), **fields,
    )  # fmt: skip
    # A live bounty's deploy is on chain: slots of a deploy the chain does not have are never offered.
    deploy = Transaction.objects.create(
        txid=f"{bounty.pk:064x}",
        raw_hex="00",
        kind=Transaction.Kind.DEPLOY,
        status=Transaction.Status.BROADCAST,
    )
    for vout in range(slots):
        Slot.objects.create(bounty=bounty, deploy_tx=deploy, vout=vout, satoshis=3000)
    return bounty


def make_submission(bounty: Bounty, state: str = "received", **fields: object) -> Submission:
    from bounty import images

    pixels = np.zeros((28, 28), dtype=np.uint8)
    pixels[4:24, 12:16] = 255
    pixels[0, Submission.objects.count() % 28] = 1  # each one its own image
    submission = Submission.objects.create(
        bounty=bounty, pixels=pixels.tobytes(), pixel_sha256=images.pixel_sha256(pixels),
        phash=images.perceptual_hash(pixels), claimed_digit=bounty.digit, payout_address=ADDRESS,
        original="originals/x.png",
    )  # fmt: skip
    move(submission, state, **fields)
    return Submission.objects.get(pk=submission.pk)


def move(submission: Submission, state: str, **fields: object) -> None:
    changes: dict[str, object] = {"state": state}
    if state != "received":
        changes.update(predicted_digit=submission.claimed_digit, scores=[*SCORES[:1], 400, *SCORES[2:]])
    if state in ("broadcast", "confirmed"):
        confirmed = state == "confirmed"
        changes["claim_tx"] = Transaction.objects.create(
            txid=f"{submission.pk + 1000:064x}", raw_hex="00", kind=Transaction.Kind.CLAIM, status=state,
            block_height=812 if confirmed else None, confirmations=1 if confirmed else 0,
        )  # fmt: skip
    if state == "rejected":
        changes.update(reason=Reason.WRONG_DIGIT, predicted_digit=3, scores=SCORES)
    changes.update(fields)
    Submission.objects.filter(pk=submission.pk).update(**changes)


def phone_photo(size: tuple[int, int] = (2000, 3000)) -> bytes:
    """A phone photo of a '1' on paper, held upright: stored sideways with EXIF orientation 6 (turn 90°
    clockwise to show), grainy like a real photo, so it is well over the upload limit as taken."""
    width, height = size
    upright = np.random.default_rng(7).integers(225, 256, (height, width), dtype=np.uint8)
    upright[int(height * 0.15) : int(height * 0.85), width // 2 - width // 20 : width // 2 + width // 20] = 30
    stored = Image.fromarray(upright).rotate(90, expand=True)  # what the sensor wrote: the bar lies flat
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    stored.save(buffer, format="JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


def contrast(first: str, second: str) -> float:
    """WCAG contrast ratio of two CSS rgb()/rgba() colours."""

    def luminance(css: str) -> float:
        red, green, blue = (int(v) / 255 for v in re.findall(r"[\d.]+", css)[:3])
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (red, green, blue)]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted([luminance(first), luminance(second)], reverse=True)
    return (light + 0.05) / (dark + 0.05)


def assert_no_none(screen: Screen) -> None:
    found = NONE_WORDS.findall(screen.text())
    assert not found, f"the page shows {found}"


def missing_references(screen: Screen) -> list[str]:
    return screen.page.evaluate(
        """() => {
        const missing = [];
        for (const name of ['aria-describedby', 'aria-labelledby', 'aria-controls']) {
            for (const element of document.querySelectorAll('[' + name + ']')) {
                for (const id of element.getAttribute(name).split(/\\s+/).filter(Boolean)) {
                    if (!document.getElementById(id)) missing.push(name + '=' + id);
                }
            }
        }
        return missing;
    }"""
    )


# ---- 1 and 5: the status page ----------------------------------------------------------------------------
def test_status_pages_in_every_state_show_no_none_and_only_what_applies(
    screen, live_server, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.CHAIN_BACKEND, settings.NETWORK = "arc", "testnet"  # a public network: WhatsOnChain links
    bounty = make_bounty(digit=1)
    cases = {
        "received": make_submission(bounty, "received"),
        "held": make_submission(bounty, "held"),
        "paid": make_submission(bounty, "confirmed"),
        "broadcast": make_submission(bounty, "broadcast"),
        "rejected": make_submission(bounty, "rejected"),
        "duplicate": make_submission(
            bounty, "rejected", reason=Reason.DUPLICATE, predicted_digit=None, scores=None
        ),
    }
    for name, submission in cases.items():
        screen.page.goto(f"{live_server.url}/submissions/{submission.public_id}/")
        screen.page.wait_for_load_state("networkidle")
        assert_no_none(screen)
        page = screen.page
        assert page.locator("#keep").is_visible()
        assert "Keep this link: it is the only way back to this submission." in page.inner_text("#keep")
        paid = submission.state in ("broadcast", "confirmed")
        assert page.locator("#payment").is_visible() == paid, name
        assert page.locator("#rejection").is_visible() == (submission.state == "rejected"), name
        if paid:
            txid = submission.claim_tx.txid
            assert page.inner_text("#amount") == "1000 sat"
            assert page.get_attribute("#explorer", "href") == f"https://test.whatsonchain.com/tx/{txid}"
            assert page.locator("#explorer").is_visible()
        if submission.state == "rejected":
            assert "This cost you nothing" in page.inner_text("#cost")
            assert page.inner_text("#tip").startswith("Tip: ")
            assert page.locator("#read").is_visible() == (submission.predicted_digit is not None)
        if name == "rejected":
            assert page.inner_text("#predicted") == "3"
        if name in ("paid", "rejected", "held"):
            screen.shot(f"status-{name}")


def test_the_local_ledger_has_no_explorer_link(screen, live_server) -> None:  # type: ignore[no-untyped-def]
    submission = make_submission(make_bounty(), "confirmed")
    screen.page.goto(f"{live_server.url}/submissions/{submission.public_id}/")
    assert not screen.page.locator("#explorer").is_visible()
    assert "whatsonchain" not in screen.page.content()
    assert screen.page.inner_text("#txid") == submission.claim_tx.txid
    assert "812 (1 confirmation)" in screen.page.inner_text("#block")


def test_a_state_change_is_announced_without_a_none(screen, live_server) -> None:  # type: ignore[no-untyped-def]
    bounty = make_bounty()
    refused = make_submission(bounty)
    paid = make_submission(bounty)
    page = screen.page
    page.goto(f"{live_server.url}/submissions/{refused.public_id}/")
    live = page.locator("[aria-live=polite] #headline")
    assert "Received" in live.inner_text()
    move(refused, "rejected")
    page.wait_for_function("document.getElementById('headline').textContent === 'Not paid.'", timeout=15_000)
    assert page.locator("#rejection").is_visible()
    assert page.inner_text("#predicted") == "3"
    assert not page.locator("#payment").is_visible()
    assert page.locator("#bars .bar").count() == 10
    assert_no_none(screen)

    page.goto(f"{live_server.url}/submissions/{paid.public_id}/")
    move(paid, "broadcast")
    page.wait_for_selector("#payment", state="visible", timeout=15_000)
    assert "Paid!" in live.inner_text()
    assert page.inner_text("#amount") == "1000 sat"
    assert page.inner_text("#block") == "waiting for a block"
    assert_no_none(screen)


def test_score_bars_carry_their_numbers_and_enough_contrast(screen, live_server) -> None:  # type: ignore[no-untyped-def]
    submission = make_submission(make_bounty(), "rejected")
    page = screen.page
    page.goto(f"{live_server.url}/submissions/{submission.public_id}/")
    scores = page.locator("#bars .bar .score")
    assert scores.count() == 10
    for digit in range(10):
        assert scores.nth(digit).inner_text().startswith(str(SCORES[digit]))
        assert scores.nth(digit).is_visible()
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    background = "rgb(255, 255, 255)" if background in ("rgba(0, 0, 0, 0)", "transparent") else background
    bar = page.evaluate("getComputedStyle(document.querySelector('.bar:not(.top) .fill')).backgroundColor")
    text = page.evaluate("getComputedStyle(document.querySelector('.bar:not(.top) .score')).color")
    assert contrast(bar, background) >= 3, bar
    assert contrast(text, background) >= 4.5, text


# ---- 2 and 4: the address field and Submit ---------------------------------------------------------------
def test_the_address_field_names_the_network_and_submit_waits_for_a_valid_address(
    screen, live_server
) -> None:  # type: ignore[no-untyped-def]
    bounty = make_bounty()
    page = screen.page
    page.goto(f"{live_server.url}/bounties/{bounty.pk}/")
    note = page.locator("#address-network")
    field = page.locator("input[name=payout_address]")
    assert note.is_visible()
    assert "regtest" in note.inner_text() and "starts with m or n" in note.inner_text()
    assert note.bounding_box()["y"] < field.bounding_box()["y"]  # up front, before the field

    field.fill("not-an-address")
    page.wait_for_selector("#submit:disabled")
    reason = page.locator("#submit-reason")
    assert reason.is_visible()
    assert "until the address above is valid" in reason.inner_text()

    field.fill("alice@example.com")
    page.wait_for_function("document.getElementById('address-status').textContent.includes('Paymail')")
    message = page.inner_text("#address-status")
    assert "not supported" in message and "starts with m or n" in message and "base58" not in message
    assert page.locator("#submit").is_disabled()

    field.fill(f"bitcoin:{ADDRESS}?amount=0.0001&label=digit")
    page.wait_for_selector("#submit:enabled")
    assert field.input_value() == ADDRESS  # the address taken out of the payment link
    assert "payment link" in page.inner_text("#address-status")
    assert reason.inner_text() == ""


def test_a_refused_submit_keeps_the_drawing_and_the_redrawn_digit_goes_through(screen, live_server) -> None:  # type: ignore[no-untyped-def]
    bounty = make_bounty()
    page = screen.page
    page.goto(f"{live_server.url}/bounties/{bounty.pk}/")
    screen.draw_one()
    drawn = screen.ink()
    assert drawn > 1000
    screen.press("#submit")  # no address: the server refuses
    page.wait_for_selector("#address-status .error")
    page.wait_for_timeout(500)  # the page redraws what was sent back as soon as it has decoded it
    assert screen.ink() > drawn * 0.9  # the drawing is back
    page.locator("input[name=payout_address]").fill(ADDRESS)
    page.wait_for_selector("#address-status.ok")
    screen.press("#submit")
    page.wait_for_url("**/submissions/**")
    submission = Submission.objects.get()
    assert submission.payout_address == ADDRESS
    assert max(submission.pixel_bytes) > 200


# ---- 3: photos -------------------------------------------------------------------------------------------
def test_a_phone_photo_is_shrunk_upright_and_accepted(screen, live_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    photo = tmp_path / "IMG_0001.jpg"
    photo.write_bytes(phone_photo())
    assert photo.stat().st_size > django_settings.MAX_UPLOAD_BYTES  # as taken, over the limit
    bounty = make_bounty()
    page = screen.page
    page.goto(f"{live_server.url}/bounties/{bounty.pk}/")
    page.set_input_files("input[type=file]", str(photo))
    page.wait_for_function("document.getElementById('image-status').textContent.includes('Photo ready')")
    assert "683×1024" in page.inner_text("#image-status")
    screen.press("#submit")  # no address yet: refused, and the photo stays chosen
    page.wait_for_selector("#address-status .error")
    page.wait_for_function("document.querySelector('input[type=file]').files.length === 1")
    assert "still chosen" in page.inner_text("#image-status")
    page.locator("input[name=payout_address]").fill(ADDRESS)
    page.wait_for_selector("#address-status.ok")
    screen.press("#submit")
    page.wait_for_url("**/submissions/**")
    submission = Submission.objects.get()
    with submission.original.open("rb") as stored:
        original = Image.open(io.BytesIO(stored.read()))
        original.load()
    assert original.size == (683, 1024)  # the longer side 1024, portrait: the EXIF turn applied
    grey = np.asarray(original.convert("L"), dtype=np.int16)
    columns, rows = grey.mean(axis=0), grey.mean(axis=1)
    assert columns.min() < 150 < rows.min()  # the bar stands upright: a dark column, no dark row


def test_what_is_not_an_image_is_refused_on_the_page(screen, live_server) -> None:  # type: ignore[no-untyped-def]
    bounty = make_bounty()
    page = screen.page
    url = f"{live_server.url}/bounties/{bounty.pk}/"
    page.goto(url)
    document = {"name": "digit.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4 not a picture"}
    page.set_input_files("input[type=file]", files=[document])
    page.wait_for_selector("#image-status.error")
    message = page.inner_text("#image-status")
    assert "not an image this page can read" in message and "Choose a PNG or JPEG photo" in message
    assert page.locator("#image-status").is_visible()
    assert page.eval_on_selector("input[type=file]", "input => input.files.length") == 0
    assert page.url == url


def test_a_photo_too_large_even_when_shrunk_is_refused_on_the_page(
    screen, live_server, settings, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    settings.MAX_UPLOAD_BYTES = 20_000
    photo = tmp_path / "IMG_0002.jpg"
    photo.write_bytes(phone_photo((1500, 2000)))
    bounty = make_bounty()
    page = screen.page
    page.goto(f"{live_server.url}/bounties/{bounty.pk}/")
    page.set_input_files("input[type=file]", str(photo))
    page.wait_for_selector("#image-status.error", timeout=20_000)
    message = page.inner_text("#image-status")
    assert "too large even after shrinking" in message and "the limit is 19 KB" in message
    assert "Crop it closer" in message


def test_without_javascript_an_oversize_upload_gets_the_form_back(
    browser, live_server, settings, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    settings.MAX_UPLOAD_BYTES = 16 * 1024
    photo = tmp_path / "IMG_0003.jpg"
    photo.write_bytes(phone_photo((800, 600)) + b"\0" * 300_000)
    bounty = make_bounty()
    for kind in sorted(VIEWPORTS):
        screen = Screen(browser, kind, java_script_enabled=False)
        page = screen.page
        page.goto(f"{live_server.url}/bounties/{bounty.pk}/")
        page.set_input_files("input[type=file]", str(photo))
        page.locator("input[name=payout_address]").fill(ADDRESS)
        with page.expect_navigation():
            screen.press("#submit")
        assert "The upload is too large" in page.inner_text("#form-errors")
        assert "Choose a smaller photo" in page.inner_text("#form-errors")
        assert page.locator("#submission-form").is_visible()
        screen.context.close()
    assert not Submission.objects.exists()


# ---- 6: a bounty that cannot take images, and the home page with none open --------------------------------
@pytest.mark.parametrize("closed", ["exhausted", "paused"])
def test_a_closed_bounty_says_so_once_and_turns_drawing_and_submit_off(screen, live_server, closed) -> None:  # type: ignore[no-untyped-def]
    other = make_bounty(digit=4)
    if closed == "exhausted":
        bounty = make_bounty(state=Bounty.State.EXHAUSTED)
        Slot.objects.filter(bounty=bounty).update(state=Slot.State.CLAIMED)
    else:
        bounty = make_bounty(paused=True)
    page = screen.page
    page.goto(f"{live_server.url}/bounties/{bounty.pk}/")
    assert screen.text().count("not accepting images") == 1
    assert page.locator("#closed").is_visible()
    assert page.locator("#submit").is_disabled()
    assert page.locator("input[type=file]").is_disabled()
    canvas = page.locator("#canvas")
    assert canvas.is_visible()
    assert canvas.get_attribute("aria-disabled") == "true"
    assert float(canvas.evaluate("c => getComputedStyle(c).opacity")) < 0.5  # visibly off
    screen.draw_one()
    assert screen.ink() == 0
    if closed == "exhausted":
        screen.shot("bounty-exhausted")
    screen.press("#other-bounties")
    page.wait_for_url(f"{live_server.url}/")
    assert page.locator(f"a[href='/bounties/{other.pk}/']").is_visible()


def test_the_home_page_with_nothing_open_says_what_the_site_is(screen, live_server) -> None:  # type: ignore[no-untyped-def]
    make_bounty(state=Bounty.State.EXHAUSTED)
    screen.page.goto(f"{live_server.url}/")
    text = screen.page.inner_text("#no-bounty")
    assert "This site pays small rewards in Bitcoin SV for handwritten digits" in text
    assert "come back in a day or two" in text


# ---- 7: accessibility ------------------------------------------------------------------------------------
def test_the_bounty_page_is_usable_without_the_canvas_and_has_a_favicon(screen, live_server) -> None:  # type: ignore[no-untyped-def]
    bounty = make_bounty()
    page = screen.page
    page.goto(f"{live_server.url}/bounties/{bounty.pk}/")
    canvas = page.locator("#canvas")
    assert canvas.get_attribute("role") == "img"
    assert canvas.get_attribute("aria-label").startswith("Drawing box for your 1")
    assert page.locator("#upload-path").is_visible()
    assert "Uploading works with a keyboard and with screen readers" in page.inner_text("#upload-path")
    assert missing_references(screen) == []
    icon = page.get_attribute("link[rel=icon]", "href")
    answer = page.request.get(f"{live_server.url}{icon}")
    assert answer.status == 200 and b"<svg" in answer.body()
    screen.shot("bounty-open")
    page.locator("input[name=payout_address]").fill("nope")
    page.wait_for_selector("#submit:disabled")
    assert missing_references(screen) == []
    submission = make_submission(bounty, "rejected")
    page.goto(f"{live_server.url}/submissions/{submission.public_id}/")
    assert missing_references(screen) == []
