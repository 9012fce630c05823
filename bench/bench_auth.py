"""Login and audit figures for the foundation.

    .venv/bin/python bench/bench_auth.py [--logins 200] [--events 5000]

Measures, in-process (Django test client, no network), on the database DATABASE_URL selects
(SQLite by default):
* Argon2 password verification time with the production parameters (the floor of a login);
* full two-step logins per second (password → TOTP code → home page), one client at a time;
* the home page of a logged-in user per second (session checks, 2FA gate, a few queries);
* audit ``record()`` appends per second, one writer.
Prints one JSON object; ratios to ../shared/CEILINGS.md are computed by hand in BENCHMARKS.md.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mssweb.settings_test")
os.environ["MSSWEB_VAR_DIR"] = os.environ.get("MSSWEB_VAR_DIR", "var/bench")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.hashers import Argon2PasswordHasher  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--logins", type=int, default=200)
    parser.add_argument("--events", type=int, default=5000)
    args = parser.parse_args()

    # Production hashing: Argon2 first (the test settings put a fast hasher first).
    settings.PASSWORD_HASHERS = [h for h in settings.PASSWORD_HASHERS if "MD5" not in h]
    settings.THROTTLE_MAX_PER_ADDRESS = 10**9
    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0)
    try:
        print(json.dumps(run(args), indent=2))
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


def run(args) -> dict:
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from apps.audit.events import Event
    from apps.audit.services import record
    from tests.conftest import PASSWORD, make_user, totp_code

    hasher = Argon2PasswordHasher()
    encoded = hasher.encode(PASSWORD, hasher.salt())
    verify = []
    for _ in range(20):
        start = time.perf_counter()
        hasher.verify(PASSWORD, encoded)
        verify.append(time.perf_counter() - start)

    users = [make_user() for _ in range(args.logins)]
    login_times = []
    for user in users:
        client = Client()
        start = time.perf_counter()
        client.post("/compte/connexion/", {"email": user.email, "password": PASSWORD})
        device = TOTPDevice.objects.get(user=user, confirmed=True)
        response = client.post("/compte/connexion/code/", {"code": totp_code(device)})
        assert response.status_code == 302, response
        assert response["Location"] == "/", response
        assert client.get("/").status_code == 200
        login_times.append(time.perf_counter() - start)

    home_times = []
    for _ in range(500):
        start = time.perf_counter()
        assert client.get("/").status_code == 200
        home_times.append(time.perf_counter() - start)

    actor = users[0]
    start = time.perf_counter()
    for n in range(args.events):
        record(event=Event.ACCOUNT_UPDATED, actor=actor, target=("bench.row", n), extra={"n": n})
    audit_elapsed = time.perf_counter() - start

    def ms(values, q):
        return round(statistics.quantiles(values, n=100)[q - 1] * 1000, 2)

    return {
        "database": connection.vendor,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "argon2_verify_ms_p50": ms(verify, 50),
        "login_two_steps_per_s": round(len(login_times) / sum(login_times), 1),
        "login_two_steps_ms_p50": ms(login_times, 50),
        "login_two_steps_ms_p95": ms(login_times, 95),
        "home_page_per_s": round(len(home_times) / sum(home_times), 1),
        "home_page_ms_p50": ms(home_times, 50),
        "home_page_ms_p95": ms(home_times, 95),
        "audit_record_per_s": round(args.events / audit_elapsed, 1),
        "audit_record_ms_mean": round(audit_elapsed / args.events * 1000, 3),
    }


if __name__ == "__main__":
    main()
