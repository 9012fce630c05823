"""The inbound SMTP (or LMTP) gateway: its rules (the protocol is ``apps.gateway.smtp``).

Peers (other MSSanté operators) hand us mail for our mailboxes. The rules, in order:

- STARTTLS with TLS ≥ 1.2 (``GATEWAY_REQUIRE_TLS`` refuses MAIL before it with ``530 5.7.0``);
  with ``GATEWAY_CLIENT_CA_BUNDLE``, a client certificate must chain to that bundle (else the
  handshake fails) and its subject DN must be one the trust list gives for the sender's domain
  (else ``550 5.7.1``); ``GATEWAY_REQUIRE_CLIENT_CERT`` refuses a peer without one.
- Recipients must be local mailboxes (``550 5.1.1``), at most ``GATEWAY_MAX_RECIPIENTS``
  (``452 4.5.3``); size is checked at ``MAIL SIZE=`` and at the end of data (``552 5.3.4``).
- ``250`` only once the raw message (encrypted) and its envelope are committed; any internal
  error answers ``451 4.3.0`` and nothing is kept. Database work runs in worker threads, never
  on the event loop.
- Self-protection: connections, commands per session, idle and total session time, line
  length (RFC 5321), and SMTP smuggling (bare CR or LF around a dot) refused with ``550 5.5.2``.

``--lmtp`` speaks LMTP (RFC 2033) for a Postfix in front: one reply per recipient after DATA.
"""

import asyncio
import contextlib
import functools
import logging
import re
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parseaddr

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import (
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    connections,
)

from apps.gateway import selectors, services
from apps.gateway.models import InboundMessage
from apps.gateway.smtp import Envelope, Listener, Session
from apps.trustlist.dn import dn_of_certificate

logger = logging.getLogger(__name__)

REPLY_INTERNAL_ERROR = "451 4.3.0 Temporary local problem, please try again later"
REPLY_SMUGGLING = "550 5.5.2 Bare CR or LF around a dot refused (SMTP smuggling)"
REPLY_CERT_REQUIRED = "550 5.7.1 A client certificate is required"
REPLY_CERT_REFUSED = "550 5.7.1 Client certificate not listed for the sender's domain"
REPLY_UNKNOWN_RCPT = "550 5.1.1 No such mailbox here"
REPLY_MAILBOX_FULL = "452 4.2.2 Mailbox full"
REPLY_TOO_MANY_RCPT = "452 4.5.3 Too many recipients"
GROUP_COMMIT_MAX = 100  # messages committed together at most
# Raws up to this size are encrypted (their row prepared) on the event loop, ≈ 80 µs for 50 KB:
# a trip to a worker thread and back cost a message ≈ 2 ms of waiting under load. Larger ones go
# to a thread.
ENCRYPT_ON_LOOP_MAX = 1 << 20
RCPT_CACHE_MAX = 10_000  # addresses remembered per process at most (then forgotten at once)

# A dot between two line endings of which at least one is a bare CR or LF: what another
# server may take for the end of data (SMTP smuggling, CVE-2023-51764/51765/51766). The session
# only ends data on CRLF.CRLF and has removed one leading dot from each CRLF line, so a line that
# was ".<LF>…" now starts with a bare LF: both forms are looked for.
_BARE = rb"(?:(?<!\r)\n|\r(?!\n))"
_SMUGGLING = re.compile(rb"%s\.(?:\r\n|\n|\r)|(?:\A|\r\n)\.?%s" % (_BARE, _BARE))


def smuggling_suspected(data: bytes) -> bool:
    """True when ``data`` (as the session gives it: dots unstuffed) holds an end-of-data-like
    sequence made with a bare CR or LF."""
    crlf = data.count(b"\r\n")
    if data.count(b"\n") == crlf and data.count(b"\r") == crlf:
        return False  # no bare CR or LF at all (nearly every message): the regex is slow
    return _SMUGGLING.search(data) is not None


@dataclass(frozen=True)
class GatewayOptions:
    hostname: str
    lmtp: bool
    max_message_size: int
    tls_context: ssl.SSLContext | None
    require_tls: bool
    require_client_cert: bool
    max_connections: int
    max_recipients: int
    max_commands: int
    idle_timeout: float
    session_timeout: float
    db_threads: int
    rcpt_cache_seconds: float = 0.0
    # Ingestion enqueued once the 250s are sent (a broker), or in the commit (tasks run inline:
    # tests and development, where ingesting is then part of accepting, as before).
    enqueue_after_reply: bool = True

    @classmethod
    def from_settings(cls, *, lmtp: bool = False) -> "GatewayOptions":
        cert, key = settings.GATEWAY_TLS_CERT, settings.GATEWAY_TLS_KEY
        if not cert and settings.DEBUG and not lmtp:
            from apps.core.pki import ensure_self_signed

            cert, key = (str(p) for p in ensure_self_signed(settings.VAR_DIR / "tls"))
        client_ca = settings.GATEWAY_CLIENT_CA_BUNDLE
        require_tls = settings.GATEWAY_REQUIRE_TLS and not lmtp
        require_client_cert = settings.GATEWAY_REQUIRE_CLIENT_CERT and not lmtp
        if (require_tls or client_ca) and not (cert and key):
            raise ImproperlyConfigured(
                "The SMTP gateway needs GATEWAY_TLS_CERT and GATEWAY_TLS_KEY (TLS is required "
                "or a client CA bundle is set)."
            )
        if require_client_cert and not client_ca:
            raise ImproperlyConfigured(
                "GATEWAY_REQUIRE_CLIENT_CERT needs GATEWAY_CLIENT_CA_BUNDLE."
            )
        return cls(
            hostname=settings.GATEWAY_HOSTNAME or socket.getfqdn(),
            lmtp=lmtp,
            max_message_size=settings.GATEWAY_MAX_MESSAGE_SIZE,
            tls_context=tls_context(cert=cert, key=key, client_ca=client_ca) if cert else None,
            require_tls=require_tls,
            require_client_cert=require_client_cert,
            max_connections=settings.GATEWAY_MAX_CONNECTIONS,
            max_recipients=settings.GATEWAY_MAX_RECIPIENTS,
            max_commands=settings.GATEWAY_MAX_COMMANDS,
            idle_timeout=settings.GATEWAY_IDLE_TIMEOUT,
            session_timeout=settings.GATEWAY_SESSION_TIMEOUT,
            db_threads=settings.GATEWAY_DB_THREADS,
            rcpt_cache_seconds=settings.GATEWAY_RCPT_CACHE_SECONDS,
            enqueue_after_reply=not settings.CELERY_TASK_ALWAYS_EAGER,
        )


def tls_context(*, cert: str, key: str, client_ca: str = "") -> ssl.SSLContext:
    """Server context: TLS 1.2 at least; with ``client_ca``, client certificates are asked for
    and must chain to it (a peer may still send none: the MAIL check decides then)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if client_ca:
        context.load_verify_locations(cafile=client_ca)
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


_thread_state = threading.local()
HEALTH_CHECK_EVERY = 5.0  # seconds between two checks of a database thread's connection


class _Statements:
    """An execute wrapper counting the statements of a call that the database answered."""

    def __init__(self) -> None:
        self.answered = 0

    def __call__(self, execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        self.answered += 1
        return result


def _in_thread(function, kwargs):
    """Run ``function`` in a database thread. Its connection is checked (Django's health check,
    one ``SELECT 1``) at most every ``HEALTH_CHECK_EVERY`` seconds, and at once after an error:
    a check per call cost one more round trip per query. A connection broken meanwhile (the
    database restarted) fails on the call's first statement, before anything of the call reached
    the database: that call is run once more, on a new connection (a database still down fails
    it again, and the session answers 451). A failure after a statement was answered is never
    retried here: the call's transaction is rolled back and the peer's retry decides."""
    now = time.monotonic()
    if now - getattr(_thread_state, "checked", float("-inf")) >= HEALTH_CHECK_EVERY:
        _thread_state.checked = now
        close_old_connections()
    for last_try in (False, True):
        statements = _Statements()
        try:
            with connection.execute_wrapper(statements):
                return function(**kwargs)
        except BaseException as exc:
            _thread_state.checked = float("-inf")
            close_old_connections()
            stale = (
                isinstance(exc, OperationalError | InterfaceError)
                and not statements.answered
                and not connection.in_atomic_block
            )
            if last_try or not stale:
                raise
            logger.info("gateway database connection renewed")


def _domain(address: str) -> str:
    _local, at, domain = address.rpartition("@")
    return domain.strip().lower().rstrip(".") if at else ""


class _Cache:
    """Answers remembered for ``ttl`` seconds, per process (at most ``RCPT_CACHE_MAX``, then
    forgotten at once)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._answers: dict = {}

    def get(self, key):
        cached = self._answers.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        return None

    def put(self, key, value) -> None:
        if self.ttl > 0:
            if len(self._answers) >= RCPT_CACHE_MAX:
                self._answers.clear()
            self._answers[key] = (value, time.monotonic() + self.ttl)


class GatewayHandler:
    """The gateway's rules, called by the sessions (``apps.gateway.smtp``); one instance is
    shared by every session of a server. A method answers at once (a reply) or returns a
    coroutine when the answer needs the database, which runs in worker threads."""

    def __init__(self, options: GatewayOptions) -> None:
        self.options = options
        self.executor = ThreadPoolExecutor(
            max_workers=options.db_threads, thread_name_prefix="gateway-db"
        )
        self.connections = 0
        self.in_data = 0  # sessions between DATA and our reply to it
        # Group commit: messages whose data is complete wait here for the next commit.
        self._pending: list[tuple[InboundMessage, asyncio.Future]] = []
        self._committer: asyncio.Task | None = None
        # RCPT answers per address and trusted DNs per domain, for ``rcpt_cache_seconds``: a
        # mailbox created (or a quota raised, a trust list imported) is seen within that delay,
        # and a peer sending to the same recipients costs one query per period, not per RCPT.
        self._recipients = _Cache(options.rcpt_cache_seconds)
        self._trusted_dns = _Cache(options.rcpt_cache_seconds)

    async def db(self, function, /, **kwargs):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.executor, functools.partial(_in_thread, function, kwargs)
        )

    def session_error(self, error: Exception) -> str:
        """Any unexpected error in a session: ``451`` (the peer retries), logged without
        details (an exception's text may quote what the peer sent)."""
        logger.error("gateway session error", extra={"error": type(error).__name__})
        return REPLY_INTERNAL_ERROR

    # --- MAIL ---------------------------------------------------------------------------------

    def mail(self, session: Session, envelope: Envelope, address: str, params: list[str]):
        if not address:  # the null sender (reports): the From: domain is checked at DATA
            envelope.check_sender_at_data = True
            envelope.mail_from = ""
            envelope.mail_options.extend(params)
            return "250 2.1.0 OK"
        return self._mail_checked(session, envelope, address, params)

    async def _mail_checked(self, session, envelope, address: str, params: list[str]) -> str:
        refusal = await self._certificate_refusal(session, envelope, _domain(address))
        if refusal:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(params)
        return "250 2.1.0 OK"

    async def _certificate_refusal(self, session: Session, envelope, domain: str) -> str | None:
        ssl_object = session.ssl_object
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if der is None:
            if self.options.require_client_cert:
                await self._refusal(session, reason="no_client_certificate", domain=domain)
                return REPLY_CERT_REQUIRED
            return None
        dn = dn_of_certificate(der)
        envelope.client_dn = dn
        if not domain or dn not in await self._trusted_dns_for(domain):
            await self._refusal(session, reason="certificate_not_listed", domain=domain, dn=dn)
            return REPLY_CERT_REFUSED
        return None

    async def _trusted_dns_for(self, domain: str):
        dns = self._trusted_dns.get(domain)
        if dns is None:
            dns = await self.db(selectors.trusted_dns_for, domain=domain)
            self._trusted_dns.put(domain, dns)
        return dns

    async def _refusal(self, session: Session, *, reason: str, domain: str, dn: str = "") -> None:
        try:
            await self.db(
                services.inbound_refusal_record,
                reason=reason,
                peer_ip=session.peer_ip,
                sender_domain=domain,
                client_dn=dn,
            )
        except Exception as exc:
            logger.warning("gateway refusal not audited", extra={"error": type(exc).__name__})

    # --- RCPT ---------------------------------------------------------------------------------

    def rcpt(self, session: Session, envelope: Envelope, address: str):
        address = address.strip().lower()
        if address in envelope.rcpt_tos:
            return "250 2.1.5 OK"
        if len(envelope.rcpt_tos) >= self.options.max_recipients:
            return REPLY_TOO_MANY_RCPT
        state = self._recipients.get(address)
        if state is not None:
            return self._rcpt_answer(envelope, address, state)
        return self._rcpt_looked_up(envelope, address)

    async def _rcpt_looked_up(self, envelope: Envelope, address: str) -> str:
        state = await self.db(selectors.recipient_state, address=address)
        self._recipients.put(address, state)
        return self._rcpt_answer(envelope, address, state)

    @staticmethod
    def _rcpt_answer(envelope: Envelope, address: str, state) -> str:
        if state == selectors.RecipientState.UNKNOWN:
            return REPLY_UNKNOWN_RCPT
        if state == selectors.RecipientState.FULL:
            return REPLY_MAILBOX_FULL
        if address not in envelope.rcpt_tos:  # (two lookups of one address may overlap)
            envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    # --- DATA ---------------------------------------------------------------------------------

    async def data(self, session: Session, envelope: Envelope, raw: bytes) -> str:
        if smuggling_suspected(raw):
            domain = _domain(envelope.mail_from or "")
            await self._refusal(session, reason="smtp_smuggling", domain=domain)
            return REPLY_SMUGGLING
        if envelope.check_sender_at_data:
            refusal = await self._certificate_refusal(session, envelope, _header_from_domain(raw))
            if refusal:
                return refusal
        ssl_object = session.ssl_object
        cipher = ssl_object.cipher() if ssl_object is not None else None
        inbound_envelope = services.InboundEnvelope(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            peer_ip=session.peer_ip,
            helo=session.host_name or "",
            tls_version=(ssl_object.version() or "") if ssl_object is not None else "",
            tls_cipher=cipher[0] if cipher else "",
            client_cert_dn=envelope.client_dn,
            protocol="lmtp" if self.options.lmtp else "smtp",
        )
        try:
            inbound = await self.accept(raw, inbound_envelope)
        except Exception as exc:
            logger.error(
                "inbound message not stored", extra={"error": type(exc).__name__, "size": len(raw)}
            )
            return REPLY_INTERNAL_ERROR
        logger.info("inbound message accepted", extra={"inbound": inbound.pk, "size": len(raw)})
        return f"250 2.0.0 OK: queued as {inbound.pk}"

    async def accept(self, raw: bytes, envelope: services.InboundEnvelope):
        """Prepare the message's row, its raw encrypted (on the loop, or in a worker thread when
        it is large), then wait for the commit of that row, made together with those of the
        messages that were ready at the same time (one commit per group, the raws' ciphertexts
        in their blob rows)."""
        if len(raw) <= ENCRYPT_ON_LOOP_MAX:
            row = services.inbound_prepare(raw=raw, envelope=envelope)
        else:
            row = await self.db(services.inbound_prepare, raw=raw, envelope=envelope)
        future = asyncio.get_running_loop().create_future()
        self._pending.append((row, future))
        if self._committer is None:
            self._committer = asyncio.create_task(self._commit_pending())
        return await future

    async def _commit_pending(self) -> None:
        """One group at a time, of everything that waits (the messages that finish meanwhile
        make the next group: one WAL flush for all of them). If a group fails, its messages are
        tried one by one, so that one message that cannot be stored does not refuse the others;
        a message that still fails is not kept (its raw was only in its unsaved row) and its
        session answers 451."""
        try:
            while self._pending:
                group = self._pending[:GROUP_COMMIT_MAX]
                del self._pending[:GROUP_COMMIT_MAX]
                try:
                    rows = await self._commit([row for row, _future in group])
                except Exception as exc:
                    if len(group) == 1:
                        _fail(group[0][1], exc)
                        continue
                    for row, future in group:
                        try:
                            await self._commit([row])
                        except Exception as exc:
                            _fail(future, exc)
                        else:
                            _resolve(future, row)
                            self._enqueue([row])
                    continue
                for row, future in group:
                    _resolve(future, row)
                self._enqueue(rows)
        finally:
            self._committer = None

    async def _commit(self, rows: list) -> list:
        enqueue = not self.options.enqueue_after_reply
        return await self.db(services.inbound_commit, rows=rows, enqueue=enqueue)

    def _enqueue(self, rows: list) -> None:
        """Ingestion enqueued after the 250s are on their way, not before: the rows are
        committed, and the sweeper enqueues any the broker loses."""
        if not self.options.enqueue_after_reply:
            return  # done by the commit
        with contextlib.suppress(RuntimeError):  # the executor is shut down: the sweeper will
            self.executor.submit(
                _in_thread, services.inbound_enqueue, {"inbound_ids": [row.pk for row in rows]}
            )


def _resolve(future: asyncio.Future, row) -> None:
    if not future.done():  # a session that went away meanwhile: its message is kept all the same
        future.set_result(row)


def _fail(future: asyncio.Future, exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)


def _header_from_domain(raw: bytes) -> str:
    headers = services.header_block(raw)
    if headers is None:
        return ""
    try:
        return _domain(parseaddr(str(headers.get("From", "") or ""))[1])
    except Exception:
        return ""


class GatewayServer:
    """The gateway in a background thread: ``start()``, then ``stop()`` stops accepting
    connections and lets transactions past DATA finish (up to ``grace`` seconds: their message
    committed and acknowledged) before closing every session."""

    def __init__(
        self,
        options: GatewayOptions,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        reuse_port: bool = False,
    ):
        self.handler = GatewayHandler(options)
        self.listener = Listener(self.handler, host=host, port=port, reuse_port=reuse_port)
        self._stopped = False

    @property
    def port(self) -> int:
        return self.listener.port

    def start(self) -> "GatewayServer":
        self.listener.start()
        return self

    def stop(self, *, grace: float = 30.0) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.listener.stop_accepting()
        deadline = time.monotonic() + grace
        while self.handler.in_data and time.monotonic() < deadline:
            time.sleep(0.05)
        self.listener.stop()
        _close_thread_connections(self.handler.executor, self.handler.options.db_threads)
        self.handler.executor.shutdown(wait=True)


def _close_thread_connections(executor: ThreadPoolExecutor, workers: int) -> None:
    """Close the database connections the worker threads hold (one job per thread: each waits
    for the others, so no thread takes two)."""
    barrier = threading.Barrier(workers)

    def close() -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=5)
        connections.close_all()

    for future in [executor.submit(close) for _ in range(workers)]:
        future.result()
