"""`make run`: the portal and its background processes in one terminal; Ctrl-C stops them all.

Each process runs in its own process group so that one Ctrl-C (or SIGTERM) reaches every child
and its own children (Celery's pool). The SMTP gateway listens on 127.0.0.1:2525 with STARTTLS
(a self-signed pair made in VAR_DIR/tls on first start, see ``apps.gateway.server``).
"""

import os
import signal
import subprocess
import sys
import time

PY = sys.executable
PROCESSES = {
    "web": [PY, "manage.py", "runserver", "127.0.0.1:8000", "--noreload"],
    "worker": [
        PY,
        "-m",
        "celery",
        "-A",
        "mssweb",
        "worker",
        "--loglevel=INFO",
        "--concurrency=2",
        "--pool=prefork",
    ],
    "beat": [PY, "-m", "celery", "-A", "mssweb", "beat", "--loglevel=INFO"],
    "gateway": [PY, "manage.py", "smtp_gateway", "--host", "127.0.0.1", "--port", "2525"],
}


def main() -> int:
    env = {**os.environ, "DJANGO_DEBUG": os.environ.get("DJANGO_DEBUG", "true")}
    children: dict[str, subprocess.Popen] = {}
    for name, command in PROCESSES.items():
        children[name] = subprocess.Popen(command, env=env, start_new_session=True)  # noqa: S603
    print(
        "\nmssweb: http://127.0.0.1:8000, SMTP gateway 127.0.0.1:2525 "
        "(Ctrl-C stops web, worker, beat and gateway)\n",
        flush=True,
    )

    stopping = False

    def stop(*_args) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                print(f"mssweb: {name} stopped (exit {child.returncode}); stopping the rest.")
                exit_code = child.returncode or 1
                stopping = True
                break
        time.sleep(0.5)
    for child in children.values():
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
