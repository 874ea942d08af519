"""The host page's form: which collectors run on a host, and with which options.

Every field is checked here, with a message shown by the field, before
anything is stored or sent: the collector validates ``collector.config``
again (it trusts the server, not blindly) but its refusal only shows up as a
reported error one interval later, far from the field that caused it.
"""

from __future__ import annotations

from typing import Any

from django import forms

from .core.protocol import CollectorConfig
from .models import COLLECTOR_KINDS, default_options

# The kernel keeps a task's comm in 16 bytes, NUL included.
COMM_MAX_BYTES = 15
# Thread ids are below PID_MAX_LIMIT (2^22) on 64-bit kernels.
PID_MAX = 2**22 - 1
# The collector refuses more (runner.check_config): ~11.6 days blocked.
BLOCK_US_MAX = 10**12
THREADS = (("user", "user threads only"), ("all", "all threads, kernel threads too"))


def block_us_field(label: str) -> forms.IntegerField:
    """An optional off-CPU block-time bound in µs; both bounds share limits and messages."""
    return forms.IntegerField(
        label=label, required=False, min_value=0, max_value=BLOCK_US_MAX,
        error_messages={"min_value": "A block time cannot be negative.",
                        "max_value": f"A block time is at most {BLOCK_US_MAX} µs.",
                        "invalid": "A block time is a whole number of microseconds."})


class CollectorsForm(forms.Form):
    """Collector selection plus CPU frequency and off-CPU filters.

    Blank optional fields mean "no filter" (pid, comm, max block time) or the
    default (frequency: what the collector runs now; min block time 1 µs;
    user threads only), so a post that names only collectors stays valid.
    """

    collectors = forms.MultipleChoiceField(
        choices=[(k, k) for k in COLLECTOR_KINDS], required=False,
        widget=forms.CheckboxSelectMultiple)
    frequency_hz = forms.IntegerField(
        label="CPU sampling frequency (Hz)", required=False, min_value=1, max_value=999,
        error_messages={"min_value": "The frequency must be at least 1 Hz.",
                        "max_value": "The frequency must be at most 999 Hz.",
                        "invalid": "The frequency must be a whole number of Hz, 1 to 999."})
    pid = forms.IntegerField(
        label="Process id", required=False, min_value=1, max_value=PID_MAX,
        error_messages={"min_value": "A pid is at least 1.",
                        "max_value": f"A pid is at most {PID_MAX} (2^22 - 1).",
                        "invalid": "A pid is a whole number."})
    comm = forms.CharField(
        label="Process name contains", required=False, max_length=COMM_MAX_BYTES,
        error_messages={"max_length": "A process name has at most 15 characters "
                                      "(the kernel keeps 15 bytes)."})
    min_block_us = block_us_field("Minimum block time (µs)")
    max_block_us = block_us_field("Maximum block time (µs)")
    threads = forms.ChoiceField(
        label="Threads", choices=THREADS, required=False, widget=forms.RadioSelect)

    def clean_comm(self) -> str | None:
        comm = self.cleaned_data["comm"]  # already stripped by CharField
        if not comm:
            return None
        if not comm.isprintable():
            raise forms.ValidationError("A process name must be printable text "
                                        "(no control characters).")
        if len(comm.encode("utf-8")) > COMM_MAX_BYTES:
            raise forms.ValidationError("A process name has at most 15 bytes in UTF-8.")
        return comm

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        low, high = data.get("min_block_us"), data.get("max_block_us")
        if high is not None and high < (1 if low is None else low):
            self.add_error("max_block_us", "The maximum block time must not be below "
                                           "the minimum block time.")
        return data

    def options(self) -> dict[str, Any]:
        """The cleaned options as stored on Host.collector_options."""
        data = self.cleaned_data
        low = data["min_block_us"]
        return {
            **default_options(),
            "frequency_hz": data["frequency_hz"],
            "pid": data["pid"],
            "comm": data["comm"],
            "min_block_us": 1 if low is None else low,
            "max_block_us": data["max_block_us"],
            "user_threads_only": data["threads"] != "all",
        }

    def chosen(self) -> list[str]:
        return [k for k in COLLECTOR_KINDS if k in self.cleaned_data["collectors"]]


def initial_for(config: CollectorConfig) -> dict[str, Any]:
    """The form's values for a GET: what the host's stored config sends."""
    return {
        "collectors": config.collectors,
        "frequency_hz": config.frequency_hz,
        "pid": config.pid,
        "comm": config.comm or "",
        "min_block_us": config.min_block_us,
        "max_block_us": config.max_block_us,
        "threads": "user" if config.user_threads_only else "all",
    }
