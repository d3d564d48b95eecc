"""URLs: the contributor pages and the funders' admin."""

from django.contrib import admin
from django.urls import include, path

from bounty import callbacks, views

urlpatterns = [
    path("", views.index, name="bounty-index"),
    path("bounties/<int:pk>/", views.bounty_page, name="bounty-page"),
    path("submissions/<uuid:public_id>/", views.status_page, name="bounty-status"),
    path("submissions/<uuid:public_id>/status.json", views.status_json, name="bounty-status-json"),
    path("address-check", views.address_check, name="bounty-address-check"),
    path("arc/callback/", callbacks.arc_callback, name="arc-callback"),
    path("admin/", admin.site.urls),
    path("", include("bounty.ops.urls")),
    path("models/", include("bounty.retraining.urls")),
]
