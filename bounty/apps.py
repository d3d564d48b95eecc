"""The Django app, the system checks that validate its configuration at start-up, and its tasks."""

from django.apps import AppConfig


class BountyConfig(AppConfig):
    name = "bounty"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the system checks, and the tasks with the Celery app in every process that runs Django,
        # not only in workers: `bounty.queue` calls a task by its registered name.
        from bounty import checks, tasks  # noqa: F401
