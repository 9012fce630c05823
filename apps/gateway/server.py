"""The inbound SMTP (or LMTP) gateway, on aiosmtpd.

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
from email import policy
from email.parser import BytesHeaderParser
from email.utils import parseaddr

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, TLSSetupException
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
from apps.trustlist.dn import dn_of_certificate

logger = logging.getLogger(__name__)

REPLY_INTERNAL_ERROR = "451 4.3.0 Temporary local problem, please try again later"
REPLY_SMUGGLING = "550 5.5.2 Bare CR or LF around a dot refused (SMTP smuggling)"
REPLY_CERT_REQUIRED = "550 5.7.1 A client certificate is required"
REPLY_CERT_REFUSED = "550 5.7.1 Client certificate not listed for the sender's domain"
REPLY_UNKNOWN_RCPT = "550 5.1.1 No such mailbox here"
REPLY_MAILBOX_FULL = "452 4.2.2 Mailbox full"
REPLY_TOO_MANY_RCPT = "452 4.5.3 Too many recipients"
REPLY_TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections, try again later"
REPLY_SESSION_TOO_LONG = "421 4.4.2 Session time limit exceeded"
GROUP_COMMIT_MAX = 100  # messages committed together at most
RCPT_CACHE_MAX = 10_000  # addresses remembered per process at most (then forgotten at once)

# aiosmtpd's own replies, given their enhanced status codes (RFC 3463).
_REWRITTEN = {
    "552 Error: message size exceeds fixed maximum message size": (
        "552 5.3.4 Message size exceeds fixed maximum message size"
    ),
    "552 Error: Too much mail data": "552 5.3.4 Message size exceeds fixed maximum message size",
    "530 Must issue a STARTTLS command first": "530 5.7.0 Must issue a STARTTLS command first",
    "500 Line too long (see RFC5321 4.5.3.1.6)": "500 5.5.2 Line too long (RFC 5321 4.5.3.1.6)",
    "500 Command line too long": "500 5.5.2 Command line too long",
    "554 Command refused due to lack of security": "554 5.7.0 TLS negotiation failed",
}

# A dot between two line endings of which at least one is a bare CR or LF: what another
# server may take for the end of data (SMTP smuggling, CVE-2023-51764/51765/51766). aiosmtpd
# only ends data on CRLF.CRLF and has removed one leading dot from each CRLF line, so a line that
# was ".<LF>…" now starts with a bare LF: both forms are looked for.
_BARE = rb"(?:(?<!\r)\n|\r(?!\n))"
_SMUGGLING = re.compile(rb"%s\.(?:\r\n|\n|\r)|(?:\A|\r\n)\.?%s" % (_BARE, _BARE))


def smuggling_suspected(data: bytes) -> bool:
    """True when ``data`` (as aiosmtpd gives it) holds an end-of-data-like sequence made with
    a bare CR or LF."""
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


class GatewayEnvelope(Envelope):
    def __init__(self) -> None:
        super().__init__()
        self.client_dn = ""
        self.check_sender_at_data = False  # null sender: the From: domain is checked instead


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


def _peer_certificate(session) -> bytes | None:
    ssl_object = (session.ssl or {}).get("ssl_object")
    return ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None


def _domain(address: str) -> str:
    _local, at, domain = address.rpartition("@")
    return domain.strip().lower().rstrip(".") if at else ""


class GatewayHandler:
    """aiosmtpd hooks; one instance is shared by every session of a server."""

    def __init__(self, options: GatewayOptions) -> None:
        self.options = options
        self.executor = ThreadPoolExecutor(
            max_workers=options.db_threads, thread_name_prefix="gateway-db"
        )
        self.connections = 0
        self.in_data = 0  # sessions between DATA and our reply to it
        # Group commit: messages whose raw is stored wait here for the next commit.
        self._pending: list[tuple[tuple, asyncio.Future]] = []
        self._committer: asyncio.Task | None = None
        # RCPT answers per address, for ``rcpt_cache_seconds``: address -> (state, expiry).
        self._recipients: dict[str, tuple[selectors.RecipientState, float]] = {}

    async def db(self, function, /, **kwargs):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.executor, functools.partial(_in_thread, function, kwargs)
        )

    async def recipient_state(self, address: str) -> selectors.RecipientState:
        """``selectors.recipient_state``, remembered for ``rcpt_cache_seconds`` per process: a
        mailbox created (or a quota raised) is seen within that delay, and a peer sending to
        the same recipients costs one query per address per period instead of one per RCPT."""
        ttl = self.options.rcpt_cache_seconds
        now = time.monotonic()
        cached = self._recipients.get(address)
        if cached is not None and cached[1] > now:
            return cached[0]
        state = await self.db(selectors.recipient_state, address=address)
        if ttl > 0:
            if len(self._recipients) >= RCPT_CACHE_MAX:
                self._recipients.clear()
            self._recipients[address] = (state, now + ttl)
        return state

    async def accept(self, raw: bytes, envelope: services.InboundEnvelope):
        """Store the raw (in parallel with other sessions), then wait for the commit of its row,
        made together with those of the messages that were ready at the same time (with its
        ``StoredBlob`` row: one commit per group, blobs included)."""
        blob = await self.db(services.inbound_store_raw, raw=raw)
        future = asyncio.get_running_loop().create_future()
        self._pending.append(((raw, blob, envelope), future))
        if self._committer is None:
            self._committer = asyncio.create_task(self._commit_pending())
        return await future

    async def _commit_pending(self) -> None:
        """One commit at a time, of everything that waits (the messages that finish meanwhile
        make the next group: one WAL flush for all of them). If a group fails, its messages are
        tried one by one, so that one message that cannot be stored does not refuse the others;
        a message whose commit failed has its raw deleted and its session answers 451."""
        try:
            while self._pending:
                group = self._pending[:GROUP_COMMIT_MAX]
                del self._pending[:GROUP_COMMIT_MAX]
                try:
                    rows = await self._commit([i for i, _f in group])
                except Exception as exc:
                    if len(group) == 1:
                        await self._failed(group[0], exc)
                        continue
                    for item, future in group:
                        try:
                            rows = await self._commit([item])
                        except Exception as exc:
                            await self._failed((item, future), exc)
                        else:
                            _resolve(future, rows[0])
                            self._enqueue(rows)
                    continue
                for (_item, future), row in zip(group, rows, strict=True):
                    _resolve(future, row)
                self._enqueue(rows)
        finally:
            self._committer = None

    async def _commit(self, items: list[tuple]) -> list:
        enqueue = not self.options.enqueue_after_reply
        return await self.db(services.inbound_commit, items=items, enqueue=enqueue)

    def _enqueue(self, rows: list) -> None:
        """Ingestion enqueued after the 250s are on their way, not before: the rows are
        committed, and the sweeper enqueues any the broker loses."""
        if not self.options.enqueue_after_reply:
            return  # done by the commit
        with contextlib.suppress(RuntimeError):  # the executor is shut down: the sweeper will
            self.executor.submit(
                _in_thread, services.inbound_enqueue, {"inbound_ids": [row.pk for row in rows]}
            )

    async def _failed(self, waiting: tuple[tuple, asyncio.Future], exc: Exception) -> None:
        (_raw, blob, _envelope), future = waiting
        with contextlib.suppress(Exception):
            await self.db(services.inbound_discard, blob=blob)
        if not future.done():
            future.set_exception(exc)

    async def _refusal(self, session, *, reason: str, domain: str, dn: str = "") -> None:
        try:
            await self.db(
                services.inbound_refusal_record,
                reason=reason,
                peer_ip=_peer_ip(session),
                sender_domain=domain,
                client_dn=dn,
            )
        except Exception as exc:
            logger.warning("gateway refusal not audited", extra={"error": type(exc).__name__})

    async def handle_exception(self, error: Exception) -> str:
        """Any unexpected error in a session: ``451`` (the peer retries), logged without
        details (an exception's text may quote what the peer sent)."""
        if isinstance(error, TLSSetupException):  # a peer's failed handshake: the session ends
            logger.info(
                "gateway TLS handshake failed", extra={"error": type(error.__cause__).__name__}
            )
        else:
            logger.error("gateway session error", extra={"error": type(error).__name__})
        return REPLY_INTERNAL_ERROR

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        # No AUTH here: peers authenticate by their TLS certificate.
        return [line for line in responses if not line[4:].upper().startswith("AUTH")]

    async def _certificate_refusal(self, session, envelope, domain: str) -> str | None:
        der = _peer_certificate(session)
        if der is None:
            if self.options.require_client_cert:
                await self._refusal(session, reason="no_client_certificate", domain=domain)
                return REPLY_CERT_REQUIRED
            return None
        dn = dn_of_certificate(der)
        envelope.client_dn = dn
        if not domain or dn not in await self.db(selectors.trusted_dns_for, domain=domain):
            await self._refusal(session, reason="certificate_not_listed", domain=domain, dn=dn)
            return REPLY_CERT_REFUSED
        return None

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if address == "<>":
            address = ""
            envelope.check_sender_at_data = True
        else:
            refusal = await self._certificate_refusal(session, envelope, _domain(address))
            if refusal:
                return refusal
        envelope.mail_from = address or "<>"
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        address = address.strip().lower()
        if address in envelope.rcpt_tos:
            return "250 2.1.5 OK"
        if len(envelope.rcpt_tos) >= self.options.max_recipients:
            return REPLY_TOO_MANY_RCPT
        state = await self.recipient_state(address)
        if state == selectors.RecipientState.UNKNOWN:
            return REPLY_UNKNOWN_RCPT
        if state == selectors.RecipientState.FULL:
            return REPLY_MAILBOX_FULL
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    def _reply(self, envelope, status: str) -> str:
        """LMTP answers once per recipient after DATA (RFC 2033 §4.2)."""
        if self.options.lmtp:
            return "\r\n".join(status for _rcpt in envelope.rcpt_tos)
        return status

    async def handle_DATA(self, server, session, envelope):
        raw: bytes = envelope.original_content
        if smuggling_suspected(raw):
            domain = _domain(envelope.mail_from)
            await self._refusal(session, reason="smtp_smuggling", domain=domain)
            return self._reply(envelope, REPLY_SMUGGLING)
        if envelope.check_sender_at_data:
            refusal = await self._certificate_refusal(session, envelope, _header_from_domain(raw))
            if refusal:
                return self._reply(envelope, refusal)
        ssl_object = (session.ssl or {}).get("ssl_object")
        cipher = ssl_object.cipher() if ssl_object is not None else None
        inbound_envelope = services.InboundEnvelope(
            mail_from="" if envelope.mail_from == "<>" else envelope.mail_from,
            rcpt_tos=tuple(envelope.rcpt_tos),
            peer_ip=_peer_ip(session),
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
            return self._reply(envelope, REPLY_INTERNAL_ERROR)
        logger.info("inbound message accepted", extra={"inbound": inbound.pk, "size": len(raw)})
        return self._reply(envelope, f"250 2.0.0 OK: queued as {inbound.pk}")


def _resolve(future: asyncio.Future, row) -> None:
    if not future.done():  # a session that went away meanwhile: its message is kept all the same
        future.set_result(row)


def _peer_ip(session) -> str | None:
    peer = session.peer
    return peer[0] if isinstance(peer, tuple) and peer else None


def _header_from_domain(raw: bytes) -> str:
    try:
        headers = BytesHeaderParser(policy=policy.compat32).parsebytes(raw[:262_144])
        return _domain(parseaddr(str(headers.get("From", "") or ""))[1])
    except Exception:
        return ""


def _longest_line(data: bytes) -> int:
    """Length of the longest CRLF-ended line of ``data``, its CRLF included."""
    return max(map(len, data.split(b"\r\n")), default=0) + 2


_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only


class _GatewayProtocol:
    """What the SMTP and LMTP servers add to aiosmtpd: connection and session-time limits,
    replies with enhanced status codes, our envelope."""

    event_handler: GatewayHandler
    _socket = None

    def _create_envelope(self) -> GatewayEnvelope:
        return GatewayEnvelope()

    def connection_made(self, transport) -> None:
        first = getattr(self, "_original_transport", None) is None and self.transport is None
        super().connection_made(transport)
        if first:
            self._socket = transport.get_extra_info("socket")
            handler = self.event_handler
            handler.connections += 1
            self._counted = True
            self._admitted = handler.connections <= handler.options.max_connections
            self._deadline = self.loop.call_later(
                handler.options.session_timeout, self._session_expired
            )

    def data_received(self, data: bytes) -> None:
        # Acknowledge what arrives at once rather than after the kernel's delayed-ACK timer
        # (≈ 40 ms on Linux): a peer with Nagle's algorithm on (most clients) holds the last
        # TLS record of a message until its previous ones are acknowledged, so each message
        # waited for that timer before its final dot reached us (20 msg/s over one TLS
        # connection instead of 200). Linux forgets the option after a while: set per read.
        if _QUICKACK is not None and self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        super().data_received(data)

    def connection_lost(self, error) -> None:
        if getattr(self, "_counted", False):
            self._counted = False
            self.event_handler.connections -= 1
            self._deadline.cancel()
        super().connection_lost(error)

    def _session_expired(self) -> None:
        if self.transport is not None:
            self.transport.write(REPLY_SESSION_TOO_LONG.encode() + b"\r\n")
            self.transport.close()

    async def _handle_client(self) -> None:
        if not self._admitted:
            await self.push(REPLY_TOO_MANY_CONNECTIONS)
            self.transport.close()
            return
        await super()._handle_client()

    async def smtp_DATA(self, arg) -> None:
        # Counted until our reply is written, so that a stop lets the transaction finish.
        self.event_handler.in_data += 1
        try:
            await self._data(arg)
        finally:
            self.event_handler.in_data -= 1

    async def _data(self, arg) -> None:
        """aiosmtpd's ``smtp_DATA`` with the same replies and limits, reading the data in
        chunks up to each ``.<CRLF>`` instead of one line at a time (≈ 6 ms of event-loop time
        for a 50 KB message, the gateway's bottleneck). The lines are checked afterwards: one
        longer than ``line_length_limit`` answers 500, more than ``data_size_limit`` bytes 552,
        once the end of data is read; a leading dot is removed from each line (RFC 5321 4.5.2).
        """
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        limit = self.data_size_limit
        data = bytearray()
        size = 0
        too_long = too_much = False
        before = b"\r\n"  # the two bytes before the unread data: the data starts a line
        while self.transport is not None:
            try:
                chunk = await self._reader.readuntil(b".\r\n")
                found = True
            except asyncio.CancelledError:
                self._writer.close()  # the connection was reset during DATA
                raise
            except asyncio.LimitOverrunError as exc:
                # No ".<CRLF>" within the reader's limit: take what was searched (the last two
                # bytes stay, in case they begin the separator).
                chunk = await self._reader.read(exc.consumed)
                found = False
            seen = before + chunk
            if found and seen[-5:-3] == b"\r\n":  # <CRLF>.<CRLF>: the end of data
                chunk = chunk[:-3]
            else:
                found = False
            before = seen[-2:]
            size += len(chunk)
            if not (too_long or too_much):
                data += chunk
                if limit and size > limit:
                    too_long = _longest_line(data) > self.line_length_limit
                    too_much = not too_long
                    data = bytearray()
            if found:
                break
        else:
            return  # the connection is gone: nothing to answer, nothing kept
        if not (too_long or too_much) and _longest_line(data) > self.line_length_limit:
            too_long = True
        if too_long or too_much:
            await self.push(
                "500 Line too long (see RFC5321 4.5.3.1.6)"
                if too_long
                else "552 Error: Too much mail data"
            )
            self._set_post_data_state()
            return
        # Transparency (RFC 5321 4.5.2): one leading dot removed from every line.
        original_content = (b"\r\n" + bytes(data)).replace(b"\r\n.", b"\r\n")[2:]
        del data
        self.envelope.content = original_content
        self.envelope.original_content = original_content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push(status)

    async def push(self, status) -> None:
        if isinstance(status, str):
            status = _REWRITTEN.get(status, status)
        await super().push(status)


class GatewaySMTP(_GatewayProtocol, SMTP):
    # RFC 5321 §4.5.3.1.6: 998 octets + CRLF, plus one for a transparency dot.
    line_length_limit = 1001


class GatewayLMTP(_GatewayProtocol, LMTP):
    line_length_limit = 1001


class GatewayController(Controller):
    def __init__(
        self, handler: GatewayHandler, *, host: str, port: int, reuse_port: bool = False
    ) -> None:
        options = handler.options
        self.reuse_port = reuse_port
        super().__init__(
            handler,
            hostname=host,
            port=port,
            server_hostname=options.hostname,
            ident="mssweb",
            data_size_limit=options.max_message_size,
            enable_SMTPUTF8=False,
            tls_context=options.tls_context,
            require_starttls=options.require_tls,
            timeout=options.idle_timeout,
            auth_exclude_mechanism=["LOGIN", "PLAIN"],
            command_call_limit=options.max_commands,
        )

    def factory(self):
        protocol = GatewayLMTP if self.handler.options.lmtp else GatewaySMTP
        return protocol(self.handler, **self.SMTP_kwargs)

    def _create_server(self):
        return self.loop.create_server(
            self._factory_invoker,
            host=self.hostname,
            port=self.port,
            ssl=self.ssl_context,
            reuse_port=self.reuse_port or None,
        )

    def _trigger_server(self):
        if self.port == 0:  # an ephemeral port (tests): the one the system chose
            self.port = self.server.sockets[0].getsockname()[1]
        if self.reuse_port:
            # A connection to the port could reach another process's listener: check that a
            # session can be made here without one.
            self.loop.call_soon_threadsafe(self._factory_invoker)
            return
        super()._trigger_server()


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
        self.controller = GatewayController(
            self.handler, host=host, port=port, reuse_port=reuse_port
        )
        self._stopped = False

    @property
    def port(self) -> int:
        return self.controller.port

    def start(self) -> "GatewayServer":
        self.controller.start()
        return self

    def stop(self, *, grace: float = 30.0) -> None:
        if self._stopped:
            return
        self._stopped = True
        controller = self.controller
        if controller.server is not None:
            controller.loop.call_soon_threadsafe(controller.server.close)
        deadline = time.monotonic() + grace
        while self.handler.in_data and time.monotonic() < deadline:
            time.sleep(0.05)
        controller.stop()
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
