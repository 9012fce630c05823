"""Structured health documents received with a message (IHE XDM + CDA R2).

Two steps around the filing transaction of ``services.message_deliver_raw``:
``documents_extract`` (before it: read the package, encrypt the PDF renditions; never raises)
and ``documents_attach`` (inside it: the ``HealthDocument`` rows, their rendition attachments,
the audit event). A package that cannot be read never stops the message from being filed: the
problem is noted on the document card instead.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass, field

from apps.attachments.services import blob_store
from apps.audit.events import Event
from apps.audit.services import record
from apps.ingestion import xdm
from apps.ingestion.parse import XDM_ATTACHMENT, ParsedMessage, safe_filename
from apps.mailbox.models import Attachment, HealthDocument, Message

logger = logging.getLogger(__name__)


@dataclass
class _Prepared:
    document: xdm.XdmDocument | None  # None: the package itself was refused
    problems: tuple[str, ...]
    rendition_attached: str = ""  # filename of the message's attachment that is the rendition
    rendition_blob: object = None  # a new StoredBlob when the PDF is not attached already


@dataclass
class DocumentExtraction:
    documents: list[_Prepared] = field(default_factory=list)
    rejected: bool = False


def documents_extract(*, parsed: ParsedMessage) -> DocumentExtraction | None:
    """Read the message's ``IHE_XDM.ZIP``, if any. Runs outside any transaction (the renditions
    are encrypted into storage here); ``None`` when the message carries no package."""
    if not parsed.has_xdm:
        return None
    part = next(a for a in parsed.attachments if a.filename.upper() == XDM_ATTACHMENT)
    try:
        package = xdm.read_xdm(
            part.payload, x_mss_codecda=parsed.x_mss_codecda, x_mss_ins=parsed.x_mss_ins
        )
    except xdm.XdmRejected as exc:
        logger.info("xdm package refused", extra={"problem": exc.code})
        return DocumentExtraction([_Prepared(None, (exc.code,))], rejected=True)
    except Exception:  # a bug must not cost the message: file it, note the problem
        logger.exception("xdm package unreadable")
        return DocumentExtraction([_Prepared(None, ("zip_unreadable",))], rejected=True)

    attached = {a.sha256: a.filename for a in parsed.attachments}
    extraction = DocumentExtraction()
    clinical = [d for d in package.documents if not d.is_signature] or list(package.documents)
    for index, document in enumerate(clinical):
        problems = (*(package.problems if index == 0 else ()), *document.problems)
        prepared = _Prepared(document, tuple(dict.fromkeys(problems)))
        if document.pdf:
            prepared.rendition_attached = attached.get(hashlib.sha256(document.pdf).hexdigest(), "")
            if not prepared.rendition_attached:
                prepared.rendition_blob = blob_store(source=io.BytesIO(document.pdf))
        extraction.documents.append(prepared)
    if not clinical:
        extraction.documents.append(_Prepared(None, package.problems or ("no_document",)))
    return extraction


def _rendition_name(document: xdm.XdmDocument) -> str:
    title = document.title or document.type_code.label or "document"
    return safe_filename(f"{title[:150]}.pdf", content_type="application/pdf", index=1)


def documents_attach(*, message: Message, extraction: DocumentExtraction) -> list[HealthDocument]:
    """Inside the filing transaction: one ``HealthDocument`` per document (or one carrying the
    refusal), each linked to its PDF rendition — the message's own attachment when it already
    carries the same PDF, else a new encrypted attachment."""
    wanted = [p.rendition_attached for p in extraction.documents if p.rendition_attached]
    attached = {}
    if wanted:
        for attachment in message.attachments.filter(filename__in=[n[:255] for n in wanted]):
            attached.setdefault(attachment.filename, attachment)
    rows = []
    for prepared in extraction.documents:
        document = prepared.document
        rendition = None
        if prepared.rendition_blob is not None:
            rendition = Attachment.objects.create(
                message=message,
                blob=prepared.rendition_blob,
                filename=_rendition_name(document)[:255],
                content_type="application/pdf",
                size=prepared.rendition_blob.size,
            )
        elif prepared.rendition_attached:
            rendition = attached.get(prepared.rendition_attached[:255])
        if document is None:
            row = HealthDocument(message=message, problems="\n".join(prepared.problems))
        else:
            patient, author, code = document.patient, document.author, document.type_code
            row = HealthDocument(
                message=message,
                patient_ins=patient.ins[:32],
                patient_ins_oid=patient.ins_oid[:64],
                patient_family_name=patient.family[:200],
                patient_given_names=patient.given[:200],
                patient_birth_date=patient.birth_date,
                patient_sex=patient.sex,
                author_idnat=author.idnat[:32],
                author_name=author.name[:200],
                institution=author.institution[:200],
                type_code=code.code[:64],
                type_label=code.label[:255],
                type_system=code.system[:64],
                title=document.title[:500],
                created_at=document.created_at,
                replaces_previous=document.replaces,
                hash_verified=document.hash_verified,
                problems="\n".join(prepared.problems),
                rendition=rendition,
            )
        rows.append(row)
    HealthDocument.objects.bulk_create(rows)
    record(
        event=Event.DOCUMENT_EXTRACTED,
        target=message,
        extra={
            "documents": sum(1 for p in extraction.documents if p.document is not None),
            "rejected": extraction.rejected,
            "hash_verified": all(r.hash_verified for r in rows),
            "problems": sum(len(p.problems) for p in extraction.documents),
        },
    )
    return rows
