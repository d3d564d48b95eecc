"""Operations: health and readiness, the worker heartbeat, JSON logs with request and task ids, backup and
restore, and the page that shows an admin what to sign when the admin key is kept off the server."""
