"""The bounty service: a Django project and app, with its Celery application.

Importing the Celery app here makes `shared_task` bind to it whenever Django starts.
"""

from bounty.celery import app as celery_app

__all__ = ["celery_app"]
