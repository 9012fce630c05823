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

import pytest

from mssweb import devstack

ROOT = Path(__file__).resolve().parents[2]


def gateway_env(tmp_path: Path) -> dict[str, str]:
    """A gateway process on an empty database, its TLS pair made in ``tmp_path``."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mssweb.settings_test",
        "DJANGO_DEBUG": "true",
        "MSSWEB_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}",
    }
    env.pop("GATEWAY_TLS_CERT", None)
    return env


def test_make_run_starts_the_gateway_on_port_2525():
    command = devstack.PROCESSES["gateway"]
    assert command[1:] == ["manage.py", "smtp_gateway", "--host", "127.0.0.1", "--port", "2525"]


def test_gateway_command_serves_starttls_with_a_self_signed_pair_and_stops_on_sigterm(tmp_path):
    env = gateway_env(tmp_path)
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


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(line) for line in out.stdout.split()]


def test_several_processes_share_the_port_and_all_stop_on_sigterm(tmp_path):
    """``--processes 2``: two gateway processes listen on the same port (SO_REUSEPORT), every
    connection is served by one of them, and SIGTERM stops them all cleanly."""
    env = gateway_env(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "manage.py", "smtp_gateway", "--port", "0", "--grace", "2",
         "--processes", "2"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        banner = process.stdout.readline()
        match = re.search(r"SMTP on 127\.0\.0\.1:(\d+) \(2 processes\)", banner)
        assert match, banner
        port = int(match.group(1))
        children = _children(process.pid)
        # The fork context's resource tracker may be one more child; the gateways are two.
        assert len(children) >= 2, children
        # Connections are spread by the kernel; each one gets a whole, working session.
        context = ssl.create_default_context(cafile=str(tmp_path / "tls" / "gateway.crt"))
        context.check_hostname = False
        for _ in range(12):
            client = smtplib.SMTP("127.0.0.1", port, timeout=10)
            client.ehlo("mx.peer.test")
            client.starttls(context=context)
            client.ehlo("mx.peer.test")
            assert client.mail("dr.durand@peer.mssante.test")[0] == 250
            assert client.rcpt("secretariat@gateway.mssante.test")[0] == 451  # no tables
            client.quit()
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "smtp_gateway: stopped" in out
    assert "Traceback" not in err
    assert all(not Path(f"/proc/{pid}").exists() for pid in children), children


def test_processes_must_be_at_least_one():
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="--processes"):
        call_command("smtp_gateway", "--processes", "0")
