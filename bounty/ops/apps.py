from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "bounty.ops"
    label = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        # The heartbeat task and the worker signal handlers register on import; Celery's Django fix-up
        # runs django.setup() in the worker, so this is enough for the worker to know them.
        from bounty.ops import tasks  # noqa: F401
