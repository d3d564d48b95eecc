"""Included at the site root: /healthz, /readyz and the signing pages under /ops/sign/ (sign_offline)."""

from django.urls import path

from bounty.ops import views

urlpatterns = [
    path("healthz", views.healthz, name="ops-healthz"),
    path("readyz", views.readyz, name="ops-readyz"),
    path("ops/sign/", views.signing_index, name="ops-signing"),
    path("ops/sign/bounty/<int:pk>/refund/", views.signing_refund, name="ops-signing-refund"),
    path(
        "ops/sign/bounty/<int:pk>/refund/request.json",
        views.signing_refund_request,
        name="ops-signing-refund-request",
    ),
    path("ops/sign/migration/<int:pk>/", views.signing_migration, name="ops-signing-migration"),
    path(
        "ops/sign/migration/<int:pk>/request.json",
        views.signing_migration_request,
        name="ops-signing-migration-request",
    ),
]
