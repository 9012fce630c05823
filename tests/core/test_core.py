import json
import logging

import pytest
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

from apps.accounts.nomenclatures import idnat_error
from apps.core.logging import JsonFormatter, RedactFilter, RequestIdFilter


def test_healthz_reports_database_and_broker(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


def test_healthz_fails_when_the_broker_is_unreachable(client, db, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"] != "ok"


def test_pages_carry_a_strict_csp_and_no_inline_script(client, db):
    response = client.get("/compte/connexion/")
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    html = response.content.decode()
    assert "<script>" not in html
    assert ' style="' not in html
    assert "http://" not in html.replace("http://testserver", "")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_login_page_is_french_by_default_and_english_on_request(client, db):
    assert "Mot de passe" in client.get("/compte/connexion/").content.decode()
    english = client.get("/compte/connexion/", HTTP_ACCEPT_LANGUAGE="en")
    assert "Password" in english.content.decode()


def test_production_settings_hash_with_argon2():
    from mssweb import settings as production

    assert production.PASSWORD_HASHERS[0].endswith("Argon2PasswordHasher")
    assert make_password("x" * 12, hasher="argon2").startswith("argon2$argon2id$")


@pytest.mark.parametrize(
    "password",
    ["short pass", "azerty123456", "motdepasse2024", "password1234", "Marseille13013"],
)
def test_weak_passwords_are_refused(password):
    with pytest.raises(ValidationError):
        validate_password(password)


@pytest.mark.parametrize(
    "password",
    ["quatre mots au hasard", "Lilas-orage-pivert-42", "x" * 128, "élan vital du mardi"],
)
def test_passphrases_are_accepted_without_composition_rules(password):
    validate_password(password)


def test_very_long_passwords_are_refused():
    with pytest.raises(ValidationError):
        validate_password("x" * 129)


@pytest.mark.parametrize(
    ("idnat", "ok"),
    [
        ("810001045367", True),  # RPPS, Luhn key right
        ("801234560801", True),
        ("810001045368", False),  # wrong key
        ("0123456789", True),  # ADELI
        ("012345678", False),
        ("912345678901", False),
        ("8100010453６7", False),  # full-width digit
    ],
)
def test_idnat_rules(idnat, ok):
    assert (idnat_error(idnat) is None) is ok


def test_logs_are_json_with_addresses_redacted():
    record = logging.LogRecord(
        "mssweb", logging.INFO, __file__, 1, "sent to %s", ("claire.morel@x.mssante.fr",), None
    )
    record.message_id = 42
    RequestIdFilter().filter(record)
    RedactFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "sent to c***@x.mssante.fr"
    assert line["message_id"] == 42
    assert line["level"] == "INFO"


def _load_production_settings(tmp_path, **env):
    import os
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "MSSWEB_"))}
    clean.pop("DATABASE_URL", None)
    clean.pop("REDIS_URL", None)
    clean.update(DJANGO_DEBUG="false", MSSWEB_VAR_DIR=str(tmp_path), **env)
    return subprocess.run(
        [sys.executable, "-c", "import mssweb.settings"],
        env=clean,
        capture_output=True,
        text=True,
        check=False,
    )


def test_production_refuses_to_start_without_its_secrets(tmp_path):
    result = _load_production_settings(tmp_path)
    assert result.returncode != 0
    for name in (
        "DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "EMAIL_URL", "MSSWEB_SITE_URL",
        "MSSWEB_STORAGE_KEYS", "WEBPUSH_VAPID_PRIVATE_KEY", "AUDIT_ANCHOR_KEY",
    ):  # fmt: skip
        assert name in result.stderr


def test_production_starts_with_every_required_variable(tmp_path):
    result = _load_production_settings(
        tmp_path,
        DJANGO_SECRET_KEY="k" * 50,
        DJANGO_ALLOWED_HOSTS="mssweb.example.org",
        DATABASE_URL="postgres://u:p@db/mssweb",
        REDIS_URL="redis://redis:6379/0",
        EMAIL_URL="smtp+tls://u:p@smtp.example.org:587",
        MSSWEB_SITE_URL="https://mssweb.example.org",
        MSSWEB_STORAGE_KEYS="k1:" + "A" * 43 + "=",
        WEBPUSH_VAPID_PUBLIC_KEY="B" * 87,
        WEBPUSH_VAPID_PRIVATE_KEY="C" * 43,
        WEBPUSH_VAPID_SUBJECT="mailto:exploitation@example.org",
        AUDIT_ANCHOR_KEY="A" * 43 + "=",
    )
    assert result.returncode == 0, result.stderr
