"""The bounty service: a Django project and app, with its Celery application.

Importing the Celery app here makes `shared_task` bind to it whenever Django starts.
"""

import os

# One BLAS thread per process. The service's processes (gunicorn workers, Celery workers) already share the
# cores; OpenBLAS's own threads, started on every multi-core machine, then spin against each other: the
# second opinion's forward pass took 0.33 ms alone and 13.7 ms each in two processes at once on 2 cores,
# 0.32 ms each with one thread (docs/scale.md). Set before numpy loads OpenBLAS; an operator's value wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from bounty.celery import app as celery_app

__all__ = ["celery_app"]
