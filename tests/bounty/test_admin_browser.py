"""Fiona (the funder group) deploys a bounty in Chromium: the confirmation page with the whole bill, then the
deployed bounty's page with what it cost, then the admin index with the wallet. Set BOUNTY_SCREENSHOTS to a
folder to keep screenshots of the three.

A live Django server on the test database and the test's own local ledger, in this process.
"""

from __future__ import annotations

import os
import re
from importlib import import_module
from pathlib import Path

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group, User
from test_browser import CHROMIUM_ARGS, ensure_chromium

from bounty import chain
from bounty.funding import draft_bounty
from bounty.models import Bounty, ModelVersion

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
roles = import_module("bounty.migrations.0007_roles")


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    executable = ensure_chromium()
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API keeps an event loop here
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def fiona() -> User:
    roles.make_groups(django_apps, None)
    user = User.objects.create_user("fiona", "fiona@example.org", "password-of-fiona", is_staff=True)
    user.groups.add(Group.objects.get(name="funder"))
    return user


@pytest.fixture
def draft() -> Bounty:
    """5 x 2,000 sat for a 3, priced as the add form prices it, and a funded operator wallet."""
    from bounty_testing import model_artifact

    version = ModelVersion.register(model_artifact(), name="browser", activate=True)
    chain.faucet(chain.operator_address(), 5_000_000)
    return draft_bounty(version, digit=3, slots=5, reward=2000)


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    folder = os.environ.get("BOUNTY_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


@pytest.mark.timeout(300)
def test_it_shows_the_bill_before_deploying_and_what_it_cost_after(  # type: ignore[no-untyped-def]
    browser, live_server, fiona, draft
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{live_server.url}/admin/login/?next=/admin/bounty/bounty/")
    page.fill("#id_username", "fiona")
    page.fill("#id_password", "password-of-fiona")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/bounty/bounty/")
    assert page.inner_text(f"tr:has(a[href$='/{draft.pk}/change/']) td.field-left") == "not deployed"

    page.check(f"input[name=_selected_action][value='{draft.pk}']")
    page.select_option("select[name=action]", "deploy")
    page.click("button[name=index]")
    page.wait_for_selector(".deploy-plan")
    balance = chain.wallet_balance(chain.operator_address())
    bill = page.inner_text(f"#deploy-{draft.pk}")
    assert re.search(r"Rewards\s+5 × 2,000 sat\s+10,000 sat", bill)
    total = int(page.inner_text(f"#deploy-{draft.pk} td.total").replace(",", "").removesuffix(" sat"))
    assert f"{10_000 / total:.1%} of it reaches contributors" in bill
    assert page.inner_text("#balance-before") == f"{balance:,} sat"
    assert page.inner_text("#balance-after") == f"{balance - total:,} sat"
    assert draft.transactions.count() == 0, "the page spends nothing"
    shot(page, "deploy-confirmation")

    page.click(f"input[type=submit][value='Yes, spend {total:,} sat and deploy']")
    page.wait_for_selector(".messagelist li")
    assert page.locator(".messagelist li.error").count() == 0, page.inner_text(".messagelist")
    assert f"it spent {total:,} sat" in page.inner_text(".messagelist")
    assert chain.wallet_balance(chain.operator_address()) == balance - total

    page.goto(f"{live_server.url}/admin/bounty/bounty/{draft.pk}/change/")
    deploy = draft.transactions.get(kind="deploy")
    cost = page.inner_text("#what-it-cost")
    assert deploy.txid in cost
    assert f"{deploy.size:,} bytes" in cost
    assert re.search(rf"Total\s+{total:,} sat", cost)
    labels = [label.strip() for label in page.locator("label").all_inner_texts()]
    for term in ("Digit:", "Reward:", "Slot count:", "Model version:"):
        assert labels.count(term) == 1, term
    shot(page, "bounty-deployed")

    page.goto(f"{live_server.url}/admin/")
    assert page.inner_text("#wallet-balance") == f"{balance - total:,} sat"
    assert chain.operator_address() in page.inner_text("#top-up")
    assert page.locator("#models-link").get_attribute("href") == "/models/"
    shot(page, "admin-index")
    page.close()
