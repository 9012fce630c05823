"""Anchoring: the signed head written outside the database detects a rewritten chain."""

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from io import StringIO
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from apps.audit.anchors import (
    anchor_private_key,
    anchor_signature_valid,
    chain_anchor,
    key_id,
    load_private_key,
    load_public_key,
)
from apps.audit.chain import GENESIS_HASH, HASHED_FIELDS, compute_row_hash
from apps.audit.events import Event
from apps.audit.models import AuditEvent
from apps.audit.services import record, seal
from apps.audit.testing import chain_rows, sealed
from tests.audit.conftest import rows_delete, verify, verify_fails


@pytest.fixture
def operator_key(settings, tmp_path):
    key = Ed25519PrivateKey.generate()
    settings.AUDIT_ANCHOR_KEY = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    settings.AUDIT_ANCHOR_DIR = str(tmp_path / "anchors")
    settings.AUDIT_ANCHOR_URL = ""
    return key


@pytest.fixture
def chain(db, operator_key) -> list[AuditEvent]:
    return sealed(*[
        record(event=Event.LOGIN_SUCCEEDED, actor_label=f"user{n}@example.org", extra={"n": n})
        for n in range(1, 6)
    ])  # fmt: skip


def anchor_lines(settings) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted(Path(settings.AUDIT_ANCHOR_DIR).glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def rewrite_whole_chain(tamper) -> None:
    """What someone with the database could do: change a row and rehash every row after it,
    so that the chain alone still verifies."""
    prev_hash = GENESIS_HASH
    for row in chain_rows():
        if row["seq"] == 2:
            row["actor_label"] = "someone.else@example.org"
        row_hash = compute_row_hash(prev_hash=prev_hash, **{n: row[n] for n in HASHED_FIELDS})
        tamper(
            "UPDATE audit_auditevent SET actor_label = %s WHERE id = %s",
            [row["actor_label"], row["id"]],
        )
        tamper(
            "UPDATE audit_auditlink SET prev_hash = %s, row_hash = %s WHERE seq = %s",
            [prev_hash, row_hash, row["seq"]],
        )
        prev_hash = row_hash


def test_anchoring_writes_the_signed_head_and_records_it(chain, settings, operator_key):
    anchor = chain_anchor()

    assert (anchor["seq"], anchor["row_hash"]) == (5, chain[-1].row_hash)
    assert anchor_lines(settings) == [anchor]
    assert anchor_signature_valid(anchor, operator_key.public_key())
    assert anchor["key_id"] == key_id(operator_key.public_key())
    event = sealed(AuditEvent.objects.latest())
    assert event.event == Event.AUDIT_ANCHORED
    assert event.detail == {
        "seq": 5, "row_hash": chain[-1].row_hash, "key_id": anchor["key_id"], "sinks": ["file"],
    }  # fmt: skip


def test_anchoring_appends_one_line_per_run(chain, settings):
    chain_anchor()
    record(event=Event.LOGOUT)
    chain_anchor()

    assert [line["seq"] for line in anchor_lines(settings)] == [5, 7]
    assert "Anchors: 2 verified." in verify("--anchors")


def test_anchoring_an_empty_trail_does_nothing(db, operator_key, settings):
    assert chain_anchor() is None
    assert not AuditEvent.objects.exists()


def test_audit_verify_with_anchors_accepts_the_untouched_chain(chain):
    chain_anchor()
    record(event=Event.LOGOUT)

    out = verify("--anchors")

    assert out.startswith("OK: 7 events verified")
    assert out.endswith("Anchors: 1 verified.")


def test_rewriting_the_whole_chain_after_an_anchor_is_detected(chain, tamper):
    chain_anchor()
    seal()
    rewrite_whole_chain(tamper)

    assert verify().startswith("OK: 6 events verified")  # the chain alone cannot tell
    assert "(seq 5): does not match the chain (rewritten?)" in verify_fails("--anchors")


def test_removing_the_rows_after_an_anchor_is_detected(chain, tamper):
    chain_anchor()
    seal()
    rows_delete(tamper, "seq >= %s", [4])

    assert verify().startswith("OK: 3 events verified")
    assert "beyond the head of the chain (seq 3)" in verify_fails("--anchors")


def test_an_anchor_with_a_forged_hash_fails_its_signature(chain, settings):
    anchor = chain_anchor()
    path = next(iter(Path(settings.AUDIT_ANCHOR_DIR).glob("*.jsonl")))
    forged = {**anchor, "row_hash": "f" * 64}
    path.write_text(json.dumps(forged) + "\n")

    assert f"anchor {path.name}:1: signature invalid" in verify_fails("--anchors")


def test_an_anchor_signed_with_another_key_is_refused(chain, settings, tmp_path):
    chain_anchor()
    other = Ed25519PrivateKey.generate().public_key()
    other_pem = tmp_path / "other.pem"
    other_pem.write_bytes(
        other.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )

    assert "signature invalid" in verify_fails("--anchors", "--public-key", str(other_pem))


def test_a_garbled_anchor_line_is_refused(chain, settings):
    chain_anchor()
    path = next(iter(Path(settings.AUDIT_ANCHOR_DIR).glob("*.jsonl")))
    with path.open("a") as handle:
        handle.write("not json\n")

    assert ":2: signature invalid" in verify_fails("--anchors")


def test_verifiers_check_anchors_with_the_printed_public_key(chain, settings, tmp_path):
    chain_anchor()
    out = StringIO()
    call_command("audit_anchor", "--public-key", stdout=out)
    pem = out.getvalue().split("key id")[0]
    public = tmp_path / "operator.pub.pem"
    public.write_text(pem)
    settings.AUDIT_ANCHOR_KEY = ""  # the verifier does not have the private key

    assert verify("--anchors", settings.AUDIT_ANCHOR_DIR, "--public-key", str(public)).endswith(
        "Anchors: 1 verified."
    )


def test_audit_anchor_command_anchors_now(chain, settings):
    out = StringIO()
    call_command("audit_anchor", stdout=out)

    assert out.getvalue().strip() == f"Anchored seq 5, head {chain[-1].row_hash}."
    assert len(anchor_lines(settings)) == 1


def test_anchors_are_posted_to_the_configured_url(chain, settings):
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers["Content-Length"])
            received.append((self.headers["Content-Type"], json.loads(self.rfile.read(length))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.AUDIT_ANCHOR_URL = f"http://127.0.0.1:{server.server_port}/anchors"
    try:
        anchor = chain_anchor()
    finally:
        server.shutdown()
        server.server_close()

    assert received == [("application/json", anchor)]
    assert sealed(AuditEvent.objects.latest()).detail["sinks"] == ["file", "url"]


def test_an_unreachable_url_keeps_the_file_anchor_and_says_so(chain, settings):
    settings.AUDIT_ANCHOR_URL = "http://127.0.0.1:9/anchors"  # discard port: refused

    chain_anchor()

    assert len(anchor_lines(settings)) == 1
    assert sealed(AuditEvent.objects.latest()).detail == {
        "seq": 5, "row_hash": chain[-1].row_hash, "key_id": anchor_lines(settings)[0]["key_id"],
        "sinks": ["file"], "posted": False,
    }  # fmt: skip


def test_anchor_keys_load_from_pem_file_and_base64(tmp_path, operator_key):
    seed = operator_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    pem_file = tmp_path / "anchor.pem"
    pem_file.write_bytes(
        operator_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    expected = key_id(operator_key.public_key())

    assert key_id(load_private_key(str(pem_file)).public_key()) == expected
    assert key_id(load_private_key(base64.b64encode(seed).decode()).public_key()) == expected
    raw_public = operator_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert key_id(load_public_key(base64.b64encode(raw_public).decode())) == expected
    with pytest.raises(ImproperlyConfigured):
        load_private_key("c2hvcnQ=")


def test_production_needs_an_anchor_key(settings):
    settings.AUDIT_ANCHOR_KEY = ""
    settings.DEBUG = False
    settings.TESTING = False

    with pytest.raises(ImproperlyConfigured, match="AUDIT_ANCHOR_KEY"):
        anchor_private_key()


def test_development_generates_a_key_once(settings, tmp_path):
    settings.AUDIT_ANCHOR_KEY = ""
    settings.VAR_DIR = tmp_path

    first, second = anchor_private_key(), anchor_private_key()

    assert key_id(first.public_key()) == key_id(second.public_key())
    assert (tmp_path / "dev-audit-anchor-key").stat().st_mode & 0o777 == 0o600
