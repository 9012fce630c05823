"""Settings of the processes the fault tests start (Celery worker, SMTP gateway, agent): the test
settings, with a real broker — tasks are not eager unless ``CELERY_TASK_ALWAYS_EAGER=true``.
Database, broker, var directory and peers come from the environment the harness gives them."""

from mssweb.settings_test import *  # noqa: F403

CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)  # noqa: F405
# The harness reads the worker's "ready" line, and the logs help when a fault test fails.
LOGGING["handlers"]["console"]["level"] = "INFO"  # noqa: F405
