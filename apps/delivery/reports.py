"""Build the reports this operator writes — pure functions returning RFC 5322 bytes:

- a delivery-status report (RFC 3464) for the sender when a message could not be delivered;
- a read receipt (message disposition notification, RFC 8098) for a sender who asked for one.

Both are ``multipart/report``: readable French text first, then the machine-readable part, then
the original message's headers (never its body).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import format_datetime

from apps.ingestion.build import PARIS, SMTP_POLICY, make_message_id

# Headers of the original message repeated in a report (RFC 3464 RET=HDRS spirit: no body).
ORIGINAL_HEADERS = ("From", "To", "Cc", "Subject", "Date", "Message-ID")


@dataclass(frozen=True)
class FailedRecipient:
    address: str
    status: str  # enhanced status, e.g. "5.1.1"
    reason: str  # French
    remote_mta: str = ""
    diagnostic: str = ""  # the peer's reply, e.g. "550 5.1.1 User unknown"


def original_headers(raw: bytes) -> str:
    """The headers of ``raw`` worth repeating, one per line (CRLF), unfolded."""
    # compat32 keeps each value as it travelled (RFC 2047 encoded words untouched): the part is
    # text/rfc822-headers, plain ASCII, whatever language the subject was written in.
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
    lines = []
    for name in ORIGINAL_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        value = " ".join(str(value).split())
        try:
            value.encode("ascii")
        except UnicodeEncodeError:  # raw 8-bit (UTF-8) header: encode it as RFC 2047 words
            value = Header(_eight_bit_text(value), "utf-8").encode()
        lines.append(f"{name}: {value}")
    return "\r\n".join(lines) + "\r\n"


def _eight_bit_text(value: str) -> str:
    """The text of a header that travelled as raw 8-bit bytes (read as escaped or Latin-1
    characters by the parser), assuming UTF-8 as peers send it."""
    for encoding, errors in (("ascii", "surrogateescape"), ("latin-1", "strict")):
        try:
            return value.encode(encoding, errors).decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            continue
    return value


def _block(**fields: str) -> Message:
    block = Message(policy=SMTP_POLICY)
    for name, value in fields.items():
        if value:
            block[name.replace("_", "-")] = " ".join(value.split())
    return block


def _report(kind: str, text: str, machine: EmailMessage, headers: str) -> EmailMessage:
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["MIME-Version"] = "1.0"
    msg["Content-Type"] = f"multipart/report; report-type={kind}"
    human = EmailMessage(policy=SMTP_POLICY)
    human.set_content(text, subtype="plain", charset="utf-8")
    del human["MIME-Version"]
    msg.attach(human)
    msg.attach(machine)
    original = EmailMessage(policy=SMTP_POLICY)
    original["Content-Type"] = "text/rfc822-headers"
    original.set_payload(headers)
    msg.attach(original)
    return msg


def _when(date: datetime) -> str:
    return date.astimezone(PARIS).strftime("%d/%m/%Y à %H:%M")


def build_failure_report(
    *,
    reporting_mta: str,
    postmaster: str,
    to: str,
    original_raw: bytes,
    original_message_id: str,
    original_subject: str,
    arrival: datetime,
    failed: Sequence[FailedRecipient],
    date: datetime,
) -> bytes:
    """The report filed in the sender's inbox when ``failed`` recipients could not be reached."""
    lines = [
        "Votre message n'a pas pu être remis à tous ses destinataires.",
        "",
        f"Message : « {original_subject or '(sans objet)'} », envoyé le {_when(arrival)}.",
        "",
    ]
    for item in failed:
        lines.append(f"- {item.address} : {item.reason}")
    lines += [
        "",
        "Vérifiez l'adresse ou réessayez plus tard ; les autres destinataires ne sont pas "
        "concernés.",
        "",
        "-- ",
        f"Le service de messagerie de {reporting_mta}",
    ]
    machine = EmailMessage(policy=SMTP_POLICY)
    machine["Content-Type"] = "message/delivery-status"
    blocks = [_block(Reporting_MTA=f"dns; {reporting_mta}", Arrival_Date=format_datetime(arrival))]
    for item in failed:
        blocks.append(
            _block(
                Final_Recipient=f"rfc822; {item.address}",
                Original_Recipient=f"rfc822; {item.address}",
                Action="failed",
                Status=item.status or "5.0.0",
                Remote_MTA=f"dns; {item.remote_mta}" if item.remote_mta else "",
                Diagnostic_Code=f"smtp; {item.diagnostic}" if item.diagnostic else "",
                Last_Attempt_Date=format_datetime(date),
            )
        )
    machine.set_payload(blocks)
    msg = _report("delivery-status", "\n".join(lines) + "\n", machine,
                  original_headers(original_raw))  # fmt: skip
    msg["From"] = f"Service de messagerie <{postmaster}>"
    msg["To"] = to
    msg["Subject"] = f"Non remis : {' '.join(original_subject.split())}"[:300]
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = f"<{make_message_id(reporting_mta)}>"
    msg["In-Reply-To"] = f"<{original_message_id}>"
    msg["References"] = f"<{original_message_id}>"
    msg["Auto-Submitted"] = "auto-replied"
    return msg.as_bytes()


def build_read_receipt(
    *,
    from_: tuple[str, str],
    to: str,
    reporting_ua: str,
    original_raw: bytes,
    original_message_id: str,
    original_subject: str,
    original_date: datetime,
    automatic: bool,
    date: datetime,
    message_id: str | None = None,
) -> bytes:
    """An RFC 8098 read receipt: the message was displayed to ``from_`` (its recipient)."""
    name, address = from_
    subject = " ".join(original_subject.split())
    text = (
        f"Le message « {subject or '(sans objet)'} » que vous avez envoyé le "
        f"{_when(original_date)} à {address} a été affiché le {_when(date)}.\n\n"
        "Cet accusé de lecture indique seulement que le message a été ouvert : il ne dit pas "
        "qu'il a été lu en entier ni compris.\n"
    )
    machine = EmailMessage(policy=SMTP_POLICY)
    machine["Content-Type"] = "message/disposition-notification"
    mode = (
        "automatic-action/MDN-sent-automatically" if automatic
        else "manual-action/MDN-sent-manually"
    )  # fmt: skip
    fields = [
        f"Reporting-UA: {reporting_ua}; mssweb",
        f"Final-Recipient: rfc822; {address}",
        f"Original-Message-ID: <{original_message_id}>",
        f"Disposition: {mode}; displayed",
    ]
    machine.set_payload("\r\n".join(fields) + "\r\n")
    msg = _report("disposition-notification", text, machine, original_headers(original_raw))
    msg["From"] = f"{' '.join(name.split())} <{address}>" if name else address
    msg["To"] = to
    msg["Subject"] = f"Accusé de lecture : {subject}"[:300]
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = f"<{message_id or make_message_id(address.rpartition('@')[2])}>"
    msg["In-Reply-To"] = f"<{original_message_id}>"
    msg["References"] = f"<{original_message_id}>"
    if automatic:
        msg["Auto-Submitted"] = "auto-replied"
    return msg.as_bytes()
