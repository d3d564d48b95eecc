"""The retraining app: its tasks are imported at start-up so a Celery worker of `bounty` knows them."""

from django.apps import AppConfig


class RetrainingConfig(AppConfig):
    name = "bounty.retraining"
    label = "retraining"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # bounty.celery autodiscovers `bounty.tasks` only; importing registers these shared tasks too.
        from bounty.retraining import tasks  # noqa: F401
