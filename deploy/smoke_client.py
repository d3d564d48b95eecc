"""The HTTP half of deploy/smoke.sh: what a contributor's browser and a proxy would do, over loopback.

    smoke_client.py digit-png OUT.png DIGIT          # a real MNIST test image the model reads as DIGIT
    smoke_client.py submit BASE_URL BOUNTY_ID PNG ADDRESS TIMEOUT

`submit` checks the production front door (HTTP redirected to HTTPS, /healthz exempt, CSRF enforced), then
fetches the bounty page, posts the form with its CSRF token and the PNG, follows the redirect to the status
page and polls the status JSON until the claim is paid and confirmed. Requests carry X-Forwarded-Proto: https
as nginx sends them. The last line printed is a JSON summary; any failure exits non-zero with the reason.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import requests

HTTPS = {"X-Forwarded-Proto": "https"}


def fail(message: str) -> None:
    print(f"smoke client: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def expect(condition: bool, message: str) -> None:
    if not condition:
        fail(message)


def digit_png(out: Path, digit: int) -> None:
    from classifier.data import load_mnist
    from classifier.integer_model import IntegerModel
    from classifier.preprocess import preprocess_image, to_png

    model = IntegerModel.load(Path(__file__).resolve().parent.parent / "classifier/models/default.npz")
    mnist = load_mnist()
    for index in range(len(mnist.y_test)):
        if int(mnist.y_test[index]) != digit:
            continue
        png = to_png(mnist.x_test[index], scale=4)
        seen = preprocess_image(png).astype("uint8").reshape(784)
        if int(model.predict(seen)) == digit:
            out.write_bytes(png)
            print(f"MNIST test image #{index} (a {digit}, read as a {digit} after preprocessing): {out}")
            return
    fail(f"no MNIST test image of a {digit} is read as one")


def submit(base: str, bounty_id: int, png: Path, address: str, timeout: float) -> None:
    session = requests.Session()
    origin = "https://" + base.split("://", 1)[1].rstrip("/")
    page_url = f"{base}/bounties/{bounty_id}/"

    plain = session.get(page_url, allow_redirects=False, timeout=10)
    expect(plain.status_code == 301, f"plain HTTP should redirect to HTTPS, got {plain.status_code}")
    expect(plain.headers["Location"].startswith("https://"), "the redirect should go to https://")
    health = session.get(f"{base}/healthz", timeout=10)
    expect(health.status_code == 200 and health.json()["status"] == "ok", "/healthz over HTTP should be 200")
    print("front door: HTTP redirects to HTTPS, /healthz answers over HTTP")

    page = session.get(page_url, headers=HTTPS, timeout=10)
    expect(page.status_code == 200, f"GET {page_url}: {page.status_code}")
    expect("X-Request-ID" in page.headers, "responses carry X-Request-ID")
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    expect(match is not None, "the bounty page has no CSRF token in its form")
    token = match.group(1) if match else ""
    cookie = page.cookies.get("csrftoken")
    expect(cookie is not None, "the bounty page sets no csrftoken cookie")
    expect("secure" in page.headers.get("Set-Cookie", "").lower(), "the CSRF cookie should be Secure")
    headers = {**HTTPS, "Origin": origin, "Referer": f"{origin}/bounties/{bounty_id}/"}
    form = {"payout_address": address, "drawing": ""}
    files = {"image": ("digit.png", png.read_bytes(), "image/png")}

    forged = requests.post(
        page_url, data=form, files=files, headers=headers, allow_redirects=False, timeout=30
    )
    expect(
        forged.status_code == 403,
        f"a POST without the CSRF token should be refused, got {forged.status_code}",
    )

    posted = requests.post(
        page_url, data={**form, "csrfmiddlewaretoken": token}, files=files, headers=headers,
        cookies={"csrftoken": cookie or ""}, allow_redirects=False, timeout=30,
    )  # fmt: skip
    expect(posted.status_code == 302, f"POST the form: {posted.status_code} {posted.text[:500]}")
    location = posted.headers["Location"]
    found = re.search(r"/submissions/([0-9a-f-]{36})/", location)
    expect(found is not None, f"unexpected redirect {location}")
    public_id = found.group(1) if found else ""
    print(f"submitted: {public_id}")
    status_page = session.get(f"{base}/submissions/{public_id}/", headers=HTTPS, timeout=10)
    expect(status_page.status_code == 200, f"the status page: {status_page.status_code}")

    deadline, last, status = time.monotonic() + timeout, None, {}
    while time.monotonic() < deadline:
        status = session.get(f"{base}/submissions/{public_id}/status.json", headers=HTTPS, timeout=10).json()
        if status["state"] != last:
            print(f"  {status['state']}: {status['headline']}")
            last = status["state"]
        if status["state"] == "rejected":
            fail(f"the submission was rejected: {status['reason']}")
        if status["state"] == "confirmed":
            break
        time.sleep(0.5)
    expect(status.get("state") == "confirmed", f"not confirmed after {timeout:.0f} s: {status.get('state')}")
    expect(status["paid"] and status["txid"], "a confirmed submission is paid, with a txid")
    print(json.dumps({"public_id": public_id, "txid": status["txid"], "state": status["state"]}))


def main(argv: list[str]) -> None:
    if argv[:1] == ["digit-png"] and len(argv) == 3:
        digit_png(Path(argv[1]), int(argv[2]))
    elif argv[:1] == ["submit"] and len(argv) == 6:
        submit(argv[1].rstrip("/"), int(argv[2]), Path(argv[3]), argv[4], float(argv[5]))
    else:
        fail(__doc__ or "usage")


if __name__ == "__main__":
    main(sys.argv[1:])
