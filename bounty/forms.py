"""Forms: the contributor's submission (a canvas drawing or an upload, and a payout address)."""

from __future__ import annotations

from django import forms
from django.conf import settings

from bounty import chain
from bounty.images import ImageProblem, decode_data_url, preprocess


def clean_address(value: str) -> str:
    value = value.strip()
    problem = chain.address_problem(value)
    if problem:
        raise forms.ValidationError(problem)
    return value


class SubmissionForm(forms.Form):
    payout_address = forms.CharField(
        max_length=64,
        label="Your BSV address",
        error_messages={"required": "Enter the BSV address the reward should be paid to."},
        help_text="The reward is paid to this address if the network accepts your digit.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "off"}),
    )
    image = forms.FileField(required=False, label="…or upload a PNG or JPEG")
    drawing = forms.CharField(required=False, widget=forms.HiddenInput)

    def clean_payout_address(self) -> str:
        return clean_address(self.cleaned_data["payout_address"])

    def clean(self) -> dict:
        cleaned = super().clean()
        upload = cleaned.get("image")
        drawing = cleaned.get("drawing") or ""
        limit = settings.MAX_UPLOAD_BYTES
        try:
            if upload:
                if upload.size > limit:
                    raise ImageProblem(
                        f"the file is too large ({upload.size:,} bytes; the limit is {limit:,})"
                    )
                data = upload.read(limit + 1)
                name = upload.name or "upload"
            elif drawing:
                if len(drawing) > limit * 4 // 3 + 64:
                    raise ImageProblem("the drawing is too large")
                data = decode_data_url(drawing)
                name = "drawing.png"
            else:
                raise ImageProblem("draw a digit or choose an image file")
            if len(data) > limit:
                raise ImageProblem(f"the file is too large (the limit is {limit:,} bytes)")
            cleaned["pixels"] = preprocess(data)
        except ImageProblem as problem:
            field = "image" if upload else None
            message = str(problem)
            if not drawing and not upload:
                field = None
            self.add_error(field, message[:1].upper() + message[1:])
            return cleaned
        cleaned["original_bytes"] = data
        cleaned["original_name"] = name
        return cleaned
