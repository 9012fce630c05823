"""The user-facing views of the audit trail: "Mon activité" and a message's "Traçabilité"
(page, JSON and PDF exports). Reading is audited (``apps.audit.reporting``)."""

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apps.accounts.models import UserSession
from apps.audit import exports, reporting, selectors
from apps.audit import services as audit_services
from apps.audit.forms import ActivityFilterForm
from apps.audit.trace import recipient_lines, trace_steps
from apps.core.request_meta import RequestMeta
from apps.mailbox import selectors as mailbox_selectors


@never_cache
@require_GET
def activity_view(request: HttpRequest) -> HttpResponse:
    form = ActivityFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_bound and form.is_valid() else {}
    page = selectors.activity_for_user(
        user=request.user,
        group=filters.get("type") or "",
        date_from=filters.get("date_from"),
        date_to=filters.get("date_to"),
        before=filters.get("avant"),
    )
    if not filters.get("avant"):
        reporting.activity_viewed(user=request.user, meta=RequestMeta.from_request(request))
    query = request.GET.copy()
    query.pop("avant", None)
    return render(
        request,
        "audit/activity.html",
        {
            "form": form,
            "entries": page.entries,
            "next_cursor": page.next_cursor,
            "query": query.urlencode(),
            "active_sessions": UserSession.objects.filter(
                user=request.user, ended_at__isnull=True
            ).count(),
        },
    )


@never_cache
@require_GET
def trace_view(request: HttpRequest, message_id: int) -> HttpResponse:
    audit_services.seal()  # the hashes shown are the chain's, up to the last recorded event
    trace = selectors.message_trace(user=request.user, message_id=message_id)
    reporting.trace_viewed(
        user=request.user, message=trace.message, meta=RequestMeta.from_request(request)
    )
    return render(
        request,
        "audit/trace.html",
        {
            "message": trace.message,
            "trace": trace,
            "recipients": recipient_lines(trace),
            "steps": trace_steps(trace),
        },
    )


@never_cache
@require_GET
def trace_export_view(request: HttpRequest, message_id: int, export_format: str) -> HttpResponse:
    if export_format not in ("json", "pdf"):
        raise Http404
    message = mailbox_selectors.message_get_for_user(user=request.user, message_id=message_id)
    # Audited first: the export then carries its own row.
    reporting.trace_exported(
        user=request.user,
        message=message,
        export_format=export_format,
        meta=RequestMeta.from_request(request),
    )
    audit_services.seal()  # the hashes shown are the chain's, up to the last recorded event
    trace = selectors.message_trace(user=request.user, message_id=message_id)
    name = f"tracabilite-message-{message_id}"
    if export_format == "json":
        body = exports.trace_json_bytes(trace=trace, exported_by=request.user.email)
        response = HttpResponse(body, content_type="application/json; charset=utf-8")
    else:
        body = exports.trace_pdf(trace=trace, exported_by=request.user.email)
        response = HttpResponse(body, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{name}.{export_format}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response
