"""`manage.py smtp_gateway` as `make run` starts it: a process, a self-signed pair made on first
start, and a clean stop on SIGTERM."""

import os
import re
import signal
import smtplib
import ssl
import subprocess
import sys
from pathlib import Path

from mssweb import devstack

ROOT = Path(__file__).resolve().parents[2]


def test_make_run_starts_the_gateway_on_port_2525():
    command = devstack.PROCESSES["gateway"]
    assert command[1:] == ["manage.py", "smtp_gateway", "--host", "127.0.0.1", "--port", "2525"]


def test_gateway_command_serves_starttls_with_a_self_signed_pair_and_stops_on_sigterm(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mssweb.settings_test",
        "DJANGO_DEBUG": "true",
        "MSSWEB_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}",
    }
    env.pop("GATEWAY_TLS_CERT", None)
    process = subprocess.Popen(
        [sys.executable, "manage.py", "smtp_gateway", "--port", "0", "--grace", "2"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        banner = process.stdout.readline()
        port = int(re.search(r"SMTP on 127\.0\.0\.1:(\d+)", banner).group(1))
        assert (tmp_path / "tls" / "gateway.crt").exists()
        client = smtplib.SMTP("127.0.0.1", port, timeout=10)
        client.ehlo("mx.peer.test")
        assert client.has_extn("starttls")
        context = ssl.create_default_context(cafile=str(tmp_path / "tls" / "gateway.crt"))
        context.check_hostname = False
        client.starttls(context=context)
        client.ehlo("mx.peer.test")
        assert client.mail("dr.durand@peer.mssante.test")[0] == 250
        # The database has no tables: an internal error, answered 451 without details.
        code, text = client.rcpt("secretariat@gateway.mssante.test")
        assert (code, text) == (451, b"4.3.0 Temporary local problem, please try again later")
        client.quit()
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "smtp_gateway: stopped" in out
    assert "Traceback" not in err
