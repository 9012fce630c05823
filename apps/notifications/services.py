"""Alerting users of new mail: devices, preferences, and the notices themselves.

Nothing sent from here carries health data: a push says "Nouveau message sécurisé de Dr X" (or
only a count, if the user prefers), an e-mail or SMS only says "connectez-vous". Never a
subject, a body, an attachment name or a patient.
"""

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from apps.accounts.models import User
from apps.audit.events import Event
from apps.audit.services import record
from apps.core.exceptions import ApplicationError
from apps.core.request_meta import RequestMeta
from apps.mailbox.models import FolderKind, MailboxKind, Message
from apps.notifications import push, sms
from apps.notifications.conf import b64url_decode
from apps.notifications.devices import device_label
from apps.notifications.models import (
    DIGEST_INTERVAL_MINUTES,
    DigestChoice,
    EventChoice,
    MessageNotice,
    NoticeStatus,
    NotificationPreference,
    PushContent,
    PushSubscription,
)
from apps.notifications.selectors import inbox_unread_count, preference_for_user

logger = logging.getLogger(__name__)

NOTICE_RETENTION = timedelta(days=30)
# Senders whose name must not show on a lock screen: a patient's name is health data.
PATIENT_DOMAINS = ("patient.mssante.fr",)


class NotificationError(ApplicationError):
    pass


class SubscriptionRefused(NotificationError):
    pass


# --- Devices ----------------------------------------------------------------------------------


@transaction.atomic
def subscription_save(
    *,
    user: User,
    endpoint: str,
    p256dh: str,
    auth: str,
    user_agent: str = "",
    meta: RequestMeta | None = None,
) -> PushSubscription:
    """Register (or refresh) this browser's push subscription for ``user``. A browser profile has
    one endpoint: if someone else had registered it, it now alerts ``user`` only."""
    endpoint = endpoint.strip()
    if len(endpoint) > 1000 or not push.endpoint_allowed(endpoint):
        raise SubscriptionRefused(_("Ce service de notification n'est pas accepté."))
    try:
        key, secret = b64url_decode(p256dh), b64url_decode(auth)
    except (ValueError, TypeError):
        key, secret = b"", b""
    if len(key) != 65 or key[0] != 4 or len(secret) != 16:
        raise SubscriptionRefused(_("Les clés de l'abonnement sont invalides."))
    existing = PushSubscription.objects.filter(user=user).exclude(endpoint=endpoint).count()
    if existing >= settings.WEBPUSH_MAX_DEVICES:
        raise SubscriptionRefused(
            _("Au plus %(count)d appareils : retirez-en un d'abord.")
            % {"count": settings.WEBPUSH_MAX_DEVICES}
        )
    subscription, created = PushSubscription.objects.update_or_create(
        endpoint=endpoint,
        defaults={
            "user": user,
            "p256dh": p256dh,
            "auth": auth,
            "device_label": device_label(user_agent)[:120],
        },
    )
    if created:
        record(
            event=Event.NOTIFICATION_DEVICE_ADDED, actor=user, target=subscription, meta=meta,
            extra={"device": subscription.device_label},
        )  # fmt: skip
    logger.info(
        "push subscription saved", extra={"user_id": user.pk, "subscription_id": subscription.pk}
    )
    return subscription


@transaction.atomic
def subscription_delete(
    *, subscription: PushSubscription, actor: User | None = None, meta: RequestMeta | None = None
) -> None:
    """Forget a device: removed by its user (``actor``) or, with no actor, because the push
    service said the subscription is gone."""
    record(
        event=Event.NOTIFICATION_DEVICE_REMOVED, actor=actor, target=subscription, meta=meta,
        extra={"device": subscription.device_label, "by_user": actor is not None},
    )  # fmt: skip
    logger.info(
        "push subscription removed",
        extra={"user_id": subscription.user_id, "subscription_id": subscription.pk},
    )
    subscription.delete()


@transaction.atomic
def preference_save(
    *, preference: NotificationPreference, meta: RequestMeta | None = None
) -> NotificationPreference:
    """Save the preferences edited in the settings form (a new row on first save)."""
    preference.updated_at = timezone.now()
    preference.save()
    record(
        event=Event.NOTIFICATION_PREFERENCES_CHANGED, actor=preference.user, target=preference,
        meta=meta,
    )  # fmt: skip
    return preference


def push_test_send(*, user: User) -> int:
    """Send a test notification to each of the user's devices; returns how many were queued."""
    from apps.notifications import tasks

    with translation.override(settings.LANGUAGE_CODE):
        payload = {
            "title": settings.SITE_NAME,
            "body": _("Notification de test : vos alertes arrivent sur cet appareil."),
            "url": reverse("notifications:settings"),
            "tag": "mssweb-test",
            "urgent": False,
        }
    ids = list(PushSubscription.objects.filter(user=user).values_list("pk", flat=True))
    for subscription_id in ids:
        tasks.push_send.delay(subscription_id, payload)
    return len(ids)


# --- New mail ---------------------------------------------------------------------------------


def new_mail_notify(*, message_ids: list[int]) -> None:
    """Alert the people who can read these newly filed messages. Call it once they are stored;
    the work runs in a Celery task after the current transaction commits."""
    from apps.notifications import tasks

    ids = [int(i) for i in message_ids]
    if ids:
        transaction.on_commit(lambda: tasks.new_mail.delay(ids), robust=True)


def in_quiet_hours(*, preference: NotificationPreference, now: datetime) -> bool:
    start, end = preference.quiet_start, preference.quiet_end
    if start is None or end is None or start == end:
        return False
    local = timezone.localtime(now).time()  # TIME_ZONE: Europe/Paris
    if start < end:
        return start <= local < end
    return local >= start or local < end  # over midnight, e.g. 21:00 → 07:00


def _recipients(message: Message) -> list[int]:
    if message.mailbox.kind == MailboxKind.PERSONAL:
        return [message.mailbox.owner_id]
    return [m.user_id for m in message.mailbox.memberships.all()]


def _sender_label(message: Message) -> str | None:
    """The sender's display name, or None when it must not appear (a patient's mailbox)."""
    domain = message.from_address.rpartition("@")[2].lower()
    if (
        not domain
        or domain in PATIENT_DOMAINS
        or domain.endswith(tuple("." + d for d in PATIENT_DOMAINS))
    ):
        return None
    return " ".join((message.from_name or message.from_address).split())[:80]


def push_payload(
    *, user: User, preference: NotificationPreference, messages: list[Message]
) -> dict:
    """What the device shows: a sender name or only a count, and where a tap leads (the message,
    after login). No subject, no body."""
    urgent = any(m.is_urgent for m in messages)
    with translation.override(settings.LANGUAGE_CODE):
        sender = _sender_label(messages[0]) if len(messages) == 1 else None
        if sender and preference.push_content == PushContent.SENDER:
            if urgent:
                body = _("Message urgent de %(sender)s") % {"sender": sender}
            else:
                body = _("Nouveau message sécurisé de %(sender)s") % {"sender": sender}
        elif urgent:
            body = ngettext(
                "%(count)d nouveau message sécurisé, urgent",
                "%(count)d nouveaux messages sécurisés, dont au moins un urgent",
                len(messages),
            ) % {"count": len(messages)}
        else:
            body = ngettext(
                "%(count)d nouveau message sécurisé",
                "%(count)d nouveaux messages sécurisés",
                len(messages),
            ) % {"count": len(messages)}
        if len(messages) == 1:
            url = reverse("mailbox:message", args=[messages[0].pk])
        elif len({m.mailbox_id for m in messages}) == 1:
            url = reverse("mailbox:folder", args=[messages[0].mailbox_id, FolderKind.INBOX])
        else:
            url = reverse("mailbox:index")
        title = (
            _("Urgent — %(site)s") % {"site": settings.SITE_NAME} if urgent else settings.SITE_NAME
        )
    return {
        "title": title,
        "body": body,
        "url": url,
        "tag": "mssweb-urgent" if urgent else "mssweb-new-mail",
        "urgent": urgent,
        "unread": inbox_unread_count(user=user),
    }


def _claim(*, user_id: int, message: Message, status: str) -> bool:
    """Record the notice owed for (user, message); False if it was already handled (a task
    that runs twice alerts once)."""
    try:
        with transaction.atomic():
            MessageNotice.objects.create(
                user_id=user_id, message=message, urgent=message.is_urgent, status=status
            )
    except IntegrityError:
        return False
    return True


def _send_now(*, user: User, preference: NotificationPreference, messages: list[Message]) -> None:
    """Queue the pushes (and, for urgent mail, the opted-in e-mail/SMS notices) after commit."""
    from apps.notifications import tasks

    payload = push_payload(user=user, preference=preference, messages=messages)
    subscription_ids = (
        list(PushSubscription.objects.filter(user=user).values_list("pk", flat=True))
        if preference.push_enabled
        else []
    )
    channels = []
    if any(m.is_urgent for m in messages):
        if preference.email_enabled and preference.personal_email:
            channels.append("email")
        if preference.sms_enabled and preference.phone:
            channels.append("sms")

    def enqueue() -> None:
        for subscription_id in subscription_ids:
            tasks.push_send.delay(subscription_id, payload)
        for channel in channels:
            tasks.urgent_notice.delay(user.pk, channel)

    transaction.on_commit(enqueue, robust=True)


@transaction.atomic
def new_mail_dispatch(*, message_ids: list[int], now: datetime | None = None) -> int:
    """Decide, per recipient and per message, to alert now, hold (digest, quiet hours) or not
    at all; returns the number of notices recorded. Urgent mail skips digest and quiet hours."""
    now = now or timezone.now()
    messages = list(
        Message.objects.filter(pk__in=message_ids, folder__kind=FolderKind.INBOX)
        .select_related("mailbox")
        .prefetch_related("mailbox__memberships")
        .only("id", "from_name", "from_address", "is_urgent", "is_read", "mailbox_id",
              "mailbox__kind", "mailbox__owner_id")
    )  # fmt: skip
    per_user: dict[int, list[Message]] = defaultdict(list)
    for message in messages:
        for user_id in _recipients(message):
            per_user[user_id].append(message)
    users = {u.pk: u for u in User.objects.filter(pk__in=per_user, is_active=True)}
    prefs = {p.user_id: p for p in NotificationPreference.objects.filter(user_id__in=users)}
    recorded = 0
    for user_id, user_messages in per_user.items():
        user = users.get(user_id)
        if user is None:
            continue
        preference = prefs.get(user_id) or NotificationPreference(user=user)
        quiet = in_quiet_hours(preference=preference, now=now)
        now_list = []
        for message in user_messages:
            wanted = preference.events == EventChoice.ALL or (
                preference.events == EventChoice.URGENT and message.is_urgent
            )
            if not wanted or message.is_read:
                status = NoticeStatus.SKIPPED
            elif message.is_urgent:
                status = NoticeStatus.SENT
            elif quiet or preference.digest != DigestChoice.IMMEDIATE:
                status = NoticeStatus.HELD
            else:
                status = NoticeStatus.SENT
            if _claim(user_id=user_id, message=message, status=status):
                recorded += 1
                if status == NoticeStatus.SENT:
                    now_list.append(message)
        if now_list:
            _send_now(user=user, preference=preference, messages=now_list)
    logger.info("new mail notices", extra={"messages": len(messages), "notices": recorded})
    return recorded


@transaction.atomic
def digest_flush(*, now: datetime | None = None) -> int:
    """Send the held notices of users whose digest is due and who are not in quiet hours (one
    push per user, a count); returns the number of users alerted. Run by beat every 5 minutes."""
    now = now or timezone.now()
    MessageNotice.objects.filter(created_at__lt=now - NOTICE_RETENTION).exclude(
        status=NoticeStatus.HELD
    ).delete()
    user_ids = set(
        MessageNotice.objects.filter(status=NoticeStatus.HELD).values_list("user_id", flat=True)
    )
    prefs = {p.user_id: p for p in NotificationPreference.objects.filter(user_id__in=user_ids)}
    alerted = 0
    for user in User.objects.filter(pk__in=user_ids, is_active=True):
        preference = prefs.get(user.pk) or NotificationPreference(user=user)
        if in_quiet_hours(preference=preference, now=now):
            continue
        interval = timedelta(minutes=DIGEST_INTERVAL_MINUTES.get(preference.digest, 0))
        if preference.last_digest_at and now - preference.last_digest_at < interval:
            continue
        held = list(
            MessageNotice.objects.select_for_update()
            .filter(user=user, status=NoticeStatus.HELD)
            .select_related("message")
        )
        unread = [n.message for n in held if not n.message.is_read]
        MessageNotice.objects.filter(pk__in=[n.pk for n in held]).update(status=NoticeStatus.SENT)
        if not unread:
            continue
        if preference.pk:
            preference.last_digest_at = now
            preference.save(update_fields=["last_digest_at"])
        _send_now(user=user, preference=_count_only(preference), messages=unread)
        alerted += 1
    return alerted


def _count_only(preference: NotificationPreference) -> NotificationPreference:
    """A digest lists no senders: a copy of the preferences that shows a count."""
    copy = NotificationPreference(
        user_id=preference.user_id,
        push_enabled=preference.push_enabled,
        push_content=PushContent.COUNT,
        email_enabled=preference.email_enabled,
        personal_email=preference.personal_email,
        sms_enabled=preference.sms_enabled,
        phone=preference.phone,
    )
    return copy


# --- Delivery (called by tasks) ---------------------------------------------------------------


def push_deliver(*, subscription_id: int, payload: dict) -> None:
    """Post one push. A subscription the push service no longer knows (404/410) is deleted;
    other failures raise ``push.PushFailed`` for the task to retry."""
    subscription = PushSubscription.objects.filter(pk=subscription_id).first()
    if subscription is None:
        return
    try:
        push.push_send_raw(
            endpoint=subscription.endpoint,
            p256dh=subscription.p256dh,
            auth=subscription.auth,
            payload=payload,
            urgent=bool(payload.get("urgent")),
        )
    except push.PushGone:
        logger.info("push subscription expired", extra={"subscription_id": subscription_id})
        subscription_delete(subscription=subscription)
        return
    except push.PushFailed as exc:
        logger.warning(
            "push failed", extra={"subscription_id": subscription_id, "error": exc.message}
        )
        raise
    PushSubscription.objects.filter(pk=subscription_id).update(last_success_at=timezone.now())


def urgent_notice_send(*, user_id: int, channel: str) -> None:
    """Tell the user, on their personal address or phone, that an urgent secure message waits:
    "connectez-vous", nothing else. Raises ``sms.SmsError`` (retried) if the gateway fails."""
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        return
    preference = preference_for_user(user=user)
    login_url = settings.SITE_URL + reverse("accounts:login")
    with translation.override(settings.LANGUAGE_CODE):
        text = _(
            "%(site)s : un message sécurisé urgent vous attend. Connectez-vous pour le lire : "
            "%(url)s"
        ) % {"site": settings.SITE_NAME, "url": login_url}
        if channel == "email" and preference.email_enabled and preference.personal_email:
            from django.core.mail import send_mail

            subject = _("%(site)s : message urgent en attente") % {"site": settings.SITE_NAME}
            send_mail(
                subject, text + "\n", settings.DEFAULT_FROM_EMAIL, [preference.personal_email]
            )
        elif channel == "sms" and preference.sms_enabled and preference.phone:
            sms.sms_send(phone=preference.phone, text=text)
        else:
            return
    logger.info("urgent notice sent", extra={"user_id": user_id, "channel": channel})
