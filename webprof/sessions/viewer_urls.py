"""Routes of the session viewer: the range heatmap, flame graphs, diff, shared links.

``/s/<token>/...`` routes take no session id: the token names the session.
"""

from __future__ import annotations

from django.urls import path

from . import viewer

urlpatterns = [
    path("sessions/diff/", viewer.diff_page, name="session-diff"),
    path("sessions/diff.json", viewer.diff_json, name="session-diff-json"),
    path("sessions/<int:session_id>/", viewer.session_page, name="session"),
    path("sessions/<int:session_id>/flame.json", viewer.flame_json, name="session-flame"),
    path("sessions/<int:session_id>/heatmap.json", viewer.heatmap_json,
         name="session-heatmap"),
    path("sessions/<int:session_id>/timeline.json", viewer.timeline_json,
         name="session-timeline"),
    path("sessions/<int:session_id>/latency.json", viewer.latency_json,
         name="session-latency"),
    path("s/<str:token>/", viewer.shared_page, name="shared-session"),
    path("s/<str:token>/flame.json", viewer.shared_flame_json, name="shared-flame"),
    path("s/<str:token>/heatmap.json", viewer.shared_heatmap_json, name="shared-heatmap"),
    path("s/<str:token>/timeline.json", viewer.shared_timeline_json, name="shared-timeline"),
    path("s/<str:token>/latency.json", viewer.shared_latency_json, name="shared-latency"),
    path("s/<str:token>/export/", viewer.shared_export, name="shared-export"),
]
