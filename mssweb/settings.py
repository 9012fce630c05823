"""mssweb settings: everything that differs between machines comes from the environment.

Local use (``make run``, ``make test``) works with no variable set: SQLite in ``var/``, a
filesystem Celery broker, e-mail printed on the console. Production sets ``DJANGO_DEBUG=false``
and must then provide ``DJANGO_SECRET_KEY`` and ``DJANGO_ALLOWED_HOSTS``: start-up fails loudly
without them. ``.env.example`` documents every variable.
"""

from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from apps.attachments.conf import parse_storage_keys

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    env.read_env(str(BASE_DIR / ".env"))

VAR_DIR = Path(env.str("MSSWEB_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DJANGO_DEBUG", default=False)
TESTING = env.bool("MSSWEB_TESTING", default=False)


def _dev_secret_key() -> str:
    """A per-checkout random key for local use only, kept in var/ (never committed)."""
    import secrets

    path = VAR_DIR / "dev-secret-key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


if DEBUG or TESTING:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or _dev_secret_key()
    ALLOWED_HOSTS = env.list(
        "DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"]
    )
else:
    # Production: no silent fallback to the local defaults (SQLite, file broker, console mail,
    # links to 127.0.0.1). Each of these must be set.
    PRODUCTION_REQUIRED = (
        "DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "DATABASE_URL", "EMAIL_URL",
        "MSSWEB_SITE_URL", "MSSWEB_STORAGE_KEYS", "WEBPUSH_VAPID_PUBLIC_KEY",
        "WEBPUSH_VAPID_PRIVATE_KEY", "WEBPUSH_VAPID_SUBJECT", "AUDIT_ANCHOR_KEY",
    )  # fmt: skip
    missing = [name for name in PRODUCTION_REQUIRED if not env.str(name, default="")]
    if not (env.str("REDIS_URL", default="") or env.str("CELERY_BROKER_URL", default="")):
        missing.append("REDIS_URL (or CELERY_BROKER_URL)")
    if missing:
        raise ImproperlyConfigured(
            f"Production (DJANGO_DEBUG=false) needs {', '.join(missing)}; see .env.example. "
            "For local use run `make run` or set DJANGO_DEBUG=true."
        )
    SECRET_KEY = env.str("DJANGO_SECRET_KEY")
    ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
    if len(SECRET_KEY) < 40:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be at least 40 characters long.")

CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

SITE_NAME = env.str("MSSWEB_SITE_NAME", default="mssweb")
SITE_URL = env.str("MSSWEB_SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "apps.core.apps.SecureAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "apps.core",
    "apps.audit",
    "apps.accounts",
    "apps.mailbox",
    "apps.directory",
    "apps.attachments",
    "apps.ingestion",
    "apps.trustlist",
    "apps.delivery",
    "apps.gateway",
    "apps.notifications",
    "apps.external",
    "apps.securelink",
]

MIDDLEWARE = [
    "apps.core.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "apps.core.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "apps.accounts.middleware.SessionControlMiddleware",
    "apps.accounts.middleware.SecondFactorRequiredMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mssweb.urls"
WSGI_APPLICATION = "mssweb.wsgi.application"
ASGI_APPLICATION = "mssweb.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.core.context_processors.site",
                "apps.notifications.context_processors.unread",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'mssweb.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers go on while one writer writes; IMMEDIATE transactions take the write lock
    # up front, so two writers queue (busy timeout) instead of deadlocking on lock upgrade.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, cache, Celery -----------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
CELERY_BROKER_DIR = VAR_DIR / "celery-broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    # Server-less broker for local use: queued messages are files under var/celery-broker.
    CELERY_BROKER_DIR.mkdir(parents=True, exist_ok=True)
    (CELERY_BROKER_DIR / "processed").mkdir(exist_ok=True)
    (CELERY_BROKER_DIR / "control").mkdir(exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR),
        "data_folder_out": str(CELERY_BROKER_DIR),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # keep the JSON log format of LOGGING below
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "accounts-sessions-cleanup": {
        "task": "accounts.sessions_cleanup",
        "schedule": timedelta(minutes=15),
    },
    "delivery-sweep": {"task": "delivery.sweep", "schedule": timedelta(minutes=1)},
    "gateway-sweep": {"task": "gateway.sweep", "schedule": timedelta(minutes=3)},
    "directory-import-daily": {
        "task": "directory.import_daily",
        "schedule": crontab(
            hour=env.int("DIRECTORY_IMPORT_HOUR", default=4),
            minute=env.int("DIRECTORY_IMPORT_MINUTE", default=30),
        ),
    },
}

# --- Authentication -----------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "core:home"
LOGOUT_REDIRECT_URL = "accounts:login"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
# OWASP ASVS 5 (V6.2): at least 12 characters, passphrases up to 128 accepted, a list of known
# breached/common passwords, no composition rules.
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator",
        "OPTIONS": {"user_attributes": ("email", "first_name", "last_name")},
    },
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "apps.accounts.validators.MaximumLengthValidator", "OPTIONS": {"max_length": 128}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "apps.accounts.validators.FrenchCommonPasswordValidator"},
]
PASSWORD_RESET_TIMEOUT = env.int("MSSWEB_PASSWORD_RESET_TIMEOUT", default=3600)

OTP_TOTP_ISSUER = env.str("MSSWEB_OTP_ISSUER", default="mssweb")
# django-otp's own per-device back-off is off: it refused a correct code typed within a second
# of a typo and reported it as wrong. Code attempts are limited by apps/accounts/throttling.py.
OTP_TOTP_THROTTLE_FACTOR = 0
BACKUP_CODE_COUNT = 10

# Brute-force throttling (apps/accounts/throttling.py). Failures are counted per account, per
# (account, address) pair and per address in a sliding window. The pair is locked quickly; the
# account alone only after many failures from several places, and only for a short while, so an
# attacker elsewhere cannot keep a professional out of their mailbox for long.
THROTTLE_WINDOW = timedelta(minutes=env.int("MSSWEB_THROTTLE_WINDOW_MINUTES", default=15))
THROTTLE_MAX_PER_PAIR = env.int("MSSWEB_THROTTLE_MAX_PER_PAIR", default=5)
THROTTLE_MAX_PER_ACCOUNT = env.int("MSSWEB_THROTTLE_MAX_PER_ACCOUNT", default=20)
THROTTLE_MAX_PER_ADDRESS = env.int("MSSWEB_THROTTLE_MAX_PER_ADDRESS", default=50)

# --- Sessions -----------------------------------------------------------------------------------
# Idle 30 min: a practice computer left open in a shared room locks itself quickly (the national
# requirement is 2 h at most). Absolute 12 h: a working day, so a stolen cookie dies overnight.
SESSION_IDLE_TIMEOUT = timedelta(minutes=env.int("MSSWEB_SESSION_IDLE_MINUTES", default=30))
SESSION_ABSOLUTE_TIMEOUT = timedelta(hours=env.int("MSSWEB_SESSION_ABSOLUTE_HOURS", default=12))
SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_COOKIE_AGE = int(SESSION_ABSOLUTE_TIMEOUT.total_seconds())
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_NAME = "mssweb_session"
# A login that stopped between password and code must finish within this delay.
LOGIN_PENDING_TIMEOUT = timedelta(minutes=5)

# --- Security headers ---------------------------------------------------------------------------
SECURE_HTTPS = env.bool("MSSWEB_HTTPS", default=not DEBUG)
SESSION_COOKIE_SECURE = SECURE_HTTPS
CSRF_COOKIE_SECURE = SECURE_HTTPS
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=SECURE_HTTPS)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000 if SECURE_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool(
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=SECURE_HTTPS
)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
if env.bool("DJANGO_BEHIND_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"
CSRF_COOKIE_HTTPONLY = True
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)

# --- I18n ---------------------------------------------------------------------------------------
LANGUAGE_CODE = "fr"
LANGUAGES = [("fr", _("Français")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("MSSWEB_TIME_ZONE", default="Europe/Paris")
USE_I18N = True
USE_TZ = True

# --- Static files -------------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("DJANGO_STATIC_ROOT", default=str(VAR_DIR / "static")))
MEDIA_ROOT = Path(env.str("MSSWEB_MEDIA_ROOT", default=str(VAR_DIR / "media")))
STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {
            "location": MEDIA_ROOT,
            "file_permissions_mode": 0o600,
            "directory_permissions_mode": 0o700,
        },
    },
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG or TESTING
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- E-mail (notices to users: password reset, second factor reset) ---------------------------
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")  # required in production
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="mssweb <no-reply@localhost>")

# --- National directory (apps/directory) ------------------------------------------------------
# Paths or http(s) URLs of the two extracts (.txt or the official .zip), imported daily by beat.
DIRECTORY_ACTIVITIES_SOURCE = env.str("DIRECTORY_ACTIVITIES_SOURCE", default="")
DIRECTORY_MSSANTE_SOURCE = env.str("DIRECTORY_MSSANTE_SOURCE", default="")
# An import is refused (the directory in service is kept) above this share of broken lines,
# or when it brings fewer than this share of the activities in service (a truncated download).
DIRECTORY_MAX_REJECTED_RATIO = env.float("DIRECTORY_MAX_REJECTED_RATIO", default=0.01)
DIRECTORY_MIN_KEPT_RATIO = env.float("DIRECTORY_MIN_KEPT_RATIO", default=0.5)
# Recipient autocompletion: results per answer, and requests allowed per user per 10 seconds.
DIRECTORY_AUTOCOMPLETE_LIMIT = env.int("DIRECTORY_AUTOCOMPLETE_LIMIT", default=8)
DIRECTORY_AUTOCOMPLETE_RATE = env.int("DIRECTORY_AUTOCOMPLETE_RATE", default=30)
# People in the synthetic directory loaded by `make run`'s demo seed.
MSSWEB_DEMO_DIRECTORY_PEOPLE = env.int("MSSWEB_DEMO_DIRECTORY_PEOPLE", default=3000)

# --- Encrypted storage (apps/attachments) ---------------------------------------------------
# Master keys "id:base64,id:base64" (32 random bytes each); required in production. Without
# them, debug and tests use a key kept in VAR_DIR/dev-storage-key (id "dev"). MEDIA_ROOT holds
# ciphertext only and is never served over the web.
STORAGE_KEYS = parse_storage_keys(env.str("MSSWEB_STORAGE_KEYS", default=""))
STORAGE_ACTIVE_KEY = env.str("MSSWEB_STORAGE_ACTIVE_KEY", default="")
if STORAGE_ACTIVE_KEY and STORAGE_ACTIVE_KEY not in STORAGE_KEYS:
    raise ImproperlyConfigured("MSSWEB_STORAGE_ACTIVE_KEY must name a key of MSSWEB_STORAGE_KEYS.")
if len(STORAGE_KEYS) > 1 and not STORAGE_ACTIVE_KEY:
    raise ImproperlyConfigured("Several MSSWEB_STORAGE_KEYS: set MSSWEB_STORAGE_ACTIVE_KEY.")

# --- Mail (apps/mailbox) ---------------------------------------------------------------------
# Largest message (text and attachments), and most attachments per message.
MAILBOX_MAX_MESSAGE_SIZE = env.int("MAILBOX_MAX_MESSAGE_SIZE", default=25_000_000)
MAILBOX_MAX_ATTACHMENTS = env.int("MAILBOX_MAX_ATTACHMENTS", default=20)
# Space per mailbox unless set on the mailbox in the admin (bytes; default 2 GB).
MAILBOX_DEFAULT_QUOTA = env.int("MAILBOX_DEFAULT_QUOTA", default=2_000_000_000)
# Previews of PDF attachments, rendered to images by PDFium in a boxed-in process: wall-clock
# seconds per rendering, pages shown, scale (1.5 = 108 dpi), width and pixels per page, PNG bytes
# per rendering, and how long rendered pages stay (encrypted) in the cache.
MAILBOX_PREVIEW_TIMEOUT = env.int("MAILBOX_PREVIEW_TIMEOUT", default=20)
MAILBOX_PREVIEW_MAX_PAGES = env.int("MAILBOX_PREVIEW_MAX_PAGES", default=30)
MAILBOX_PREVIEW_SCALE = env.float("MAILBOX_PREVIEW_SCALE", default=1.5)
MAILBOX_PREVIEW_MAX_WIDTH = env.int("MAILBOX_PREVIEW_MAX_WIDTH", default=1400)
MAILBOX_PREVIEW_MAX_PIXELS = env.int("MAILBOX_PREVIEW_MAX_PIXELS", default=4_000_000)
MAILBOX_PREVIEW_MAX_BYTES = env.int("MAILBOX_PREVIEW_MAX_BYTES", default=40_000_000)
MAILBOX_PREVIEW_CACHE_SECONDS = env.int("MAILBOX_PREVIEW_CACHE_SECONDS", default=900)
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440  # form fields; files stream to disk beyond this
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

# --- Federation: trust list (apps/trustlist) ---------------------------------------------------
# The ANS list (path or http(s) URL, e.g. https://espacedeconfiance.mssante.fr/
# listeblanchemssante.xml), refreshed daily by beat; empty: no refresh (import by hand with
# `manage.py import_trustlist`). TRUSTLIST_SHA256: expected checksum, 64 hex characters or the
# path/URL of the published checksum file. TRUSTLIST_CA_BUNDLE: PEM roots for the download (the
# official site uses an IGC-Santé certificate); empty: the system's roots.
TRUSTLIST_SOURCE = env.str("TRUSTLIST_SOURCE", default="")
TRUSTLIST_SHA256 = env.str("TRUSTLIST_SHA256", default="")
TRUSTLIST_CA_BUNDLE = env.str("TRUSTLIST_CA_BUNDLE", default="")
TRUSTLIST_MAX_BYTES = env.int("TRUSTLIST_MAX_BYTES", default=20_000_000)
TRUSTLIST_TIMEOUT = env.int("TRUSTLIST_TIMEOUT", default=60)
# A list is refused (the one in service kept) above this share of unusable entries.
TRUSTLIST_MAX_REJECTED_RATIO = env.float("TRUSTLIST_MAX_REJECTED_RATIO", default=0.01)
CELERY_BEAT_SCHEDULE["trustlist-refresh-daily"] = {
    "task": "trustlist.refresh",
    "schedule": crontab(
        hour=env.int("TRUSTLIST_REFRESH_HOUR", default=3),
        minute=env.int("TRUSTLIST_REFRESH_MINUTE", default=15),
    ),
}
# Patients' addresses (<INS>@patient.mssante.fr, Mon espace santé): routed apart.
MSSANTE_PATIENT_DOMAIN = env.str("MSSANTE_PATIENT_DOMAIN", default="patient.mssante.fr")
# Largest message to a patient, whatever MAILBOX_MAX_MESSAGE_SIZE says (bytes, the whole message
# as sent): the MSSanté rule is 25 MB.
MSSANTE_PATIENT_MAX_SIZE = env.int("MSSANTE_PATIENT_MAX_SIZE", default=25_000_000)

# --- Federation: outbound delivery (apps/delivery) ----------------------------------------------
# Next hop: static routes "domain=host:port,…" first (tests, private peerings), else a relay
# host "host:port" (Postfix in front, which then enforces TLS and the trust list itself), else the
# domain's MX records (A record when there is none, RFC 5321).
DELIVERY_ROUTES = env.str("DELIVERY_ROUTES", default="")
DELIVERY_RELAY_HOST = env.str("DELIVERY_RELAY_HOST", default="")
# TLS to peers (never to the relay unless DELIVERY_RELAY_REQUIRE_TLS): CA bundle of the
# IGC-Santé roots, and this operator's client certificate and key (PEM files).
DELIVERY_CA_BUNDLE = env.str("DELIVERY_CA_BUNDLE", default="")
DELIVERY_CLIENT_CERT = env.str("DELIVERY_CLIENT_CERT", default="")
DELIVERY_CLIENT_KEY = env.str("DELIVERY_CLIENT_KEY", default="")
DELIVERY_TLS_CHECK_HOSTNAME = env.bool("DELIVERY_TLS_CHECK_HOSTNAME", default=True)
DELIVERY_RELAY_REQUIRE_TLS = env.bool("DELIVERY_RELAY_REQUIRE_TLS", default=True)
DELIVERY_EHLO_NAME = env.str("DELIVERY_EHLO_NAME", default="") or None  # None: the host name
DELIVERY_SMTP_TIMEOUT = env.float("DELIVERY_SMTP_TIMEOUT", default=60.0)
# Retries: a claimed row is reserved for DELIVERY_LEASE_SECONDS; a deferred one waits
# DELIVERY_RETRY_MIN seconds, doubling up to DELIVERY_RETRY_MAX; it fails after its lifetime.
DELIVERY_LEASE_SECONDS = env.int("DELIVERY_LEASE_SECONDS", default=600)
DELIVERY_RETRY_MIN = env.int("DELIVERY_RETRY_MIN", default=300)
DELIVERY_RETRY_MAX = env.int("DELIVERY_RETRY_MAX", default=3600)
DELIVERY_MAX_LIFETIME = env.int("DELIVERY_MAX_LIFETIME", default=5 * 24 * 3600)
DELIVERY_BATCH_SIZE = env.int("DELIVERY_BATCH_SIZE", default=100)

# --- Federation: inbound SMTP gateway and ingestion (apps/gateway) ------------------------------
# `manage.py smtp_gateway` (make run: 127.0.0.1:2525). Name in the banner and Received: lines
# (empty: the machine's FQDN). Largest message accepted (SIZE): the MIME encoding of
# MAILBOX_MAX_MESSAGE_SIZE of attachments makes it about 1.4 times bigger.
GATEWAY_HOSTNAME = env.str("GATEWAY_HOSTNAME", default="")
GATEWAY_MAX_MESSAGE_SIZE = env.int(
    "GATEWAY_MAX_MESSAGE_SIZE", default=int(MAILBOX_MAX_MESSAGE_SIZE * 1.4)
)
# STARTTLS certificate and key (PEM). With DJANGO_DEBUG=true and none set, a self-signed pair is
# made in VAR_DIR/tls. GATEWAY_REQUIRE_TLS refuses MAIL before STARTTLS (MSSanté requires TLS).
GATEWAY_TLS_CERT = env.str("GATEWAY_TLS_CERT", default="")
GATEWAY_TLS_KEY = env.str("GATEWAY_TLS_KEY", default="")
GATEWAY_REQUIRE_TLS = env.bool("GATEWAY_REQUIRE_TLS", default=not DEBUG)
# Mutual TLS: PEM roots client certificates must chain to (IGC-Santé in production); a client
# certificate's subject DN must then be listed in the trust list for the sender's domain.
# GATEWAY_REQUIRE_CLIENT_CERT refuses peers that present none.
GATEWAY_CLIENT_CA_BUNDLE = env.str("GATEWAY_CLIENT_CA_BUNDLE", default="")
GATEWAY_REQUIRE_CLIENT_CERT = env.bool("GATEWAY_REQUIRE_CLIENT_CERT", default=False)
# Self-protection: simultaneous connections, recipients per message, times each command may be
# used per connection, idle time between commands and whole session time (seconds).
GATEWAY_MAX_CONNECTIONS = env.int("GATEWAY_MAX_CONNECTIONS", default=100)
GATEWAY_MAX_RECIPIENTS = env.int("GATEWAY_MAX_RECIPIENTS", default=100)
GATEWAY_MAX_COMMANDS = env.int("GATEWAY_MAX_COMMANDS", default=1000)
GATEWAY_IDLE_TIMEOUT = env.int("GATEWAY_IDLE_TIMEOUT", default=300)
GATEWAY_SESSION_TIMEOUT = env.int("GATEWAY_SESSION_TIMEOUT", default=1800)
# Threads doing the gateway's database and storage work (each holds one database connection).
GATEWAY_DB_THREADS = env.int("GATEWAY_DB_THREADS", default=10)
# Seconds a gateway process remembers whether an address is a local mailbox (and has room) for
# RCPT: a mailbox created is accepted within that delay. 0: ask the database every time.
GATEWAY_RCPT_CACHE_SECONDS = env.int("GATEWAY_RCPT_CACHE_SECONDS", default=5)
# Ingestion (Celery task gateway.ingest): attempts before quarantine, first retry delay (doubled
# each time, at most an hour), how long a worker holds a message, and how late an accepted message
# may be before the sweeper (beat, and `manage.py gateway_sweep`) enqueues it again (seconds).
GATEWAY_INGEST_MAX_ATTEMPTS = env.int("GATEWAY_INGEST_MAX_ATTEMPTS", default=8)
GATEWAY_INGEST_RETRY_BASE = env.int("GATEWAY_INGEST_RETRY_BASE", default=30)
GATEWAY_INGEST_LEASE = env.int("GATEWAY_INGEST_LEASE", default=600)
GATEWAY_SWEEP_AFTER = env.int("GATEWAY_SWEEP_AFTER", default=60)

# --- Alerts: Web Push, SMS and e-mail notices (apps/notifications) ----------------------------
# VAPID key pair (base64url: the raw 32-byte private scalar and the 65-byte public point) and the
# contact sent to push services ("mailto:…" or "https://…"). Required in production; with
# DJANGO_DEBUG=true or in tests and no value, a pair is kept in VAR_DIR/dev-vapid-key.
WEBPUSH_VAPID_PUBLIC_KEY = env.str("WEBPUSH_VAPID_PUBLIC_KEY", default="")
WEBPUSH_VAPID_PRIVATE_KEY = env.str("WEBPUSH_VAPID_PRIVATE_KEY", default="")
WEBPUSH_VAPID_SUBJECT = env.str("WEBPUSH_VAPID_SUBJECT", default="")
# A subscription's endpoint comes from the browser: the worker only posts to these push services
# (a leading dot allows subdomains), over HTTPS, so nobody can aim it at an internal address.
WEBPUSH_ALLOWED_HOSTS = env.list(
    "WEBPUSH_ALLOWED_HOSTS",
    default=[
        "fcm.googleapis.com", "updates.push.services.mozilla.com", ".push.services.mozilla.com",
        ".notify.windows.com", "web.push.apple.com", ".push.apple.com",
    ],
)  # fmt: skip
WEBPUSH_REQUIRE_HTTPS = env.bool("WEBPUSH_REQUIRE_HTTPS", default=True)
WEBPUSH_TIMEOUT = env.float("WEBPUSH_TIMEOUT", default=10.0)
WEBPUSH_MAX_DEVICES = env.int("WEBPUSH_MAX_DEVICES", default=10)
# SMS gateway (dotted path of a class of apps/notifications/sms.py or the operator's own).
SMS_BACKEND = env.str("SMS_BACKEND", default="apps.notifications.sms.ConsoleBackend")
CELERY_BEAT_SCHEDULE["notifications-digest"] = {
    "task": "notifications.digest_flush",
    "schedule": timedelta(minutes=5),
}

# --- Traceability (apps/audit) ----------------------------------------------------------------
# Anchoring: each day the head of the audit chain is signed with this Ed25519 key (PEM text or
# file path, or base64 of the 32-byte seed; required in production, a key is kept in
# VAR_DIR/dev-audit-anchor-key in debug and tests) and appended to a file per day in
# AUDIT_ANCHOR_DIR, and POSTed as JSON to AUDIT_ANCHOR_URL when set. Keep the directory off the
# database server, ideally on write-once storage.
AUDIT_ANCHOR_KEY = env.str("AUDIT_ANCHOR_KEY", default="")
AUDIT_ANCHOR_DIR = env.str("AUDIT_ANCHOR_DIR", default=str(VAR_DIR / "audit-anchors"))
AUDIT_ANCHOR_URL = env.str("AUDIT_ANCHOR_URL", default="")
# Retention (days): audit events (CNIL: about a year for access logs), messages in the Corbeille.
AUDIT_RETENTION_DAYS = env.int("AUDIT_RETENTION_DAYS", default=365)
MAILBOX_TRASH_RETENTION_DAYS = env.int("MAILBOX_TRASH_RETENTION_DAYS", default=30)
# Events are recorded unsealed and chained by the audit.seal task this often (seconds); see
# apps/audit/services.py. Traces, exports and checks seal first whatever the interval.
AUDIT_SEAL_INTERVAL = env.float("AUDIT_SEAL_INTERVAL", default=5.0)
CELERY_BEAT_SCHEDULE.update(
    {
        "audit-seal": {
            "task": "audit.seal",
            "schedule": timedelta(seconds=AUDIT_SEAL_INTERVAL),
            # A late run is useless once the next one is queued.
            "options": {"expires": AUDIT_SEAL_INTERVAL * 2},
        },
        "audit-anchor-daily": {
            "task": "audit.anchor_daily",
            "schedule": crontab(hour=env.int("AUDIT_DAILY_HOUR", default=2), minute=5),
        },
        "audit-verify-daily": {
            "task": "audit.verify_daily",
            "schedule": crontab(hour=env.int("AUDIT_DAILY_HOUR", default=2), minute=20),
        },
        "audit-purge-retention-daily": {
            "task": "audit.purge_retention",
            "schedule": crontab(hour=env.int("AUDIT_DAILY_HOUR", default=2), minute=45),
        },
    }
)

# --- Patients and recipients outside the trust space (apps/external, apps/securelink) ---------
# What to do with a recipient outside the trust space: "refuse", or "protect" (OpenPGP when the
# contact has a key, else a secure link or encrypted attachments; nothing in clear).
EXTERNAL_RECIPIENTS_POLICY = env.str("EXTERNAL_RECIPIENTS_POLICY", default="protect")
if EXTERNAL_RECIPIENTS_POLICY not in ("refuse", "protect"):
    raise ImproperlyConfigured("EXTERNAL_RECIPIENTS_POLICY must be 'refuse' or 'protect'.")
# Ordinary e-mail to external recipients: through EXTERNAL_RELAY_HOST (host:port) or the
# domain's MX (DELIVERY_ROUTES still wins, for tests); STARTTLS required unless
# EXTERNAL_REQUIRE_TLS is off, certificate checked against the system roots or
# EXTERNAL_CA_BUNDLE. No trust-list check (these servers are not MSSanté operators).
EXTERNAL_RELAY_HOST = env.str("EXTERNAL_RELAY_HOST", default="")
EXTERNAL_REQUIRE_TLS = env.bool("EXTERNAL_REQUIRE_TLS", default=True)
EXTERNAL_CA_BUNDLE = env.str("EXTERNAL_CA_BUNDLE", default="")
# The compose page's live check of recipients: answers per user per 10 seconds.
EXTERNAL_ROUTES_RATE = env.int("EXTERNAL_ROUTES_RATE", default=20)
# The operator's GnuPG home (recipients' public keys; made with mode 0700) and the cost of the
# passphrase key derivation of encrypted attachments (gpg --s2k-count, 1024..65011712).
GNUPG_HOME = env.str("GNUPG_HOME", default=str(VAR_DIR / "gnupg"))
GNUPG_BINARY = env.str("GNUPG_BINARY", default="gpg")
EXTERNAL_S2K_COUNT = env.int("EXTERNAL_S2K_COUNT", default=8_388_608)
# HTTP SMS gateway (SMS_BACKEND=apps.notifications.sms.HttpBackend): URL, token (sent as
# "Authorization: Bearer …"), sender name, and "json" or "form" body.
SMS_HTTP_URL = env.str("SMS_HTTP_URL", default="")
SMS_HTTP_TOKEN = env.str("SMS_HTTP_TOKEN", default="")
SMS_HTTP_SENDER = env.str("SMS_HTTP_SENDER", default="MSSWEB")
SMS_HTTP_FORMAT = env.str("SMS_HTTP_FORMAT", default="json")
SMS_HTTP_TIMEOUT = env.float("SMS_HTTP_TIMEOUT", default=10.0)
# Secure links (apps/securelink): lifetime of a link (days), wrong codes before it locks, wrong
# codes per visitor address in THROTTLE_WINDOW (all links), replies the recipient may send, the
# reading session's idle and absolute limits (minutes), the reply's limits, and the From of the
# notice e-mail (default: ne-pas-repondre@<host of MSSWEB_SITE_URL>).
SECURE_LINK_LIFETIME_DAYS = env.int("SECURE_LINK_LIFETIME_DAYS", default=30)
SECURE_LINK_MAX_ATTEMPTS = env.int("SECURE_LINK_MAX_ATTEMPTS", default=5)
SECURE_LINK_MAX_ATTEMPTS_PER_IP = env.int("SECURE_LINK_MAX_ATTEMPTS_PER_IP", default=20)
SECURE_LINK_MAX_REPLIES = env.int("SECURE_LINK_MAX_REPLIES", default=3)
SECURE_LINK_SESSION_IDLE_MINUTES = env.int("SECURE_LINK_SESSION_IDLE_MINUTES", default=15)
SECURE_LINK_SESSION_MAX_MINUTES = env.int("SECURE_LINK_SESSION_MAX_MINUTES", default=120)
SECURE_LINK_REPLY_MAX_SIZE = env.int("SECURE_LINK_REPLY_MAX_SIZE", default=10_000_000)
SECURE_LINK_REPLY_MAX_FILES = env.int("SECURE_LINK_REPLY_MAX_FILES", default=5)
SECURE_LINK_REPLY_MAX_CHARS = 50_000
SECURE_LINK_NOTICE_FROM = env.str("SECURE_LINK_NOTICE_FROM", default="")
CELERY_BEAT_SCHEDULE["securelink-expire"] = {
    "task": "securelink.expire_sweep",
    "schedule": timedelta(hours=1),
}

# --- Demo seed ----------------------------------------------------------------------------------
MSSWEB_DEMO_DOMAIN = env.str("MSSWEB_DEMO_DOMAIN", default="mssweb-demo.mssante.fr")

# --- Logging: one JSON object per line, ids and redacted addresses only -------------------------
LOG_LEVEL = env.str("MSSWEB_LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "apps.core.logging.RequestIdFilter"},
        "redact": {"()": "apps.core.logging.RedactFilter"},
    },
    "formatters": {"json": {"()": "apps.core.logging.JsonFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["request_id", "redact"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "celery": {"level": "INFO"},
        # aiosmtpd (the peers of the tests and benches) logs every command line at INFO.
        "mail.log": {"level": "WARNING"},
    },
}
