"""The SMTP (RFC 5321) and LMTP (RFC 2033) server protocol of the gateway, on asyncio.

A session is an ``asyncio.Protocol`` that parses what arrives in bulk: commands are cut at line
ends in a buffer, the data of a message is searched for ``<CRLF>.<CRLF>`` with ``bytes.find``
(never one ``await`` per line), STARTTLS upgrades the transport with ``loop.start_tls``, and a
command whose answer needs the database hands a coroutine to the handler while the rest of the
buffer waits (pipelining, RFC 2920). On uvloop (when installed) the TCP and TLS work runs in
compiled code; this module has no Django import: the rules live in ``GatewayHandler``
(``apps.gateway.server``), which this calls with ``Session`` and ``Envelope`` objects.

Limits enforced here: a command line of at most ``COMMAND_LINE_MAX`` octets (``500``), a data
line of at most 1,001 (998 + CRLF + a transparency dot, ``500``), the message size (``552`` at
``MAIL SIZE=`` and after the data), the number of times each command may be used in a session
(``421``), the idle time and the session time (``421``), the number of sessions (``421`` as the
greeting). Data ends only on ``<CRLF>.<CRLF>``; one leading dot is removed from every line.
"""

import asyncio
import contextlib
import logging
import re
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from inspect import isawaitable

logger = logging.getLogger("apps.gateway.server")

COMMAND_LINE_MAX = 2048  # RFC 5321 §4.5.3.1.4: 512, plus room for the extensions' parameters
DATA_LINE_MAX = 1001  # §4.5.3.1.6: 998 octets + CRLF, plus one for a transparency dot
PAUSE_ABOVE = 1 << 20  # buffered octets while a command waits: reading paused beyond

REPLY_TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections, try again later"
REPLY_SESSION_TOO_LONG = "421 4.4.2 Session time limit exceeded"
REPLY_TOO_MUCH_DATA = "552 5.3.4 Message size exceeds fixed maximum message size"
REPLY_LINE_TOO_LONG = "500 5.5.2 Line too long (RFC 5321 4.5.3.1.6)"
REPLY_COMMAND_TOO_LONG = "500 5.5.2 Command line too long"
REPLY_NEED_TLS = "530 5.7.0 Must issue a STARTTLS command first"
REPLY_OK = "250 2.0.0 OK"

# Commands allowed before STARTTLS when TLS is required.
_BEFORE_TLS = frozenset({"EHLO", "HELO", "LHLO", "NOOP", "RSET", "QUIT", "STARTTLS", "HELP"})
_MAIL = re.compile(r"FROM:\s*(<[^<>]*>|[^\s<>]+)\s*(.*)\Z", re.IGNORECASE)
_RCPT = re.compile(r"TO:\s*(<[^<>]*>|[^\s<>]+)\s*(.*)\Z", re.IGNORECASE)

try:  # compiled event loop and TLS (optional: plain asyncio otherwise)
    import uvloop

    new_event_loop: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
except ImportError:  # pragma: no cover - uvloop is a dependency; kept usable without it
    new_event_loop = asyncio.new_event_loop

_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only


@dataclass
class Session:
    """What is known of the peer, for the handler."""

    peer: tuple | None = None
    host_name: str = ""
    extended: bool = False  # EHLO (or LHLO) rather than HELO
    ssl_object: ssl.SSLObject | None = None

    @property
    def peer_ip(self) -> str | None:
        return self.peer[0] if isinstance(self.peer, tuple) and self.peer else None


@dataclass
class Envelope:
    mail_from: str | None = None  # "" for the null sender, None before MAIL
    mail_options: list[str] = field(default_factory=list)
    rcpt_tos: list[str] = field(default_factory=list)
    client_dn: str = ""
    check_sender_at_data: bool = False  # null sender: the From: domain is checked instead


def unstuffed(data: bytes | bytearray) -> bytes:
    """RFC 5321 §4.5.2: one leading dot removed from every line; ``data`` starts with the CRLF
    that preceded it (so that its first line is treated like the others), which is dropped."""
    return bytes(data).replace(b"\r\n.", b"\r\n")[2:]


def longest_line(data: bytes | bytearray) -> int:
    """Length of the longest CRLF-ended line of ``data``, its CRLF included."""
    return max(map(len, data.split(b"\r\n")), default=0) + 2


class SMTPSession(asyncio.Protocol):
    """One connection. Not thread-safe: everything runs on the listener's event loop."""

    def __init__(self, listener: "Listener") -> None:
        self.listener = listener
        self.handler = listener.handler
        self.options = listener.handler.options
        self.loop = listener.loop
        self.transport: asyncio.Transport | None = None
        self.session = Session()
        self.envelope = Envelope()
        self.buffer = bytearray()
        self.replies: list[bytes] = []
        self.calls: dict[str, int] = {}
        self.busy = False  # a command's answer is awaited: what follows waits in the buffer
        self.closing = False
        self.paused = False
        self.in_data = False  # between DATA and our answer to the data
        self.discarding = False  # the rest of a command line too long is being skipped
        self.data = bytearray()
        self.data_seen = 0  # octets of the current data discarded (too much) or kept
        self.data_refusal = ""
        self.last_activity = 0.0
        self._timers: list[asyncio.TimerHandle] = []
        self._socket = None
        self._counted = False

    # --- Connection ---------------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.session.peer = transport.get_extra_info("peername")
        self._socket = transport.get_extra_info("socket")
        self.listener.sessions.add(self)
        self.handler.connections += 1
        self._counted = True
        self.last_activity = self.loop.time()
        options = self.options
        self._timers = [
            self.loop.call_later(options.session_timeout, self._session_expired),
            self.loop.call_later(options.idle_timeout, self._idle_check),
        ]
        if self.handler.connections > options.max_connections:
            self._close_with(REPLY_TOO_MANY_CONNECTIONS)
            return
        kind = "LMTP" if options.lmtp else "ESMTP"
        self._write(f"220 {options.hostname} {kind} mssweb")
        self._flush()

    def connection_lost(self, exc) -> None:
        self.closing = True
        self.transport = None
        for timer in self._timers:
            timer.cancel()
        self.listener.sessions.discard(self)
        if self._counted:
            self._counted = False
            self.handler.connections -= 1
        self._leave_data()

    def data_received(self, data: bytes) -> None:
        # Acknowledge at once rather than after the kernel's delayed-ACK timer (≈ 40 ms on
        # Linux): a peer with Nagle's algorithm on (most clients) holds the last TLS record of a
        # message until its previous ones are acknowledged (20 msg/s over one TLS connection
        # instead of hundreds). Linux forgets the option after a while: set on every read.
        if _QUICKACK is not None and self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        self.last_activity = self.loop.time()
        if self.closing:
            return
        self.buffer += data
        if not self.busy:
            self._process()
        elif len(self.buffer) > PAUSE_ABOVE and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        return False  # close

    def _write(self, reply: str) -> None:
        """Queue a reply; ``_flush`` sends the queued ones in one write (the replies to
        pipelined commands in one TLS record and one system call)."""
        if self.transport is not None and not self.closing:
            self.replies.append(reply.encode("ascii", "replace") + b"\r\n")

    def _flush(self) -> None:
        if self.replies:
            if self.transport is not None:
                self.transport.write(b"".join(self.replies))
            self.replies.clear()

    def _close_with(self, reply: str) -> None:
        self._write(reply)
        self._flush()
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def _session_expired(self) -> None:
        self._close_with(REPLY_SESSION_TOO_LONG)

    def _idle_check(self) -> None:
        idle = self.loop.time() - self.last_activity
        timeout = self.options.idle_timeout
        if idle >= timeout and not self.busy:
            self._close_with(f"421 4.4.2 {self.options.hostname} Error: timeout exceeded")
        elif not self.closing:
            self._timers[1] = self.loop.call_later(max(timeout - idle, 0.1), self._idle_check)

    # --- Reading ------------------------------------------------------------------------------

    def _process(self) -> None:
        """Handle what the buffer holds, as long as no answer is awaited."""
        while not (self.busy or self.closing):
            if self.in_data:
                if not self._read_data():
                    break
                continue
            line = self._next_line()
            if line is None:
                break
            self._command(line)
        self._flush()
        if self.paused and not self.busy and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def _next_line(self) -> bytes | None:
        buffer = self.buffer
        end = buffer.find(b"\n")
        if end < 0:
            if len(buffer) > COMMAND_LINE_MAX:
                if not self.discarding:
                    self._write(REPLY_COMMAND_TOO_LONG)
                self.discarding = True
                buffer.clear()
            return None
        line = bytes(buffer[: end + 1])
        del buffer[: end + 1]
        if self.discarding:  # the end of a line already answered
            self.discarding = False
            return b""
        if len(line) > COMMAND_LINE_MAX:
            self._write(REPLY_COMMAND_TOO_LONG)
            return b""
        return line

    def _command(self, line: bytes) -> None:
        if not line:
            return
        try:
            text = line.rstrip(b"\r\n").decode("ascii")
        except UnicodeDecodeError:
            self._write("500 5.5.2 Error: strict ASCII mode")
            return
        verb, _space, arg = text.strip().partition(" ")
        verb = verb.upper()
        arg = arg.strip()
        count = self.calls.get(verb, 0) + 1
        self.calls[verb] = count
        if count > self.options.max_commands:
            self._close_with(f"421 4.7.0 {verb[:16]} sent too many times")
            return
        method = getattr(self, f"smtp_{verb}", None) if verb.isalpha() else None
        if method is None:
            self._write(f'500 5.5.1 Error: command "{verb[:16]}" not recognized')
            return
        if self.options.require_tls and self.session.ssl_object is None and verb not in _BEFORE_TLS:
            self._write(REPLY_NEED_TLS)
            return
        try:
            reply = method(arg)
        except Exception as exc:
            reply = self.handler.session_error(exc)
        if isawaitable(reply):
            self.busy = True
            self.loop.create_task(self._answer(reply))
        elif reply is not None:
            self._write(reply)

    async def _answer(self, pending: Awaitable) -> None:
        try:
            reply = await pending
        except Exception as exc:
            reply = self.handler.session_error(exc)
        self.busy = False
        if reply is not None:
            self._write(reply)
        self._process()

    # --- Data ---------------------------------------------------------------------------------

    def _enter_data(self) -> None:
        self.in_data = True
        self.handler.in_data += 1
        self.data = bytearray(b"\r\n")  # the data starts a line
        self.data_seen = 0
        self.data_refusal = ""

    def _leave_data(self) -> None:
        if self.in_data:
            self.in_data = False
            self.handler.in_data -= 1
        self.data = bytearray()

    def _read_data(self) -> bool:
        """Move the buffer into the data; at ``<CRLF>.<CRLF>``, answer it (the bytes after it
        go back to the buffer: pipelined commands) and return True."""
        if not self.buffer:
            return False
        data = self.data
        start = max(len(data) - 4, 0)
        data += self.buffer
        self.buffer.clear()
        end = data.find(b"\r\n.\r\n", start)
        if end < 0:
            limit = self.options.max_message_size
            if limit and self.data_seen + len(data) - 2 > limit:
                if not self.data_refusal:
                    too_long = longest_line(data) > DATA_LINE_MAX
                    self.data_refusal = REPLY_LINE_TOO_LONG if too_long else REPLY_TOO_MUCH_DATA
                self.data_seen += len(data) - 4
                del data[:-4]  # only what may begin the separator is kept
            return False
        self.buffer[:0] = data[end + 5 :]
        del data[end + 2 :]  # the message, after the leading CRLF, ends with its last CRLF
        if not self.data_refusal:
            limit = self.options.max_message_size
            if longest_line(data) > DATA_LINE_MAX:  # (its leading CRLF adds an empty line)
                self.data_refusal = REPLY_LINE_TOO_LONG
            elif limit and len(data) - 2 > limit:
                self.data_refusal = REPLY_TOO_MUCH_DATA
        if self.data_refusal:
            refusal = self.data_refusal
            self._leave_data()
            self._reset()
            self._write(self._per_recipient(refusal))
            return True
        raw = unstuffed(data)
        self.data = bytearray()
        self.busy = True
        self.loop.create_task(self._deliver(raw))
        return True

    async def _deliver(self, raw: bytes) -> None:
        envelope = self.envelope
        try:
            reply = await self.handler.data(self.session, envelope, raw)
        except Exception as exc:
            reply = self.handler.session_error(exc)
        self._write(self._per_recipient(reply, envelope))
        self._leave_data()
        self._reset()
        self.busy = False
        self._process()

    def _per_recipient(self, reply: str, envelope: Envelope | None = None) -> str:
        """LMTP answers once per accepted recipient after the data (RFC 2033 §4.2)."""
        if not self.options.lmtp:
            return reply
        count = len((envelope or self.envelope).rcpt_tos) or 1
        return "\r\n".join([reply] * count)

    # --- Commands -----------------------------------------------------------------------------

    def _reset(self) -> None:
        self.envelope = Envelope()

    def _hello(self, arg: str, *, extended: bool) -> None:
        self._reset()
        self.session.host_name = arg
        self.session.extended = extended

    def _extensions(self) -> str:
        options = self.options
        lines = [
            options.hostname,
            f"SIZE {options.max_message_size}" if options.max_message_size else "SIZE",
            "8BITMIME",
            "PIPELINING",
            "ENHANCEDSTATUSCODES",
        ]
        if options.tls_context is not None and not options.lmtp and self.session.ssl_object is None:
            lines.append("STARTTLS")
        lines.append("HELP")
        return "\r\n".join(f"250-{line}" for line in lines[:-1]) + f"\r\n250 {lines[-1]}"

    def _greeting(self, verb: str, arg: str, *, lmtp: bool, extended: bool) -> str:
        """EHLO and HELO (SMTP) or LHLO (LMTP): the session starts over."""
        if self.options.lmtp != lmtp:
            return f'500 5.5.1 Error: command "{verb}" not recognized'
        if not arg:
            return f"501 5.5.4 Syntax: {verb} hostname"
        self._hello(arg, extended=extended)
        return self._extensions() if extended else f"250 {self.options.hostname}"

    def smtp_EHLO(self, arg: str) -> str:
        return self._greeting("EHLO", arg, lmtp=False, extended=True)

    def smtp_HELO(self, arg: str) -> str:
        return self._greeting("HELO", arg, lmtp=False, extended=False)

    def smtp_LHLO(self, arg: str) -> str:
        return self._greeting("LHLO", arg, lmtp=True, extended=True)

    def smtp_NOOP(self, arg: str) -> str:
        return REPLY_OK

    def smtp_RSET(self, arg: str) -> str:
        if arg:
            return "501 5.5.4 Syntax: RSET"
        self._reset()
        return REPLY_OK

    def smtp_QUIT(self, arg: str) -> None:
        self._close_with("221 2.0.0 Bye")

    def smtp_HELP(self, arg: str) -> str:
        return "214 2.0.0 Supported commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY STARTTLS"

    def smtp_VRFY(self, arg: str) -> str:
        return "252 2.1.5 Cannot VRFY user, but will accept message and attempt delivery"

    def smtp_EXPN(self, arg: str) -> str:
        return "502 5.5.1 EXPN not implemented"

    def smtp_STARTTLS(self, arg: str) -> str | None:
        if arg:
            return "501 5.5.4 Syntax: STARTTLS"
        if self.options.tls_context is None or self.options.lmtp:
            return "454 4.7.0 TLS not available"
        if self.session.ssl_object is not None:
            return "503 5.5.1 Already using TLS"
        if self.buffer:  # commands pipelined before the handshake would be taken as protected
            self.buffer.clear()  # (CVE-2011-0411): thrown away, the client sends them again
        self._write("220 2.0.0 Ready to start TLS")
        self._flush()
        self.transport.pause_reading()  # the ClientHello goes to the TLS layer, not to us
        self.busy = True
        self.loop.create_task(self._start_tls())
        return None

    async def _start_tls(self) -> None:
        transport = self.transport
        try:
            secured = await self.loop.start_tls(
                transport, self, self.options.tls_context, server_side=True
            )
        except (OSError, TimeoutError) as exc:  # ssl.SSLError and ConnectionError included
            logger.info("gateway TLS handshake failed", extra={"error": type(exc).__name__})
            self.closing = True
            with contextlib.suppress(Exception):
                transport.close()
            return
        if secured is None or self.transport is None:  # the peer went away meanwhile
            return
        self.transport = secured
        self.session.ssl_object = secured.get_extra_info("ssl_object")
        # RFC 3207 §4.2: forget what was said before TLS.
        self.session.host_name = ""
        self.session.extended = False
        self._reset()
        self.busy = False
        self._process()

    def smtp_MAIL(self, arg: str):
        if not self.session.host_name:
            return "503 5.5.1 Error: send HELO first"
        if self.envelope.mail_from is not None:
            return "503 5.5.1 Error: nested MAIL command"
        match = _MAIL.match(arg)
        if match is None:
            return "501 5.5.4 Syntax: MAIL FROM:<address>"
        address = match[1].strip("<>").strip()
        params = match[2].split()
        if params and not self.session.extended:
            return "555 5.5.4 MAIL FROM parameters not recognized or not implemented"
        for param in params:
            key, _equals, value = param.partition("=")
            key = key.upper()
            if key == "SIZE":
                if not value.isdigit():
                    return "501 5.5.4 Syntax: MAIL FROM:<address> SIZE=<octets>"
                limit = self.options.max_message_size
                if limit and int(value) > limit:
                    return REPLY_TOO_MUCH_DATA
            elif key == "BODY":
                if value.upper() not in ("7BIT", "8BITMIME"):
                    return "501 5.5.4 Error: BODY can only be one of 7BIT, 8BITMIME"
            else:
                return "555 5.5.4 MAIL FROM parameters not recognized or not implemented"
        return self.handler.mail(self.session, self.envelope, address, params)

    def smtp_RCPT(self, arg: str):
        if not self.session.host_name:
            return "503 5.5.1 Error: send HELO first"
        if self.envelope.mail_from is None:
            return "503 5.5.1 Error: need MAIL command"
        match = _RCPT.match(arg)
        if match is None or not match[1].strip("<>").strip():
            return "501 5.5.4 Syntax: RCPT TO:<address>"
        if match[2].strip():
            return "555 5.5.4 RCPT TO parameters not recognized or not implemented"
        return self.handler.rcpt(self.session, self.envelope, match[1].strip("<>").strip())

    def smtp_DATA(self, arg: str) -> str:
        if not self.session.host_name:
            return "503 5.5.1 Error: send HELO first"
        if not self.envelope.rcpt_tos:
            return "503 5.5.1 Error: need RCPT command"
        if arg:
            return "501 5.5.4 Syntax: DATA"
        self._enter_data()
        return "354 End data with <CR><LF>.<CR><LF>"


class Listener:
    """The gateway's sessions on their own event loop, in a background thread."""

    def __init__(self, handler, *, host: str, port: int, reuse_port: bool = False) -> None:
        self.handler = handler
        self.host, self.port, self.reuse_port = host, port, reuse_port
        self.loop = new_event_loop()
        self.sessions: set[SMTPSession] = set()
        self.server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gateway-loop", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.server = self.loop.run_until_complete(
                self.loop.create_server(
                    lambda: SMTPSession(self),
                    host=self.host,
                    port=self.port,
                    reuse_port=self.reuse_port or None,
                    backlog=512,
                )
            )
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            self.loop.close()
            return
        self.port = self.server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self.loop.run_forever()
        finally:
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def stop_accepting(self) -> None:
        if self.server is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.server.close)

    def stop(self) -> None:
        """Close every session and stop the loop (``stop_accepting`` first to let them end)."""
        if self._thread is None or not self._thread.is_alive():
            return

        def shutdown() -> None:
            if self.server is not None:
                self.server.close()
            for session in list(self.sessions):
                if session.transport is not None:
                    session.transport.abort()
            self.loop.call_later(0.05, self.loop.stop)

        self.loop.call_soon_threadsafe(shutdown)
        self._thread.join(timeout=30)
