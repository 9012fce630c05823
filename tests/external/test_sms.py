"""The HTTP SMS backend against a real local HTTP server shaped like a French SMS API."""

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from apps.notifications.sms import SmsError, sms_send


class SmsApi(BaseHTTPRequestHandler):
    status = 201
    requests: list = []

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        SmsApi.requests.append(
            {"path": self.path, "headers": dict(self.headers), "body": self.rfile.read(length)}
        )
        self.send_response(SmsApi.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    def log_message(self, *args):
        pass


@pytest.fixture
def sms_api(settings):
    SmsApi.requests = []
    SmsApi.status = 201
    server = ThreadingHTTPServer(("127.0.0.1", 0), SmsApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.SMS_BACKEND = "apps.notifications.sms.HttpBackend"
    settings.SMS_HTTP_URL = f"http://127.0.0.1:{server.server_port}/v1/sms"
    settings.SMS_HTTP_TOKEN = "tok-123"
    settings.SMS_HTTP_SENDER = "CABINET"
    settings.SMS_HTTP_FORMAT = "json"
    settings.SMS_HTTP_TIMEOUT = 2
    yield SmsApi
    server.shutdown()
    server.server_close()


def test_json_request_with_token_sender_and_number(sms_api):
    sms_send(phone="+33612345678", text="Votre code : 123456")
    [request] = sms_api.requests
    assert request["path"] == "/v1/sms"
    assert request["headers"]["Authorization"] == "Bearer tok-123"
    assert request["headers"]["Content-Type"] == "application/json"
    assert json.loads(request["body"]) == {
        "sender": "CABINET", "recipients": ["+33612345678"], "message": "Votre code : 123456",
    }  # fmt: skip


def test_form_request(sms_api, settings):
    settings.SMS_HTTP_FORMAT = "form"
    sms_send(phone="+33612345678", text="Code : 1")
    body = urllib.parse.parse_qs(sms_api.requests[0]["body"].decode())
    assert body == {"sender": ["CABINET"], "recipients": ["+33612345678"], "message": ["Code : 1"]}


def test_a_refusal_raises(sms_api):
    sms_api.status = 401
    with pytest.raises(SmsError, match="401"):
        sms_send(phone="+33612345678", text="x")


def test_an_unreachable_gateway_raises(settings):
    settings.SMS_BACKEND = "apps.notifications.sms.HttpBackend"
    settings.SMS_HTTP_URL = "http://127.0.0.1:9/"  # discard port: nothing listens
    settings.SMS_HTTP_TIMEOUT = 2
    with pytest.raises(SmsError):
        sms_send(phone="+33612345678", text="x")


def test_no_url_configured_raises(settings):
    settings.SMS_BACKEND = "apps.notifications.sms.HttpBackend"
    settings.SMS_HTTP_URL = ""
    with pytest.raises(SmsError):
        sms_send(phone="+33612345678", text="x")
