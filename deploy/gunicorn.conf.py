"""gunicorn settings for the bounty web process (systemd: bounty-web.service; compose: the `web` service).

    gunicorn --config deploy/gunicorn.conf.py bounty.wsgi

Everything can be overridden from the environment file (deploy/env.example documents each variable).
Workers are synchronous: a request is short (the classifier runs in Celery, never in a request), and nginx
buffers slow clients so a sync worker is never held by one.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", str(min(2 * multiprocessing.cpu_count() + 1, 8))))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "2000"))  # recycle workers: bounded memory
max_requests_jitter = max_requests // 10
# Only nginx on this host may set X-Forwarded-Proto; a container sets this to its proxy network.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
proxy_allow_ips = forwarded_allow_ips
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
preload_app = False  # each worker opens its own database and Redis connections
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# One JSON line per request, joined to the application's logs by the request id (set by nginx or Django).
access_log_format = (
    '{"time":"%(t)s","level":"INFO","logger":"gunicorn.access","request_id":"%({x-request-id}o)s",'
    '"remote":"%({x-real-ip}i)s","method":"%(m)s","path":"%(U)s","status":%(s)s,"bytes":%(B)s,'
    '"duration_ms":%(M)s,"agent":"%(a)s"}'
)
# The path only (%(U)s), never the query string: nothing private travels in it, and nothing will.
