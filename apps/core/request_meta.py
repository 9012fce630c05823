"""What services need to know of a request, without being given the request itself."""

from dataclasses import dataclass

from django.http import HttpRequest

USER_AGENT_MAX = 300


@dataclass(frozen=True, slots=True)
class RequestMeta:
    ip: str | None = None
    user_agent: str = ""
    session_key: str | None = None

    @classmethod
    def from_request(cls, request: HttpRequest) -> "RequestMeta":
        session = getattr(request, "session", None)
        return cls(
            ip=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:USER_AGENT_MAX],
            session_key=session.session_key if session is not None else None,
        )


def client_ip(request: HttpRequest) -> str | None:
    """The client address. Behind a proxy (DJANGO_BEHIND_PROXY), the proxy's X-Forwarded-For
    last hop is trusted; otherwise REMOTE_ADDR only, so a client cannot forge its address."""
    from django.conf import settings

    if getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[-1].strip() or None
    return request.META.get("REMOTE_ADDR") or None
