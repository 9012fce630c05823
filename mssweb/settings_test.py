"""Settings for the test suite: the production settings, with test-only defaults.

DATABASE_URL and REDIS_URL still choose PostgreSQL and Redis when set (as ``.ci/run`` does).
"""

import os

os.environ.setdefault("MSSWEB_TESTING", "true")
os.environ.setdefault("MSSWEB_HTTPS", "false")
os.environ.setdefault(
    "MSSWEB_VAR_DIR", os.path.join(os.path.dirname(__file__), "..", "var", "test")
)

from mssweb.settings import *  # noqa: F403

# Argon2 stays the production hasher (tested in tests/accounts); tests hash faster.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PASSWORD_HASHERS]  # noqa: F405
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Records are still made at INFO (a bad ``extra`` key fails the test), through the same filters
# and formatter, but only warnings reach the console.
LOGGING["handlers"]["console"]["level"] = "WARNING"  # noqa: F405
# Tasks run inline unless a test starts a real worker (tests/core/test_celery_worker.py).
CELERY_TASK_ALWAYS_EAGER = True
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405 - whitenoise wants it to exist
