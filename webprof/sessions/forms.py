"""Forms of the session pages: record, rename and annotate, share, import.

Each field carries the message shown next to it, so a refused request says
which field is wrong and why before anything is created.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.files.uploadhandler import FileUploadHandler, StopUpload

from ..core.hostname import MAX_HOST_NAME

# Recording lengths offered by the live pages' Record control (seconds; "" = until stopped).
DURATIONS = (("", "until stopped"), ("10", "10 s"), ("30", "30 s"), ("60", "1 min"),
             ("300", "5 min"), ("900", "15 min"), ("3600", "1 h"))
MAX_DURATION_S = 86_400
EXPIRIES = (("1h", "1 hour"), ("1d", "1 day"), ("7d", "7 days"), ("30d", "30 days"),
            ("never", "never"))
NAME_MAX = 200
NOTES_MAX = 10_000


def _name_field(required: bool) -> forms.CharField:
    return forms.CharField(
        max_length=NAME_MAX, required=required,
        error_messages={"required": "Give the session a name.",
                        "max_length": f"A name has at most {NAME_MAX} characters."})


class RecordForm(forms.Form):
    """Start recording a host; a blank duration records until stopped."""

    host = forms.CharField(max_length=MAX_HOST_NAME,
                           error_messages={"required": "Say which host to record."})
    name = _name_field(required=False)
    duration_s = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_DURATION_S,
        error_messages={
            "min_value": "A recording lasts at least 1 second.",
            "max_value": f"A recording lasts at most {MAX_DURATION_S} seconds (24 h); "
                         "choose \"until stopped\" for longer.",
            "invalid": "The duration is a whole number of seconds, 1 to 86400."})

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        if name and not name.isprintable():
            raise forms.ValidationError("A name must be printable text (no control characters).")
        return name


class EditForm(forms.Form):
    name = _name_field(required=True)
    notes = forms.CharField(
        required=False, max_length=NOTES_MAX, widget=forms.Textarea(attrs={"rows": 4}),
        error_messages={"max_length": f"Notes have at most {NOTES_MAX} characters."})


class ShareForm(forms.Form):
    expires = forms.ChoiceField(
        label="Expires after", choices=EXPIRIES, initial="7d",
        error_messages={"invalid_choice": "Choose an expiry from the list."})


class ImportForm(forms.Form):
    file = forms.FileField(
        label="Folded stacks file",
        error_messages={"required": "Choose a folded file to upload.",
                        "empty": "The file is empty."})
    name = _name_field(required=True)


class LimitedUploadHandler(FileUploadHandler):
    """First upload handler of the import view: counts the bytes of the
    upload as they arrive and stops the upload past ``limit``, so an
    oversized file is neither held in memory nor spooled to disk whole.
    ``exceeded`` tells the view to say so."""

    def __init__(self, request: Any, limit: int) -> None:
        super().__init__(request)
        self.limit = limit
        self.received = 0
        self.exceeded = False

    def handle_raw_input(self, input_data: Any, META: Any, content_length: int,  # noqa: N803
                         boundary: Any, encoding: Any = None) -> None:
        # The multipart body is a little larger than the file: 64 KiB for the
        # other fields and the part headers.  A body announced larger is
        # still parsed up to the file's first bytes, so that the CSRF token
        # (first in the form) is read and the user gets the size message.
        self.exceeded = content_length > self.limit + 65_536

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received += len(raw_data)
        if self.exceeded or self.received > self.limit:
            self.exceeded = True
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None
