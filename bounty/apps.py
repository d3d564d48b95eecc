"""The Django app, and the system checks that validate its configuration at start-up."""

from django.apps import AppConfig


class BountyConfig(AppConfig):
    name = "bounty"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from bounty import checks  # noqa: F401  (registers the checks)
