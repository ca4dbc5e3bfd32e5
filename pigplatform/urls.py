from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

# A lost database is a 503 with a message, also when it fails outside a view (pigplatform/middleware.py).
handler500 = "pigplatform.middleware.server_error"

admin.site.site_header = "PIG Platform — research admin"
admin.site.site_title = "PIG Platform"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("results/", include("annotation.results_urls")),
    path("generation/", include("training.generation_urls")),
    path("training/", include("training.urls")),
    path("", include("annotation.urls")),
]
