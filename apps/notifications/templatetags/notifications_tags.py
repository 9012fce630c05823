from django import template

from apps.notifications import selectors

register = template.Library()


@register.simple_tag
def urgent_unread(folder):
    """Unread urgent messages of ``folder`` (already access-checked by the view that shows it)."""
    return selectors.urgent_unread_messages(folder=folder)
