"""The SMTP client of outbound delivery: next hop, TLS (mandatory STARTTLS, TLS ≥ 1.2, client
certificate, chain checked against the CA bundle, peer DN checked against the trust list), and
one transaction per message with a result per recipient.

Nothing here touches the database except the trust list look-up, which the caller makes outside
any transaction: an SMTP conversation never holds a transaction open.
"""

from __future__ import annotations

import logging
import re
import smtplib  # noqa: TID251 - SMTP lives in apps/delivery
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

import dns.exception
import dns.resolver
from django.conf import settings
from django.utils.translation import gettext as _

from apps.core.exceptions import ApplicationError
from apps.trustlist.dn import dn_of_certificate

logger = logging.getLogger(__name__)

DELIVERED, DEFERRED, FAILED = "delivered", "deferred", "failed"
_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})\b")


class DeliveryError(ApplicationError):
    """The whole conversation with a domain failed before any per-recipient answer.

    ``permanent`` is True only when retrying cannot help (the domain does not exist)."""

    def __init__(
        self, message: str, *, reply: int | None = None, enhanced: str = "",
        permanent: bool = False, remote: str = "",
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.reply = reply
        self.enhanced = enhanced
        self.permanent = permanent
        self.remote = remote


@dataclass(frozen=True)
class Hop:
    host: str
    port: int
    relay: bool = False  # our own relay (Postfix): it checks the peer itself


@dataclass(frozen=True)
class Outcome:
    """What became of one recipient in one attempt."""

    kind: str  # DELIVERED, DEFERRED or FAILED
    reason: str  # French, shown to the sender; never message content
    reply: int | None = None
    enhanced: str = ""
    remote: str = ""  # the peer's reply text (one line, short), for delivery-status reports


# --- next hop ---------------------------------------------------------------------------------


def _host_port(text: str, default_port: int = 25) -> tuple[str, int]:
    text = text.strip()
    if text.startswith("["):  # [IPv6]:port
        host, _sep, rest = text[1:].partition("]")
        port = rest.lstrip(":")
    else:
        host, _sep, port = text.rpartition(":") if ":" in text else (text, "", "")
    return host, int(port) if port else default_port


def static_routes() -> dict[str, tuple[str, int]]:
    """``DELIVERY_ROUTES`` = ``"domain=host:port,domain2=host:port"``."""
    routes = {}
    for item in settings.DELIVERY_ROUTES.split(","):
        domain, sep, target = item.partition("=")
        if sep and domain.strip() and target.strip():
            routes[domain.strip().lower()] = _host_port(target)
    return routes


def next_hops(domain: str, *, external: bool = False) -> list[Hop]:
    """Where to connect for ``domain``, in order of preference. Mail outside the trust space
    (``external``) goes through ``EXTERNAL_RELAY_HOST`` when set, never the MSSanté relay."""
    route = static_routes().get(domain.lower())
    if route:
        return [Hop(*route)]
    relay = settings.EXTERNAL_RELAY_HOST if external else settings.DELIVERY_RELAY_HOST
    if relay:
        return [Hop(*_host_port(relay), relay=True)]
    try:
        answer = dns.resolver.resolve(domain, "MX", lifetime=settings.DELIVERY_SMTP_TIMEOUT)
    except dns.resolver.NXDOMAIN as exc:
        raise DeliveryError(
            _("le domaine %(domain)s n'existe pas") % {"domain": domain}, permanent=True,
            enhanced="5.1.2",
        ) from exc  # fmt: skip
    except dns.resolver.NoAnswer:
        return [Hop(domain, 25)]  # no MX: the domain itself (RFC 5321, 5.1)
    except dns.exception.DNSException as exc:
        raise DeliveryError(
            _("le serveur de messagerie du domaine %(domain)s est introuvable pour l'instant")
            % {"domain": domain}
        ) from exc
    records = sorted(answer, key=lambda r: r.preference)
    hosts = [str(r.exchange).rstrip(".") for r in records]
    if hosts == [""]:  # "null MX" (RFC 7505): the domain accepts no mail
        raise DeliveryError(
            _("le domaine %(domain)s ne reçoit pas de courrier") % {"domain": domain},
            permanent=True, enhanced="5.1.10",
        )  # fmt: skip
    return [Hop(host, 25) for host in hosts if host]


# --- TLS --------------------------------------------------------------------------------------


def tls_context(*, check_hostname: bool | None = None, external: bool = False) -> ssl.SSLContext:
    """Outside the trust space (``external``): the system roots (or ``EXTERNAL_CA_BUNDLE``),
    no client certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = (
        settings.DELIVERY_TLS_CHECK_HOSTNAME if check_hostname is None else check_hostname
    )
    context.verify_mode = ssl.CERT_REQUIRED
    if external:
        if settings.EXTERNAL_CA_BUNDLE:
            context.load_verify_locations(cafile=settings.EXTERNAL_CA_BUNDLE)
        else:
            context.load_default_certs()
        return context
    if settings.DELIVERY_CA_BUNDLE:
        context.load_verify_locations(cafile=settings.DELIVERY_CA_BUNDLE)
    else:
        context.load_default_certs()
    if settings.DELIVERY_CLIENT_CERT:
        context.load_cert_chain(settings.DELIVERY_CLIENT_CERT, settings.DELIVERY_CLIENT_KEY or None)
    return context


# --- the conversation -------------------------------------------------------------------------


def _text(message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return " ".join(text.split())[:200]


def _enhanced(message: bytes | str) -> str:
    match = _ENHANCED.match(_text(message))
    return match.group(1) if match else ""


def xtext(value: str) -> str:
    """RFC 3461 xtext, for ``ORCPT=rfc822;…``."""
    return "".join(c if 33 <= ord(c) <= 126 and c not in "+=" else f"+{ord(c):02X}" for c in value)


def classify(code: int, message: bytes | str) -> Outcome:
    """A reply to one recipient (RCPT, or the end of DATA) as an outcome."""
    enhanced = _enhanced(message)
    remote = _text(message)
    label = f"{code} {enhanced}".strip()
    if 200 <= code < 300:
        return Outcome(DELIVERED, "", code, enhanced, remote)
    if 400 <= code < 500:
        return Outcome(
            DEFERRED, _("refus temporaire du serveur distant (%(reply)s)") % {"reply": label},
            code, enhanced, remote,
        )  # fmt: skip
    return Outcome(
        FAILED, _("refusé par le serveur distant (%(reply)s)") % {"reply": label},
        code, enhanced, remote,
    )  # fmt: skip


def _connection_error(exc: BaseException) -> DeliveryError:
    if isinstance(exc, smtplib.SMTPServerDisconnected) and isinstance(
        exc.__context__, TimeoutError | socket.timeout
    ):  # smtplib turns a read time-out into a disconnection
        return DeliveryError(_("le serveur distant ne répond pas (délai dépassé)"))
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return DeliveryError(_("connexion interrompue par le serveur distant"))
    if isinstance(exc, TimeoutError | socket.timeout):
        return DeliveryError(_("le serveur distant ne répond pas (délai dépassé)"))
    if isinstance(exc, ssl.SSLCertVerificationError):
        return DeliveryError(
            _("certificat du serveur distant refusé (chaîne de certification non reconnue)")
        )
    if isinstance(exc, ssl.SSLError):
        return DeliveryError(_("échec de la négociation TLS avec le serveur distant"))
    if isinstance(exc, smtplib.SMTPResponseException):
        return DeliveryError(
            _("le serveur distant a refusé la connexion (%(reply)s)")
            % {"reply": f"{exc.smtp_code} {_enhanced(exc.smtp_error)}".strip()},
            reply=exc.smtp_code, enhanced=_enhanced(exc.smtp_error),
            remote=_text(exc.smtp_error),
        )  # fmt: skip
    return DeliveryError(_("connexion impossible au serveur distant"))


class Session:
    """One verified SMTP connection to the next hop of a domain (a context manager)."""

    def __init__(self, smtp: smtplib.SMTP, hop: Hop) -> None:
        self.smtp = smtp
        self.hop = hop

    @property
    def dsn(self) -> bool:
        return self.smtp.has_extn("dsn")

    def close(self) -> None:
        try:
            self.smtp.quit()
        except (smtplib.SMTPException, OSError):
            self.smtp.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def send(
        self, *, envelope_from: str, recipients: Sequence[str], raw: bytes, dsn: bool = False
    ) -> dict[str, Outcome]:
        """One mail transaction. Connection trouble mid-way raises ``DeliveryError``: the
        recipients with no final answer yet are then deferred by the caller (the message may
        have arrived when the peer drops after the data: that window is ambiguous, and retrying
        may duplicate rather than lose)."""
        smtp = self.smtp
        use_dsn = dsn and self.dsn
        try:
            code, reply = smtp.mail(envelope_from, ["RET=HDRS"] if use_dsn else [])
            if code != 250:
                if code == 421:
                    raise DeliveryError(
                        _("le serveur distant a fermé la connexion (421)"), reply=code
                    )
                outcome = classify(code, reply)
                smtp.rset()
                return dict.fromkeys(recipients, outcome)
            outcomes: dict[str, Outcome] = {}
            accepted = []
            for address in recipients:
                options = (
                    ["NOTIFY=SUCCESS,FAILURE", f"ORCPT=rfc822;{xtext(address)}"] if use_dsn else []
                )
                code, reply = smtp.rcpt(address, options)
                if code in (250, 251):
                    accepted.append(address)
                else:
                    outcomes[address] = classify(code, reply)
            if not accepted:
                smtp.rset()
                return outcomes
            try:
                code, reply = smtp.data(raw)
            except smtplib.SMTPDataError as exc:  # DATA itself refused
                code, reply = exc.smtp_code, exc.smtp_error
            outcome = classify(code, reply)
            outcomes.update(dict.fromkeys(accepted, outcome))
            return outcomes
        except DeliveryError:
            raise
        except (smtplib.SMTPException, OSError) as exc:
            raise _connection_error(exc) from exc


def open_session(
    *, domain: str, hop: Hop, trusted: frozenset[str], external: bool = False
) -> Session:
    """Connect, require STARTTLS, verify the peer (chain and host name by the TLS context; the
    subject DN against ``trusted``, the trust list's DNs for ``domain``), say EHLO again.

    ``external`` (outside the trust space): no DN check; STARTTLS required unless
    ``EXTERNAL_REQUIRE_TLS`` is off."""
    timeout = settings.DELIVERY_SMTP_TIMEOUT
    try:
        # Connecting here makes smtplib remember the host: STARTTLS checks the certificate
        # against that name.
        smtp = smtplib.SMTP(
            hop.host, hop.port, local_hostname=settings.DELIVERY_EHLO_NAME, timeout=timeout
        )
    except (smtplib.SMTPException, OSError) as exc:
        raise _connection_error(exc) from exc
    try:
        # Without it, the last TLS record of each message waits for the peer's delayed ACK
        # (Nagle): ≈ 40 ms per message, whatever its size.
        smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        smtp.ehlo()
        if not smtp.has_extn("starttls"):
            if external and not settings.EXTERNAL_REQUIRE_TLS:
                return Session(smtp, hop)
            if not external and hop.relay and not settings.DELIVERY_RELAY_REQUIRE_TLS:
                return Session(smtp, hop)
            raise DeliveryError(_("le serveur distant ne propose pas le chiffrement (STARTTLS)"))
        smtp.starttls(context=tls_context(external=external))
        if not hop.relay and not external:
            der = smtp.sock.getpeercert(binary_form=True)
            if not der or dn_of_certificate(der) not in trusted:
                raise DeliveryError(
                    _("certificat du serveur distant non reconnu par la liste de confiance")
                )
        smtp.ehlo()
    except DeliveryError:
        smtp.close()
        raise
    except (smtplib.SMTPException, OSError, ValueError) as exc:
        logger.info("delivery: connection trouble", extra={"problem": type(exc).__name__})
        smtp.close()
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            raise DeliveryError(
                _("le serveur distant ne propose pas le chiffrement (STARTTLS)")
            ) from exc
        raise _connection_error(exc) from exc
    return Session(smtp, hop)


def connect(*, domain: str, trusted: frozenset[str], external: bool = False) -> Session:
    """A verified session with the first next hop of ``domain`` that answers properly."""
    last: DeliveryError | None = None
    for hop in next_hops(domain, external=external):
        try:
            return open_session(domain=domain, hop=hop, trusted=trusted, external=external)
        except DeliveryError as exc:
            logger.info(
                "delivery: next hop refused", extra={"domain": domain, "port": hop.port,
                                                      "problem": exc.message},
            )  # fmt: skip
            last = exc
    raise last or DeliveryError(_("aucun serveur de messagerie pour ce domaine"))
