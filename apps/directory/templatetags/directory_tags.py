from urllib.parse import urlencode

from django import template
from django.urls import NoReverseMatch, reverse

register = template.Library()


@register.simple_tag
def compose_url(address: str) -> str:
    """The compose page with ``address`` as recipient, once the webmail provides one."""
    try:
        return f"{reverse('mailbox:compose')}?{urlencode({'to': address})}"
    except NoReverseMatch:
        return ""
