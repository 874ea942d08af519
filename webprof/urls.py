from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.hosts, name="hosts"),
    path("hosts.json", views.hosts_json, name="hosts-json"),
    path("hosts/<str:name>/", views.host, name="host"),
    path("hosts/<str:name>/latency/<str:kind>/", views.latency, name="latency"),
    path("hosts/<str:name>/<str:kind>/", views.profile, name="profile"),
    path("", include("webprof.sessions.urls")),
    path("", include("webprof.sessions.viewer_urls")),
    path("", include("webprof.traces.api_urls")),
    path("", include("webprof.traces.urls")),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
