from __future__ import annotations

from django.apps import AppConfig


class WebprofConfig(AppConfig):
    name = "webprof"
    verbose_name = "webprof"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        from .hub import configure_hub

        # Size the process-wide hub from settings once Django is configured.
        configure_hub(settings.WEBPROF_KEEP_INTERVALS, settings.WEBPROF_MAX_NODES)
