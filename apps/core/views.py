from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apps.accounts import selectors as account_selectors
from apps.core import health
from apps.mailbox.selectors import mailboxes_for_user


def home(request: HttpRequest) -> HttpResponse:
    user = request.user
    return render(
        request,
        "core/home.html",
        {
            "mailboxes": mailboxes_for_user(user=user).select_related("domain"),
            **account_selectors.security_overview(
                user=user, session_key=request.session.session_key
            ),
        },
    )


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": health.check_database(), "broker": health.check_broker()}
    ok = all(value is None for value in checks.values())
    return JsonResponse(
        {
            "status": "ok" if ok else "unavailable",
            "checks": {name: error or "ok" for name, error in checks.items()},
        },
        status=200 if ok else 503,
    )
