"""The pure parts of the SMTP client: next hop choice, reply classification, xtext."""

import pytest

from apps.delivery import smtp


def test_static_routes_win_over_the_relay(settings):
    settings.DELIVERY_ROUTES = "a.test=127.0.0.1:2526, B.test=[::1]:2527,broken"
    settings.DELIVERY_RELAY_HOST = "relay.local:10025"
    assert smtp.next_hops("a.test") == [smtp.Hop("127.0.0.1", 2526)]
    assert smtp.next_hops("b.test") == [smtp.Hop("::1", 2527)]
    assert smtp.next_hops("c.test") == [smtp.Hop("relay.local", 10025, relay=True)]


def test_the_relay_port_defaults_to_25(settings):
    settings.DELIVERY_ROUTES = ""
    settings.DELIVERY_RELAY_HOST = "relay.local"
    assert smtp.next_hops("x.test") == [smtp.Hop("relay.local", 25, relay=True)]


@pytest.mark.parametrize(
    ("code", "text", "kind", "enhanced"),
    [
        (250, b"2.0.0 Ok: queued as 4A1B", smtp.DELIVERED, "2.0.0"),
        (450, b"4.2.1 Mailbox busy", smtp.DEFERRED, "4.2.1"),
        (421, b"Service not available", smtp.DEFERRED, ""),
        (550, b"5.1.1 <x@y.fr>: User unknown", smtp.FAILED, "5.1.1"),
        (554, b"Transaction failed", smtp.FAILED, ""),
    ],
)
def test_replies_are_classified_per_recipient(code, text, kind, enhanced):
    outcome = smtp.classify(code, text)
    assert (outcome.kind, outcome.reply, outcome.enhanced) == (kind, code, enhanced)
    if kind != smtp.DELIVERED:
        assert str(code) in outcome.reason


def test_xtext_encodes_plus_equals_and_controls():
    assert smtp.xtext("a+b=c@d.fr") == "a+2Bb+3Dc@d.fr"
    assert smtp.xtext("é") == "+E9"


def test_a_failure_report_repeats_non_ascii_headers_as_ascii():
    """The original subject may be French (RFC 2047 words, or raw UTF-8 from a sloppy peer):
    the report's text/rfc822-headers part stays ASCII and the report always builds."""
    from datetime import UTC, datetime
    from email import policy
    from email.parser import BytesParser

    from apps.delivery.reports import FailedRecipient, build_failure_report

    encoded = b"Subject: =?utf-8?q?Message_s=C3=A9curis=C3=A9?=\r\nMessage-ID: <a@b>\r\n\r\nx\r\n"
    raw_utf8 = "Subject: Message sécurisé\r\nMessage-ID: <a@b>\r\n\r\nx\r\n".encode()
    for original in (encoded, raw_utf8):
        report = build_failure_report(
            reporting_mta="mx.test", postmaster="postmaster@test", to="a@test",
            original_raw=original, original_message_id="a@b", original_subject="Message sécurisé",
            arrival=datetime.now(UTC), date=datetime.now(UTC),
            failed=[FailedRecipient(address="x@y.test", reason="refusé", status="5.1.1",
                                    remote_mta="", diagnostic="550 no")],
        )  # fmt: skip
        parsed = BytesParser(policy=policy.default).parsebytes(report)
        headers_part = list(parsed.iter_parts())[2]
        text = headers_part.get_payload()
        text.encode("ascii")
        assert "=?utf-8?" in text.lower()
