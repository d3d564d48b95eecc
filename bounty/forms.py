"""Forms: the contributor's submission (a canvas drawing or an upload, and a payout address).

What a contributor pastes into the address field is read the way a wallet would share it: a bare address,
or a `bitcoin:ADDRESS?amount=...` payment link (the address is taken from it). A paymail (`name@host`) is
answered in plain words: it is not supported, paste an address instead. Every message names the network
the service runs on and the letter its addresses start with.
"""

from __future__ import annotations

import re

from django import forms
from django.conf import settings

from bounty import chain
from bounty.images import ImageProblem, decode_data_url, preprocess

NETWORK_NAMES = {
    "mainnet": "Bitcoin SV mainnet",
    "testnet": "Bitcoin SV testnet",
    "regtest": "Bitcoin SV regtest",
}
URI_SCHEMES = ("bitcoin:", "bsv:")
PAYMAIL = re.compile(r"^[^@\s/?]+@[^@\s/?]+\.[^@\s/?]+$")
# Fragments of chain.address_problem's reasons that speak an encoding's jargon, and what to say instead.
PLAIN_WORDS = (
    (re.compile(r"\s*\(base58 has no 0, O, I, l\)"), " (addresses never contain 0, O, I or l)"),
    (re.compile(r"\bbase58\b\s*"), ""),
    (re.compile(r"\s*\(P2SH\)"), ""),
    (re.compile(r"\bP2PKH addresses\b"), "ordinary addresses"),
    (re.compile(r"\ba P2PKH address\b"), "an ordinary address"),
    (re.compile(r"\bP2PKH\b"), "ordinary"),
)


def network_name() -> str:
    """The network the service runs on, in words a contributor knows."""
    return NETWORK_NAMES.get(settings.NETWORK, settings.NETWORK)


def address_start() -> str:
    """What the configured network's ordinary addresses start with."""
    return "1" if settings.NETWORK == "mainnet" else "m or n"


def network_note() -> str:
    """The sentence beside the address field: which network, and what its addresses look like."""
    private = ", a private test network," if settings.NETWORK == "regtest" else ""
    return (
        f"This service runs on {network_name()}{private} so paste a BSV address that starts with "
        f"{address_start()}. A payment link (bitcoin:…) works too."
    )


def extract_address(text: str) -> str:
    """The address in what was pasted: a `bitcoin:ADDRESS?amount=...` link gives ADDRESS."""
    value = text.strip()
    for scheme in URI_SCHEMES:
        if value[: len(scheme)].lower() == scheme:
            value = value[len(scheme) :].lstrip("/")
            value = re.split(r"[?#]", value, maxsplit=1)[0].strip()
            break
    return value


def is_paymail(value: str) -> bool:
    return bool(PAYMAIL.match(value))


def paymail_message() -> str:
    return (
        "That looks like a paymail (name@host). Paymail is not supported here: open your wallet, copy its "
        f"BSV address and paste that instead. On {network_name()} it starts with {address_start()}."
    )


def plain_address_problem(problem: str) -> str:
    """chain.address_problem's reason without jargon, ending with what to do."""
    for pattern, words in PLAIN_WORDS:
        problem = pattern.sub(words, problem)
    problem = problem.rstrip(". ")
    return (
        f"{problem}. Copy the address from your wallet and paste it: on {network_name()} "
        f"it starts with {address_start()}."
    )


def address_problem(text: str) -> tuple[str, str | None]:
    """(the address to pay, None) when `text` holds a payable address; else (the address read, what is
    wrong in plain words with what to do)."""
    address = extract_address(text)
    if not address:
        return address, (
            f"Enter the BSV address the reward should be paid to: on {network_name()} it starts with "
            f"{address_start()}."
        )
    if is_paymail(address):
        return address, paymail_message()
    problem = chain.address_problem(address)
    if problem:
        return address, plain_address_problem(problem)
    return address, None


def clean_address(value: str) -> str:
    address, problem = address_problem(value)
    if problem:
        raise forms.ValidationError(problem)
    return address


def human_size(size: int) -> str:
    """A byte count as a person reads it: 2 MB, 64 KB, 1.4 MB."""
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f}".removesuffix(".0") + " MB"
    return f"{max(size // 1024, 1):,} KB"


def too_large_message(size: int | None = None, what: str = "The file") -> str:
    """What a contributor reads when an upload is over the limit, with what to do."""
    limit = human_size(settings.MAX_UPLOAD_BYTES)
    sizes = f"{human_size(size)}; the limit is {limit}" if size else f"the limit is {limit}"
    return (
        f"{what} is too large ({sizes}). Choose a smaller photo, or crop it closer to the digit, "
        "then choose it again. With JavaScript on, this page shrinks photos for you."
    )


UPLOAD_ADVICE = "Choose a PNG or JPEG photo of one handwritten digit, or draw the digit in the box instead."


class SubmissionForm(forms.Form):
    payout_address = forms.CharField(
        # Room for a whole payment link (bitcoin:ADDRESS?amount=...&label=...); the address is taken out.
        max_length=512,
        label="Your BSV address",
        error_messages={"required": "Enter the BSV address the reward should be paid to."},
        widget=forms.TextInput(
            attrs={
                "autocomplete": "off",
                "spellcheck": "false",
                "autocapitalize": "off",
                "aria-describedby": "address-network address-status",
            }
        ),
    )
    image = forms.FileField(required=False, label="Upload a photo or scan (PNG or JPEG)")
    drawing = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["payout_address"].error_messages["required"] = (
            f"Enter the BSV address the reward should be paid to: on {network_name()} it starts with "
            f"{address_start()}."
        )

    def clean_payout_address(self) -> str:
        return clean_address(self.cleaned_data["payout_address"])

    def clean(self) -> dict:
        super().clean()
        cleaned = self.cleaned_data
        upload = cleaned.get("image")
        drawing = cleaned.get("drawing") or ""
        limit = settings.MAX_UPLOAD_BYTES
        try:
            if upload:
                if upload.size > limit:
                    raise ImageProblem(too_large_message(upload.size))
                data = upload.read(limit + 1)
                name = upload.name or "upload"
            elif drawing:
                if len(drawing) > limit * 4 // 3 + 64:
                    raise ImageProblem("The drawing is too large; clear the box and draw the digit again.")
                data = decode_data_url(drawing)
                name = "drawing.png"
            else:
                raise ImageProblem("Draw a digit in the box, or choose a photo of one to upload.")
            if len(data) > limit:
                raise ImageProblem(too_large_message(len(data)))
            cleaned["pixels"] = preprocess(data)
        except ImageProblem as problem:
            message = str(problem)
            message = message[:1].upper() + message[1:]
            if upload and "draw" not in message.lower() and "choose" not in message.lower():
                message = f"{message} {UPLOAD_ADVICE}"
            self.add_error("image" if upload else None, message)
            return cleaned
        cleaned["original_bytes"] = data
        cleaned["original_name"] = name
        return cleaned
