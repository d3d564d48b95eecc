"""A person's path in a real browser: draw a digit on the canvas, submit, watch the status page reach "paid".

Playwright drives Debian's Chromium (/usr/bin/chromium), installed here with apt-get when missing (as root);
Playwright's own browser download is not used. A live Django server, a real worker and the ledger behind it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from contracts.keys import Key

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
BOUNTY_DIGIT = 1  # one vertical stroke: a drawing anyone's mouse can make

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.django_db(transaction=True)]


def ensure_chromium() -> str:
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.fail("Chromium is missing: install Debian's package (apt-get install -y chromium) as root")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=environment, timeout=900)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=environment, timeout=1800)
    return CHROMIUM


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    executable = ensure_chromium()
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = (
        "true"  # Playwright's sync API keeps an event loop in this thread
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.mark.timeout(600)
def test_it_draws_a_digit_submits_it_and_sees_it_paid(browser, live_server, worker, live_bounty) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 390, "height": 844}, has_touch=True)  # a phone-sized window
    page.goto(f"{live_server.url}/bounties/{live_bounty.pk}/")
    canvas = page.locator("#canvas")
    canvas.wait_for(state="visible")
    box = canvas.bounding_box()
    assert box is not None
    x = box["x"] + box["width"] / 2
    page.mouse.move(x, box["y"] + box["height"] * 0.15)
    page.mouse.down()
    for step in range(1, 21):
        page.mouse.move(x, box["y"] + box["height"] * (0.15 + 0.7 * step / 20))
    page.mouse.up()

    address = page.locator("input[name=payout_address]")
    address.fill("not-an-address")
    page.wait_for_selector("#address-status.error")
    address.fill(Key.generate("testnet").address)
    page.wait_for_selector("#address-status.ok")

    page.click("#submit")
    page.wait_for_url("**/submissions/**")
    page.wait_for_selector('#status[data-state="broadcast"], #status[data-state="confirmed"]', timeout=60_000)
    assert "Paid" in page.inner_text("#headline")
    assert len(page.inner_text("#txid")) == 64
    assert page.locator("#bars .bar").count() == 10
    assert page.locator("#bars .bar .score").count() == 10  # each bar with its number
    assert "Keep this link: it is the only way back to this submission." in page.inner_text("#keep")
    assert not page.locator("#explorer").is_visible()  # the local ledger: no public explorer
    assert not re.search(r"\b(None|null|undefined)\b", page.inner_text("body"))
