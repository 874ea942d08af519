"""Routes of the trace pages: /traces/, /traces/new/, /traces/<id>/ (the UI's).

The JSON API's routes are in api_urls.py.
"""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("traces/", views.trace_list, name="traces"),
    path("traces/new/", views.trace_new, name="trace-new"),
    path("traces/<int:trace_id>/", views.trace_detail, name="trace"),
]
