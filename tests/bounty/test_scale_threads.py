"""Each service process runs OpenBLAS on one thread unless the operator says otherwise.

With OpenBLAS's default (one thread per core), two processes on 2 cores spun against each other: the second
opinion's forward pass went from 0.33 ms alone to 13.7 ms each, and load_http's 200 submissions from 52 to
33 paid/s (docs/scale.md). The count is read from the OpenBLAS library numpy loaded, in a fresh interpreter
that imports the service the way gunicorn, Celery and manage.py do (the package first, numpy later).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.test import SimpleTestCase

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import ctypes, re, sys
import {first}
import numpy
numpy.ones((64, 64)) @ numpy.ones((64, 64))
libraries = sorted(set(re.findall(r"(/\\S*openblas\\S*\\.so\\S*)", open("/proc/self/maps").read())))
if not libraries:
    sys.exit("numpy loaded no OpenBLAS library")
library = ctypes.CDLL(libraries[0])
for name in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads"):
    if hasattr(library, name):
        print(getattr(library, name)())
        break
else:
    sys.exit("no thread-count function in " + libraries[0])
"""


def blas_threads(first_import: str, **environment: str) -> int:
    env = {key: value for key, value in os.environ.items() if not key.endswith("_NUM_THREADS")}
    env.update(environment, DJANGO_SETTINGS_MODULE="bounty.settings", PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(first=first_import)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    if done.returncode != 0:
        raise AssertionError(done.stderr or done.stdout)
    return int(done.stdout.strip())


class BlasThreadsTestCase(SimpleTestCase):
    def test_the_service_packages_run_blas_on_one_thread(self) -> None:
        # bounty: Celery (-A bounty) and manage.py (bounty.settings) import it first; bounty.wsgi: gunicorn.
        for first in ("bounty", "bounty.wsgi"):
            with self.subTest(first=first):
                self.assertEqual(blas_threads(first), 1)

    def test_numpy_alone_would_use_every_core(self) -> None:
        # What the setting prevents (this machine and CI's have 2 cores).
        self.assertGreater(blas_threads("json"), 1)

    def test_an_operators_setting_is_kept(self) -> None:
        self.assertEqual(blas_threads("bounty", OPENBLAS_NUM_THREADS="2"), 2)
