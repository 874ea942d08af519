"""Routes of the session pages: list, manage, record, share, import, export.

The viewer's own routes (``sessions/<id>/``, ``s/<token>/``) are in viewer_urls.py.
"""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("sessions/", views.session_list, name="sessions"),
    path("sessions/record/", views.record, name="session-record"),
    path("sessions/import/", views.import_view, name="session-import"),
    path("sessions/<int:session_id>/status.json", views.status, name="session-status"),
    path("sessions/<int:session_id>/stop/", views.stop, name="session-stop"),
    path("sessions/<int:session_id>/manage/", views.manage, name="session-manage"),
    path("sessions/<int:session_id>/edit/", views.edit, name="session-edit"),
    path("sessions/<int:session_id>/delete/", views.delete, name="session-delete"),
    path("sessions/<int:session_id>/shares/", views.create_share, name="session-shares"),
    path("sessions/<int:session_id>/export/", views.export, name="session-export"),
    path("sessions/shares/<int:link_id>/revoke/", views.revoke_share,
         name="session-share-revoke"),
]
