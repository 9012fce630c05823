# mssweb image: one image for every process (web, worker, beat, migrate); compose.yaml picks the
# command. The code is not an installed package (pyproject.toml has `packages = []`): the
# dependencies go into /opt/venv and the source tree runs from /opt/mssweb.
#
#   docker build -t mssweb .
#   docker run --env-file .env -p 127.0.0.1:8000:8000 mssweb      # web (gunicorn)
#   docker run --env-file .env mssweb celery -A mssweb worker --loglevel=INFO

# --- build: the dependencies, in a virtualenv copied whole into the runtime stage ----------------
FROM python:3.11-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /build
# Only what `pip install .` reads (pyproject.toml declares readme = "README.md"), so this layer is
# rebuilt when the dependencies change, not on every code change.
COPY pyproject.toml README.md ./
RUN pip install --no-cache-dir .

# --- runtime ----------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm AS runtime

# gnupg: the encrypted attachment store (python-gnupg drives the gpg binary). libpq is not needed:
# psycopg[binary] ships its own. The .mo translation files are in the source tree, so no gettext.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gnupg \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --gid 10001 mssweb \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/mssweb \
        --shell /usr/sbin/nologin mssweb

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/opt/mssweb \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=mssweb.settings \
    MSSWEB_VAR_DIR=/var/lib/mssweb \
    DJANGO_STATIC_ROOT=/opt/mssweb/staticfiles

COPY --from=build /opt/venv /opt/venv

# The code stays owned by root: the mssweb user can read it, not change it. Its only writable
# place is MSSWEB_VAR_DIR (celery beat's schedule, later the attachment store): mount a volume.
WORKDIR /opt/mssweb
COPY manage.py ./
COPY mssweb ./mssweb
COPY apps ./apps
COPY templates ./templates
COPY static ./static
COPY locale ./locale

# collectstatic in production mode (hashed, compressed files for WhiteNoise). Settings refuse to
# load without a secret key and allowed hosts, so this one command gets throw-away values; it
# touches no database, and its scratch VAR_DIR is removed so /var/lib/mssweb stays empty.
RUN install -d -o mssweb -g mssweb -m 0750 /var/lib/mssweb \
    && DJANGO_SECRET_KEY=build-only-not-secret-used-by-collectstatic-only \
       DJANGO_ALLOWED_HOSTS=localhost \
       DATABASE_URL=sqlite:////tmp/build.sqlite3 \
       REDIS_URL=redis://build-only.invalid:6379/0 \
       EMAIL_URL=dummymail:// \
       MSSWEB_SITE_URL=https://build-only.invalid \
       MSSWEB_STORAGE_KEYS=build:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= \
       WEBPUSH_VAPID_PUBLIC_KEY=build-only \
       WEBPUSH_VAPID_PRIVATE_KEY=build-only \
       WEBPUSH_VAPID_SUBJECT=mailto:build-only@invalid \
       MSSWEB_VAR_DIR=/tmp/mssweb-build \
       python manage.py collectstatic --noinput \
    && rm -rf /tmp/mssweb-build /tmp/build.sqlite3

# Numeric, so that orchestrators enforcing "run as non-root" can check it (10001 is mssweb).
USER 10001:10001

EXPOSE 8000

# Readiness of the web process (database and broker reachable). Django checks the Host header, so
# the probe sends the first entry of DJANGO_ALLOWED_HOSTS ("example.org" for ".example.org",
# 127.0.0.1 when the list is empty or "*"): no need to add 127.0.0.1 to the allowed hosts.
# /healthz is exempt from the HTTPS redirect. Worker, beat and migrate containers do not serve
# HTTP: compose.yaml replaces or disables this check for them.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; \
hosts = [h.strip().lstrip('.') for h in os.environ.get('DJANGO_ALLOWED_HOSTS', '').split(',')]; \
host = next((h for h in hosts if h and h != '*'), '127.0.0.1'); \
r.urlopen(r.Request('http://127.0.0.1:8000/healthz', headers={'Host': host}), timeout=4)"]

# gunicorn trusts X-Forwarded-Proto from any address (--forwarded-allow-ips='*'), and so does
# Django with DJANGO_BEHIND_PROXY=true: publish port 8000 to the TLS reverse proxy only.
# `exec` makes gunicorn PID 1, so `docker stop` (SIGTERM) reaches it and it shuts down gracefully.
CMD ["sh", "-c", "exec gunicorn mssweb.wsgi:application --bind 0.0.0.0:8000 --workers \"${WEB_CONCURRENCY:-3}\" --worker-tmp-dir /dev/shm --forwarded-allow-ips='*'"]
