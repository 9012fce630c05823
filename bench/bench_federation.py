"""Federation throughput on PostgreSQL: inbound gateway, ingestion, outbound delivery, a drained
queue. Each part compares with a ceiling measured in the same run.

    .venv/bin/python bench/bench_federation.py [--quick] [--only gateway,ingest,outbound,drain]
        [--messages 3000] [--senders 10] [--sender-procs 2] [--ingest 500] [--xdm 200]
        [--outbound 2000] [--drain 10000] [--drain-workers 2] [--gateway-processes 1]

Defaults take about 4–5 minutes on 2 vCPUs (the 10,000-row drain is most of it); ``--quick``
(600 / 100 / 50 / 300 / 1000) about 1.5 minutes.
Database ``mssweb_bench_fed`` (BENCH_FED_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/mssweb_bench_fed), dropped and recreated; Redis database 11
(BENCH_FED_REDIS_URL) is the Celery broker and is flushed; files in ``var/bench-federation``.
Needs Postfix's ``smtp-sink`` and ``smtp-source`` (the Postfix daemon is not started).

1. ``gateway``: messages of ~54 KB (text + HTML + 30 KB PDF, unique Message-ID each), 10
   concurrent senders (``--sender-procs`` processes of threads, smtplib, one connection each,
   reused for every message; MAIL, RCPT and DATA sent together where the server offers
   PIPELINING, as MTAs do, unless ``--no-pipelining``): (a) ``smtp-source -d`` → ``smtp-sink``
   plaintext, the machine's ceiling, before and after; (b) our senders → ``smtp-sink``
   plaintext (what the senders can do); (c) our senders → ``manage.py smtp_gateway`` (a
   subprocess, real settings, PostgreSQL, Celery on Redis: ingestion is only enqueued) with
   STARTTLS (TLS 1.3, test PKI); (d) the same in plaintext. ``250`` means the encrypted raw and
   its row are committed; the rows are counted afterwards against the 250s. Case (c) also
   reports the CPU time per message of the gateway processes, of PostgreSQL's and of the whole
   machine (``/proc``).
2. ``ingest``: the first ``--ingest`` rows the gateway accepted, then ``--xdm`` copies of
   ``tests/ingestion/fixtures/xdm-report.eml`` (unique Message-IDs, accepted in-process), run
   through ``gateway.ingest`` sequentially in this process; ceiling: the bare stdlib MIME parse
   + walk + decode of the same bytes (bench_mime.py's baseline).
3. ``outbound``: ``--outbound`` outbox rows (distinct raws) delivered by the ``delivery.deliver``
   task body in this process (claim, SMTP, status and audit rows), batches of 100 as
   ``_enqueue`` makes them: to an aiosmtpd sink (another process) with STARTTLS, the test CA,
   our client certificate and the trust-list DN check; and to ``smtp-sink`` as a plaintext relay
   (``DELIVERY_RELAY_HOST``). Ceiling: ``smtp-source`` → ``smtp-sink``, one session.
4. ``drain``: ``--drain`` outbox rows enqueued as the app does (tasks of 100 ids on Redis),
   drained by ``--drain-workers`` Celery worker processes (``--pool solo``) to the TLS sink; the
   sink counts Message-IDs: losses and duplicates are reported. Every 60 s the loop runs
   ``deliveries_sweep`` as beat would (tasks lost by the broker are enqueued again).

Prints one JSON document.
"""

import argparse
import base64
import contextlib
import hashlib
import json
import multiprocessing
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "bench"))

BENCH_URL = os.environ.get(
    "BENCH_FED_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mssweb_bench_fed"
)
REDIS_URL = os.environ.get("BENCH_FED_REDIS_URL", "redis://127.0.0.1:6379/11")
VAR_DIR = ROOT / "var" / "bench-federation"
PYTHON = sys.executable

LOCAL_DOMAIN = "gateway.mssante.test"
PEER_DOMAIN = "peer.mssante.test"
OUR_DN = "CN=mx.mssweb.test,OU=99999999900001,O=mssweb test operator,ST=Paris (75),C=FR"
PEER_DN = "CN=mx.peer.test,OU=99999999900002,O=Peer test operator,ST=Gironde (33),C=FR"
MAILBOXES = 10
SWEEP_EVERY = 60.0  # seconds, as CELERY_BEAT_SCHEDULE["delivery-sweep"]
_MSGID = re.compile(rb"^Message-ID:\s*<([^>\r\n]+)>", re.IGNORECASE | re.MULTILINE)


def environment() -> dict[str, str]:
    """What this process, the gateway and the workers share: the real settings (not the test
    settings, whose Celery runs tasks inline), the bench database, broker and storage."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mssweb.settings",
        "MSSWEB_TESTING": "true",  # local defaults, not DEBUG
        # A configured master key, as in production (the development key's file is looked at
        # for every object stored). Throwaway benchmark data only.
        "MSSWEB_STORAGE_KEYS": "bench:"
        + base64.b64encode(hashlib.sha256(b"mssweb benchmark data").digest()).decode(),
        "MSSWEB_HTTPS": "false",
        "DATABASE_URL": BENCH_URL,
        "REDIS_URL": REDIS_URL,
        "MSSWEB_VAR_DIR": str(VAR_DIR),
        "PYTHONUNBUFFERED": "1",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


# --- Messages -----------------------------------------------------------------------------------


def templates(count: int, seed: int) -> list[bytes]:
    """~54 KB messages (bench_mime's shape) whose Message-ID is ``<@@ID@@>``."""
    from bench_mime import make_message

    rng = random.Random(seed)
    out = []
    for n in range(count):
        raw = make_message(n, rng)
        out.append(raw.replace(f"<bench-{n}@medecin.mssante.fr>".encode(), b"<@@ID@@>"))
    return out


def with_id(template: bytes, message_id: str) -> bytes:
    return template.replace(b"@@ID@@", message_id.encode(), 1)


# --- Senders ------------------------------------------------------------------------------------


def _pipelined(client, sender: str, rcpt: str, raw: bytes) -> bool:
    """One message as MTAs send it to a server that offers PIPELINING (RFC 2920; Postfix does
    by default): MAIL, RCPT and DATA in one write, their three replies read, then the data."""
    import smtplib  # noqa: TID251 - a peer's client, not the app's

    client.send(f"MAIL FROM:<{sender}> SIZE={len(raw)}\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n".encode())
    codes = [client.getreply()[0] for _ in range(3)]
    if codes != [250, 250, 354]:
        if codes[2] == 354:  # the data was asked for all the same: end it empty, then forget it
            client.send(b".\r\n")
            client.getreply()
        client.rset()
        return False
    data = smtplib._quote_periods(raw)
    client.send(data + (b"" if data.endswith(b"\r\n") else b"\r\n") + b".\r\n")
    return client.getreply()[0] == 250


def _sender_process(
    port, tls, cafile, threads, per_thread, tag, barrier, queue, pipelining
) -> None:
    import smtplib  # noqa: TID251 - a peer's client, not the app's
    import ssl

    pool = templates(8, seed=hash(tag) & 0xFFFF)
    context = None
    if tls:
        context = ssl.create_default_context(cafile=cafile)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    results = []

    def run(t: int) -> None:
        ok = failed = 0
        version = ""
        try:
            client = smtplib.SMTP("127.0.0.1", port, local_hostname="mx.peer.test", timeout=120)
            client.ehlo()
            if tls:
                client.starttls(context=context)
                version = client.sock.version()
                client.ehlo()
            pipelined = pipelining and client.has_extn("pipelining")
            for i in range(per_thread):
                raw = with_id(pool[i % len(pool)], f"{tag}.{t}.{i}@{PEER_DOMAIN}")
                sender, rcpt = f"dr.durand@{PEER_DOMAIN}", f"bal{i % MAILBOXES}@{LOCAL_DOMAIN}"
                if pipelined:
                    ok, failed = (
                        (ok + 1, failed)
                        if _pipelined(client, sender, rcpt, raw)
                        else (ok, failed + 1)
                    )
                    continue
                try:
                    refused = client.sendmail(sender, [rcpt], raw)
                    ok += 0 if refused else 1
                except smtplib.SMTPResponseException:
                    failed += 1
            client.quit()
        except (OSError, smtplib.SMTPException) as exc:
            results.append((ok, failed + per_thread - ok, type(exc).__name__, version))
            return
        results.append((ok, failed, "", version))

    barrier.wait()
    start = time.time()
    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    queue.put((start, time.time(), results))


def send(
    *, port: int, tls: bool, cafile: str, total: int, senders: int, procs: int, tag: str,
    pipelining: bool = True,
):  # fmt: skip
    """``total`` messages over ``senders`` connections spread over ``procs`` processes, with
    PIPELINING when the server offers it (and ``pipelining``)."""
    context = multiprocessing.get_context("fork")
    barrier, queue = context.Barrier(procs), context.Queue()
    per_thread = total // senders
    shares = [senders // procs + (1 if p < senders % procs else 0) for p in range(procs)]
    children = [
        context.Process(
            target=_sender_process,
            args=(port, tls, cafile, share, per_thread, f"{tag}{p}", barrier, queue, pipelining),
        )
        for p, share in enumerate(shares)
    ]
    for child in children:
        child.start()
    reports = [queue.get() for _ in children]
    for child in children:
        child.join()
    start = min(r[0] for r in reports)
    end = max(r[1] for r in reports)
    rows = [row for r in reports for row in r[2]]
    ok = sum(r[0] for r in rows)
    return {
        "sent_ok": ok,
        "refused": sum(r[1] for r in rows),
        "errors": sorted({r[2] for r in rows if r[2]}),
        "tls": sorted({r[3] for r in rows if r[3]}),
        "seconds": round(end - start, 2),
        "msg_per_s": round(ok / (end - start), 1),
    }


# --- Postfix tools ------------------------------------------------------------------------------


def smtp_sink(port: int) -> subprocess.Popen:
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    sink = subprocess.Popen(
        ["smtp-sink", *user, f"127.0.0.1:{port}", "256"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port)
    return sink


def smtp_source(*, port: int, total: int, sessions: int, size: int = 51_200) -> dict:
    start = time.perf_counter()
    subprocess.run(
        ["smtp-source", "-d", "-s", str(sessions), "-l", str(size), "-m", str(total),
         "-f", f"a@{PEER_DOMAIN}", "-t", f"bal0@{LOCAL_DOMAIN}", f"127.0.0.1:{port}"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    return {"messages": total, "seconds": round(seconds, 2), "msg_per_s": round(total / seconds, 1)}


def stop(process: subprocess.Popen, *, sig=signal.SIGTERM, timeout: float = 60) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- The aiosmtpd TLS sink (a separate process: ``bench_federation.py _sink``) -----------------


def sink_main(argv: list[str]) -> None:
    import asyncio
    import ssl

    from aiosmtpd.controller import Controller

    port, cert, key, out = int(argv[0]), argv[1], argv[2], argv[3]
    ids: Counter = Counter()

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            match = _MSGID.search(envelope.original_content, 0, 16_384)
            ids[match.group(1).decode() if match else ""] += len(envelope.rcpt_tos)
            await asyncio.sleep(0)
            return "250 2.0.0 OK"

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    controller = Controller(
        Handler(), hostname="127.0.0.1", port=port, server_hostname="mx.peer.test",
        tls_context=context, require_starttls=True, data_size_limit=50_000_000,
    )  # fmt: skip
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    controller.start()
    print("ready", flush=True)
    done.wait()
    controller.stop(no_assert=True)
    Path(out).write_text(json.dumps(ids))


class TlsSink:
    def __init__(self, pki: dict) -> None:
        self.port = free_port()
        self.out = VAR_DIR / f"sink-{self.port}.json"
        self.process = subprocess.Popen(
            [PYTHON, __file__, "_sink", str(self.port), pki["peer_cert"], pki["peer_key"],
             str(self.out)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.process.stdout.readline().strip() == "ready"

    def close(self) -> Counter:
        stop(self.process)
        return Counter(json.loads(self.out.read_text()))


# --- Django side --------------------------------------------------------------------------------


def setup(*, fresh: bool) -> dict:
    from _pg import recreate_database

    if fresh:
        recreate_database(BENCH_URL)
        shutil.rmtree(VAR_DIR, ignore_errors=True)
        subprocess.run(["redis-cli", "-u", REDIS_URL, "flushdb"], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    os.environ.update(environment())
    import django

    django.setup()
    import logging

    # Production logging (JSON, INFO), into a file rather than the console.
    log = open(VAR_DIR / "bench.log", "a")  # noqa: SIM115 - for the whole run
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(log)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return make_world()


def make_world() -> dict:
    from apps.accounts.models import Domain
    from apps.core.pki import issue, make_ca
    from apps.mailbox.models import Mailbox, MailboxKind
    from apps.trustlist.dn import dn_canonical
    from apps.trustlist.models import TrustedEntry, TrustList

    pki_dir = VAR_DIR / "pki"
    ca = make_ca("bench CA")
    (pki_dir).mkdir(parents=True, exist_ok=True)
    (pki_dir / "ca.pem").write_bytes(ca.cert_pem)
    hosts = ["localhost", "127.0.0.1"]
    ours = issue(ca, dn=OUR_DN, hostnames=hosts).write(pki_dir, "ours")
    peer = issue(ca, dn=PEER_DN, hostnames=hosts).write(pki_dir, "peer")
    domain = Domain.objects.get_or_create(name=LOCAL_DOMAIN)[0]
    for n in range(MAILBOXES):
        Mailbox.objects.get_or_create(
            address=f"bal{n}@{LOCAL_DOMAIN}",
            defaults={"kind": MailboxKind.ORGANISATIONAL, "domain": domain,
                      "display_name": f"Bal {n}", "quota_bytes": 50 * 2**30},
        )  # fmt: skip
    trust_list = TrustList.objects.create(status=TrustList.Status.ACTIVE, entry_count=1)
    TrustedEntry.objects.create(
        trust_list=trust_list, domain=PEER_DOMAIN, dn=PEER_DN, dn_canonical=dn_canonical(PEER_DN)
    )
    return {
        "ca": str(pki_dir / "ca.pem"),
        "our_cert": str(ours[0]), "our_key": str(ours[1]),
        "peer_cert": str(peer[0]), "peer_key": str(peer[1]),
    }  # fmt: skip


def delivery_settings(pki: dict) -> dict[str, str]:
    return {
        "DELIVERY_CA_BUNDLE": pki["ca"],
        "DELIVERY_CLIENT_CERT": pki["our_cert"],
        "DELIVERY_CLIENT_KEY": pki["our_key"],
        "DELIVERY_EHLO_NAME": "mx.mssweb.test",
        "DELIVERY_SMTP_TIMEOUT": "60",
    }


def apply_settings(values: dict) -> None:
    from django.conf import settings

    for name, value in values.items():
        setattr(settings, name, value)


# --- 1. Gateway ---------------------------------------------------------------------------------


def start_gateway(
    pki: dict, *, profile: str = "", processes: int = 1
) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = environment() | {
        "GATEWAY_TLS_CERT": pki["our_cert"],
        "GATEWAY_TLS_KEY": pki["our_key"],
        "GATEWAY_REQUIRE_TLS": "false",  # (c) with STARTTLS and (d) without, same server
        "GATEWAY_HOSTNAME": "mx.mssweb.test",
    }
    command = [PYTHON, str(ROOT / "manage.py"), "smtp_gateway", "--port", str(port),
               "--processes", str(processes)]  # fmt: skip
    if profile:
        command = [PYTHON, __file__, "_gateway_profiled", profile, str(port)]
    log = open(VAR_DIR / "gateway.log", "a")  # noqa: SIM115 - the child's stderr
    gateway = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=log,
                               text=True)  # fmt: skip
    line = gateway.stdout.readline()
    if "smtp_gateway" not in line:
        raise RuntimeError(f"gateway did not start: {line!r}")
    wait_port(port)
    return gateway, port


def gateway_profiled_main(argv: list[str]) -> None:
    """The gateway with every thread under cProfile (stats merged into ``argv[0]``)."""
    import cProfile
    import pstats

    os.chdir(ROOT)
    import django

    django.setup()
    from apps.gateway.server import GatewayOptions, GatewayServer

    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()

    def start_profiler(*_args):
        sys.setprofile(None)  # this thread only; threads started later get start_profiler too
        profile = cProfile.Profile()
        with lock:
            profiles.append(profile)
        profile.enable()

    main = cProfile.Profile()
    profiles.append(main)
    threading.setprofile(start_profiler)
    main.enable()
    server = GatewayServer(GatewayOptions.from_settings(), host="127.0.0.1", port=int(argv[1]))
    server.start()
    print(f"smtp_gateway: SMTP on 127.0.0.1:{server.port}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    main.disable()
    done.wait()
    server.stop(grace=10)
    for profile in profiles:
        profile.disable()
    stats = pstats.Stats(profiles[0])
    for profile in profiles[1:]:
        with contextlib.suppress(TypeError):
            stats.add(profile)
    stats.dump_stats(argv[0])


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes so far (Linux /proc), 0 for those gone."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def _cpu_snapshot(gateway_pid: int) -> dict[str, float]:
    """CPU used so far by the gateway (with its --processes children), by PostgreSQL's
    processes and by the whole machine (busy time of /proc/stat)."""
    children = Path(f"/proc/{gateway_pid}/task/{gateway_pid}/children")
    pids = [gateway_pid, *map(int, children.read_text().split())] if children.exists() else []
    postgres = [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and _comm(entry) == "postgres"
    ]
    busy = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    machine = (sum(busy) - busy[3] - busy[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait
    # The sender processes are joined by send(): their CPU is in this process's children's.
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "gateway": _cpu_seconds(pids),
        "postgres": _cpu_seconds(postgres),
        "senders": children.ru_utime + children.ru_stime,
        "machine": machine,
    }


def _comm(entry: Path) -> str:
    try:
        return (entry / "comm").read_text().strip()
    except OSError:
        return ""


def _cpu_per_message(before: dict, after: dict, messages: int) -> dict[str, float]:
    return {
        f"{name}_ms": round((after[name] - before[name]) * 1000 / messages, 2) for name in before
    }


def bench_gateway(args, pki: dict, figures: dict) -> None:
    from apps.gateway.models import InboundMessage

    common = {"total": args.messages, "senders": args.senders, "procs": args.sender_procs,
              "cafile": pki["ca"], "pipelining": not args.no_pipelining}  # fmt: skip
    out: dict = {"messages_per_case": args.messages, "senders": args.senders,
                 "pipelining": not args.no_pipelining,
                 "sender_processes": args.sender_procs,
                 "gateway_processes": args.gateway_processes}  # fmt: skip
    sink_port = free_port()
    sink = smtp_sink(sink_port)
    try:
        out["a_smtp_source_to_smtp_sink"] = smtp_source(
            port=sink_port, total=args.messages * 2, sessions=args.senders
        )
        out["b_ours_to_smtp_sink_plain"] = send(port=sink_port, tls=False, tag="b", **common)
        from django.db import connections

        connections.close_all()  # no connection across fork
        gateway, port = start_gateway(
            pki, profile=args.profile_gateway, processes=args.gateway_processes
        )
        try:
            before = InboundMessage.objects.count()
            connections.close_all()
            cpu = _cpu_snapshot(gateway.pid)
            out["c_ours_to_gateway_tls"] = send(port=port, tls=True, tag="c", **common)
            out["c_ours_to_gateway_tls"]["cpu_per_message"] = _cpu_per_message(
                cpu, _cpu_snapshot(gateway.pid), args.messages
            )
            middle = InboundMessage.objects.count()
            out["c_ours_to_gateway_tls"]["rows_committed"] = middle - before
            connections.close_all()
            if not args.no_plain:
                out["d_ours_to_gateway_plain"] = send(port=port, tls=False, tag="d", **common)
                out["d_ours_to_gateway_plain"]["rows_committed"] = (
                    InboundMessage.objects.count() - middle
                )
        finally:
            stop(gateway)
        out["a_again"] = smtp_source(port=sink_port, total=args.messages * 2, sessions=args.senders)
    finally:
        stop(sink)
    ceiling = (out["a_smtp_source_to_smtp_sink"]["msg_per_s"] + out["a_again"]["msg_per_s"]) / 2
    out["ceiling_msg_per_s"] = round(ceiling, 1)
    out["ratio_c_to_a"] = round(out["c_ours_to_gateway_tls"]["msg_per_s"] / ceiling, 3)
    out["ratio_c_to_b"] = round(
        out["c_ours_to_gateway_tls"]["msg_per_s"] / out["b_ours_to_smtp_sink_plain"]["msg_per_s"],
        3,
    )
    figures["gateway"] = out


# --- 2. Ingestion -------------------------------------------------------------------------------


def _ingest_rows(pks: list[int]) -> dict:
    from apps.gateway.services import inbound_ingest

    statuses: Counter = Counter()
    start = time.perf_counter()
    for pk in pks:
        statuses[inbound_ingest(inbound_id=pk)] += 1
    seconds = time.perf_counter() - start
    return {"messages": len(pks), "seconds": round(seconds, 2),
            "msg_per_s": round(len(pks) / seconds, 1), "statuses": dict(statuses)}  # fmt: skip


def _parse_ceiling(raws: list[bytes]) -> float:
    from bench_mime import baseline

    start = time.perf_counter()
    for raw in raws:
        baseline(raw)
    return round(len(raws) / (time.perf_counter() - start), 1)


def bench_ingest(args, figures: dict) -> None:
    from apps.attachments.services import blob_bytes
    from apps.gateway.models import DeliveryOutcome, InboundDelivery, InboundMessage
    from apps.gateway.services import InboundEnvelope, inbound_accept
    from apps.mailbox.models import HealthDocument

    out: dict = {}
    rows = list(
        InboundMessage.objects.filter(status="accepted", tls_version__gt="")
        .order_by("pk")
        .select_related("raw")[: args.ingest]
    )
    if len(rows) < args.ingest:  # without the gateway part: accept in-process
        rows += _accept_copies(templates(8, seed=7), args.ingest - len(rows), tag="m")
    raws = [blob_bytes(row.raw) for row in rows]
    out["mail_50kb"] = _ingest_rows([row.pk for row in rows])
    out["mail_50kb"]["median_bytes"] = sorted(map(len, raws))[len(raws) // 2]
    out["mail_50kb"]["parse_ceiling_msg_per_s"] = _parse_ceiling(raws)

    xdm = (ROOT / "tests/ingestion/fixtures/xdm-report.eml").read_bytes()
    template = re.sub(rb"(?im)^Message-ID:[^\r\n]*", b"Message-ID: <@@ID@@>", xdm, count=1)
    assert b"@@ID@@" in template
    xdm_rows = _accept_copies([template], args.xdm, tag="x")
    out["xdm_report"] = _ingest_rows([row.pk for row in xdm_rows])
    out["xdm_report"]["bytes"] = len(xdm)
    out["xdm_report"]["documents_made"] = HealthDocument.objects.filter(
        message__in=InboundDelivery.objects.filter(
            inbound__in=xdm_rows, outcome=DeliveryOutcome.FILED
        ).values("message")
    ).count()
    out["xdm_report"]["parse_ceiling_msg_per_s"] = _parse_ceiling([xdm] * min(args.xdm, 100))
    for part in ("mail_50kb", "xdm_report"):
        out[part]["ratio_to_parse_ceiling"] = round(
            out[part]["msg_per_s"] / out[part]["parse_ceiling_msg_per_s"], 3
        )
    _ = InboundEnvelope, inbound_accept
    figures["ingest"] = out


def _accept_copies(pool: list[bytes], count: int, *, tag: str) -> list:
    from apps.gateway.services import InboundEnvelope, inbound_accept

    rows = []
    for i in range(count):
        raw = with_id(pool[i % len(pool)], f"{tag}.{i}.{time.time_ns()}@{PEER_DOMAIN}")
        envelope = InboundEnvelope(
            mail_from=f"dr.durand@{PEER_DOMAIN}", rcpt_tos=(f"bal{i % MAILBOXES}@{LOCAL_DOMAIN}",),
            peer_ip="127.0.0.1", helo="mx.peer.test", tls_version="TLSv1.3",
            tls_cipher="TLS_AES_256_GCM_SHA384",
        )  # fmt: skip
        rows.append(inbound_accept(raw=raw, envelope=envelope))
    return rows


# --- 3 and 4. Outbound --------------------------------------------------------------------------


def make_outbox(count: int, *, tag: str) -> tuple[list[int], set[str]]:
    """``count`` pending outbox rows, each with its own encrypted raw (unique Message-ID), as the
    compose view leaves them (minus the sender's copy)."""
    import io
    from datetime import timedelta

    from django.utils import timezone

    from apps.attachments.services import blob_store
    from apps.delivery.models import OutboundDelivery
    from apps.mailbox.models import Mailbox

    sender = Mailbox.objects.get(address=f"bal0@{LOCAL_DOMAIN}")
    pool = templates(8, seed=11)
    now = timezone.now()
    rows, msgids = [], set()
    for i in range(count):
        msgid = f"out.{tag}.{i}@{LOCAL_DOMAIN}"
        msgids.add(msgid)
        rows.append(
            OutboundDelivery(
                mailbox=sender,
                msgid=msgid,
                raw=blob_store(source=io.BytesIO(with_id(pool[i % len(pool)], msgid))),
                envelope_from=sender.address,
                recipient=f"dr.{i % 50}@{PEER_DOMAIN}",
                domain=PEER_DOMAIN,
                route="operator",
                next_attempt_at=now,
                created_at=now,
                expires_at=now + timedelta(days=5),
            )
        )
        if len(rows) >= 500:
            OutboundDelivery.objects.bulk_create(rows)
            rows = []
    OutboundDelivery.objects.bulk_create(rows)
    pks = list(
        OutboundDelivery.objects.filter(msgid__startswith=f"out.{tag}.")
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    return pks, msgids


def _deliver_in_process(pks: list[int]) -> dict:
    from django.conf import settings

    from apps.delivery.models import OutboundDelivery
    from apps.delivery.tasks import deliver

    size = settings.DELIVERY_BATCH_SIZE
    start = time.perf_counter()
    for first in range(0, len(pks), size):
        deliver(pks[first : first + size])  # the task body, in this process
    seconds = time.perf_counter() - start
    statuses = Counter(OutboundDelivery.objects.filter(pk__in=pks).values_list("status", flat=True))
    return {"messages": len(pks), "seconds": round(seconds, 2),
            "msg_per_s": round(len(pks) / seconds, 1), "statuses": dict(statuses)}  # fmt: skip


def bench_outbound(args, pki: dict, figures: dict) -> None:
    out: dict = {}
    apply_settings(delivery_settings(pki) | {"DELIVERY_SMTP_TIMEOUT": 60.0})
    sink = TlsSink(pki)
    try:
        apply_settings({"DELIVERY_ROUTES": f"{PEER_DOMAIN}=127.0.0.1:{sink.port}",
                        "DELIVERY_RELAY_HOST": ""})  # fmt: skip
        pks, msgids = make_outbox(args.outbound, tag="tls")
        out["tls_to_aiosmtpd_sink"] = _deliver_in_process(pks)
    finally:
        seen = sink.close()
    out["tls_to_aiosmtpd_sink"]["sink_missing"] = len(msgids - set(seen))
    sink_port = free_port()
    plain = smtp_sink(sink_port)
    try:
        apply_settings({"DELIVERY_ROUTES": "", "DELIVERY_RELAY_HOST": f"127.0.0.1:{sink_port}",
                        "DELIVERY_RELAY_REQUIRE_TLS": False})  # fmt: skip
        pks, _msgids = make_outbox(args.outbound, tag="relay")
        out["plain_relay_to_smtp_sink"] = _deliver_in_process(pks)
        out["ceiling_smtp_source_1_session"] = smtp_source(
            port=sink_port, total=args.outbound * 2, sessions=1
        )
    finally:
        stop(plain)
    ceiling = out["ceiling_smtp_source_1_session"]["msg_per_s"]
    for part in ("tls_to_aiosmtpd_sink", "plain_relay_to_smtp_sink"):
        out[part]["ratio_to_ceiling"] = round(out[part]["msg_per_s"] / ceiling, 3)
    apply_settings({"DELIVERY_RELAY_HOST": "", "DELIVERY_RELAY_REQUIRE_TLS": True})
    figures["outbound"] = out


def bench_drain(args, pki: dict, figures: dict) -> None:
    from django.db import connections

    from apps.delivery.models import OutboundDelivery
    from apps.delivery.services import _enqueue, deliveries_sweep

    # The ingestion tasks the gateway part enqueued would be taken first by the workers.
    subprocess.run(["redis-cli", "-u", REDIS_URL, "flushdb"], stdout=subprocess.DEVNULL)
    sink = TlsSink(pki)
    env = (
        environment()
        | delivery_settings(pki)
        | {"DELIVERY_ROUTES": f"{PEER_DOMAIN}=127.0.0.1:{sink.port}"}
    )
    start_build = time.perf_counter()
    pks, msgids = make_outbox(args.drain, tag="drain")
    build = time.perf_counter() - start_build
    workers = []
    log = VAR_DIR / "workers.log"
    for n in range(args.drain_workers):
        workers.append(subprocess.Popen(
            [PYTHON, "-m", "celery", "-A", "mssweb", "worker", "--pool", "solo",
             "-n", f"benchfed{n}@%h", "--without-gossip", "--without-mingle",
             "--without-heartbeat", "--loglevel", "INFO"],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(log, "a"),  # noqa: SIM115
        ))  # fmt: skip
    deadline = time.monotonic() + 60
    while log.read_text().count(" ready.") < args.drain_workers and time.monotonic() < deadline:
        time.sleep(0.2)
    open_statuses = ("pending", "deferred")
    try:
        start = time.perf_counter()
        _enqueue(pks)  # tasks of DELIVERY_BATCH_SIZE ids on Redis, as on commit of a send
        swept = []
        next_sweep = start + SWEEP_EVERY
        while OutboundDelivery.objects.filter(pk__in=pks, status__in=open_statuses).exists():
            time.sleep(0.2)
            if time.perf_counter() >= next_sweep:  # what beat's delivery.sweep does each minute
                swept.append(deliveries_sweep())
                next_sweep += SWEEP_EVERY
            connections.close_all()
        seconds = time.perf_counter() - start
    finally:
        for worker in workers:
            stop(worker)
        seen = sink.close()
    statuses = Counter(OutboundDelivery.objects.filter(pk__in=pks).values_list("status", flat=True))
    received = {k: v for k, v in seen.items() if k in msgids}
    figures["drain"] = {
        "messages": len(pks), "workers": args.drain_workers, "seconds": round(seconds, 1),
        "msg_per_s": round(len(pks) / seconds, 1), "statuses": dict(statuses),
        "sink_distinct": len(received), "sink_total": sum(received.values()),
        "lost": len(msgids - set(received)),
        "duplicates": sum(v - 1 for v in received.values() if v > 1),
        "outbox_build_seconds": round(build, 1),
        "sweeps_enqueued": swept,
    }  # fmt: skip


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="gateway,ingest,outbound,drain")
    parser.add_argument("--messages", type=int, default=3000, help="per gateway case")
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--sender-procs", type=int, default=2)
    parser.add_argument("--ingest", type=int, default=500)
    parser.add_argument("--xdm", type=int, default=200)
    parser.add_argument("--outbound", type=int, default=2000)
    parser.add_argument("--drain", type=int, default=10_000)
    parser.add_argument("--drain-workers", type=int, default=2)
    parser.add_argument("--no-plain", action="store_true", help="skip case (d)")
    parser.add_argument(
        "--no-pipelining",
        action="store_true",
        help="our senders wait for every reply (smtplib's sendmail), even with PIPELINING offered",
    )
    parser.add_argument("--profile-gateway", default="", help="cProfile stats file (all threads)")
    parser.add_argument(
        "--gateway-processes", type=int, default=1, help="smtp_gateway --processes (not profiled)"
    )
    args = parser.parse_args()
    if args.quick:
        args.messages, args.ingest, args.xdm = 600, 100, 50
        args.outbound, args.drain = 300, 1000
    parts = args.only.split(",")
    pki = setup(fresh=True)
    figures: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(),
                     "args": vars(args)}  # fmt: skip
    if "gateway" in parts:
        bench_gateway(args, pki, figures)
    if "ingest" in parts:
        bench_ingest(args, figures)
    if "outbound" in parts:
        bench_outbound(args, pki, figures)
    if "drain" in parts:
        bench_drain(args, pki, figures)
    subprocess.run(["redis-cli", "-u", REDIS_URL, "flushdb"], stdout=subprocess.DEVNULL)
    print(json.dumps(figures, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_sink":
        sink_main(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "_gateway_profiled":
        os.environ.update(environment())
        gateway_profiled_main(sys.argv[2:])
    else:
        main()
