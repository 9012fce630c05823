"""Importing the list: checksum, atomic replacement, refusals that keep the list in service,
downloads over HTTP(S) on loopback, the command and the audit trail."""

import hashlib
import shutil
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.audit.events import Event
from apps.audit.models import AuditEvent
from apps.trustlist.models import TrustedEntry, TrustList
from apps.trustlist.parse import TrustListError
from apps.trustlist.routing import trusted_dns
from apps.trustlist.services import DEMO_TRUSTLIST, redact_source, trustlist_import
from tests.pki import OUR_DN, PEER_DN
from tests.trustlist.conftest import (
    FULL_SHA256,
    SAMPLE,
    SAMPLE_SHA256,
    QuietHandler,
    list_xml,
    serve,
    tls_context,
)

pytestmark = pytest.mark.django_db

MIPIH = "CN=medimail-asip.mipih.fr,OU=318310021300028,O=GIP MIPIH,ST=Haute-Garonne (31),C=FR"


def active() -> TrustList:
    return TrustList.objects.get(status=TrustList.Status.ACTIVE)


def test_import_puts_the_sample_in_service_and_audits_it():
    result = trustlist_import(source=str(SAMPLE), sha256=SAMPLE_SHA256)
    trust_list = result.trust_list
    assert not result.unchanged
    assert trust_list == active()
    assert (trust_list.entry_count, trust_list.domain_count, trust_list.dn_count) == (619, 516, 35)
    assert trust_list.sha256 == SAMPLE_SHA256
    assert trust_list.generated_at.isoformat() == "2025-03-13T14:54:10+00:00"
    assert trust_list.report["unterminated"] is True
    assert TrustedEntry.objects.count() == 619
    assert len(trusted_dns("15-20.mssante.fr")) == 5
    event = AuditEvent.objects.get(event=Event.TRUSTLIST_IMPORTED)
    assert event.target_id == str(trust_list.pk)
    assert event.detail["entries"] == 619
    assert event.detail["domains"] == 516
    assert event.detail["dns"] == 35
    assert event.detail["sha256"] == SAMPLE_SHA256


def test_a_new_list_replaces_the_old_one_entirely(write_list):
    first = trustlist_import(source=str(write_list([("old.mssante.fr", MIPIH)]))).trust_list
    second = trustlist_import(
        source=str(write_list([("new.mssante.fr", PEER_DN)], name="b.xml"))
    ).trust_list
    first.refresh_from_db()
    assert first.status == TrustList.Status.SUPERSEDED
    assert active() == second
    assert list(TrustedEntry.objects.values_list("domain", flat=True)) == ["new.mssante.fr"]
    assert trusted_dns("old.mssante.fr") == frozenset()
    assert (
        AuditEvent.objects.get(event=Event.TRUSTLIST_IMPORTED, target_id=str(second.pk)).detail[
            "previous"
        ]
        == first.pk
    )


def test_the_same_file_again_replaces_nothing():
    first = trustlist_import(source=str(SAMPLE)).trust_list
    again = trustlist_import(source=str(SAMPLE))
    assert again.unchanged
    assert again.trust_list == first
    assert again.trust_list.checked_at is not None
    assert TrustList.objects.count() == 1
    assert AuditEvent.objects.filter(event=Event.TRUSTLIST_IMPORTED).count() == 1


def assert_refused_and_kept(before: TrustList, *, match: str, **kwargs):
    entries = set(TrustedEntry.objects.values_list("pk", flat=True))
    with pytest.raises(TrustListError, match=match):
        trustlist_import(**kwargs)
    assert active() == before
    assert set(TrustedEntry.objects.values_list("pk", flat=True)) == entries
    failed = TrustList.objects.filter(status=TrustList.Status.FAILED).latest("pk")
    assert match.split(" ")[0] in failed.error
    event = AuditEvent.objects.filter(event=Event.TRUSTLIST_IMPORT_FAILED).latest("id")
    assert event.target_id == str(failed.pk)
    assert event.detail["reason"] == failed.error[:300]
    return failed


@pytest.fixture
def in_service():
    return trustlist_import(source=str(SAMPLE)).trust_list


def test_a_checksum_mismatch_changes_nothing(in_service, write_list):
    path = write_list([("new.mssante.fr", MIPIH)])
    failed = assert_refused_and_kept(
        in_service, match="Empreinte SHA-256 différente", source=str(path), sha256="0" * 64
    )
    assert failed.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_malformed_checksum_is_refused(in_service):
    assert_refused_and_kept(
        in_service, match="Empreinte SHA-256 invalide", source=str(SAMPLE), sha256="abc"
    )


def test_the_checksum_can_come_from_a_checksum_file(tmp_path, write_list):
    path = write_list([("new.mssante.fr", MIPIH)])
    checksum = tmp_path / "liste.xml.sha256"
    checksum.write_text(f"{hashlib.sha256(path.read_bytes()).hexdigest().upper()}  liste.xml\n")
    assert trustlist_import(source=str(path), sha256=str(checksum)).trust_list.entry_count == 1


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b'<ListeBlancheMSSante xmlns="https://listeblanche.mssante.fr/schema"><ListeDomaines>'
         b"<Domaine><Nom>a.mssante.fr</Nom></ListeDomaines>", "XML mal formé"),
        (list_xml([]), "aucune entrée"),
        (b'<ListeBlancheMSSante xmlns="urn:other"><ListeDomaines/></ListeBlancheMSSante>',
         "espace de noms"),
        (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>'
         b'<ListeBlancheMSSante xmlns="https://listeblanche.mssante.fr/schema"/>', "DTD"),
        (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
         b'<ListeBlancheMSSante xmlns="https://listeblanche.mssante.fr/schema">&x;'
         b"</ListeBlancheMSSante>", "DTD"),
    ],
    ids=["malformed", "empty", "namespace", "laughs", "xxe"],
)  # fmt: skip
def test_refused_files_keep_the_list_in_service(in_service, write_list, content, match):
    assert_refused_and_kept(in_service, match=match, source=str(write_list(content)))


def test_a_missing_file_is_refused(in_service, tmp_path):
    assert_refused_and_kept(
        in_service, match="Fichier introuvable", source=str(tmp_path / "absent.xml")
    )


def test_an_oversized_file_is_refused(in_service, settings):
    settings.TRUSTLIST_MAX_BYTES = 1000
    assert_refused_and_kept(in_service, match="Fichier trop volumineux", source=str(SAMPLE))


def test_an_unsupported_scheme_is_refused(in_service):
    assert_refused_and_kept(
        in_service, match="Source non prise en charge", source="ftp://example.org/l.xml"
    )


def test_a_database_failure_during_the_swap_keeps_the_list(in_service, write_list, monkeypatch):
    """The swap is one transaction: a failure after the old entries are deleted rolls it back."""
    from apps.trustlist import services

    def broken_record(**kwargs):
        if kwargs["event"] == Event.TRUSTLIST_IMPORTED:
            raise RuntimeError("disk full")
        return original(**kwargs)

    original = services.record
    monkeypatch.setattr(services, "record", broken_record)
    with pytest.raises(RuntimeError):
        trustlist_import(source=str(write_list([("new.mssante.fr", MIPIH)])))
    assert active() == in_service
    assert TrustedEntry.objects.count() == 619
    failed = TrustList.objects.get(status=TrustList.Status.FAILED)
    assert "RuntimeError" in failed.error


# --- Downloads ------------------------------------------------------------------------------------


def test_import_from_a_url_on_loopback(http_folder):
    folder, base = http_folder
    shutil.copy(SAMPLE, folder / "listeblanchemssante.xml")
    (folder / "listeblanchemssante.xml.sha256").write_text(f"{SAMPLE_SHA256}\n")
    result = trustlist_import(
        source=f"{base}/listeblanchemssante.xml", sha256=f"{base}/listeblanchemssante.xml.sha256"
    )
    assert result.trust_list.entry_count == 619
    assert result.trust_list.source == f"{base}/listeblanchemssante.xml"


def test_a_failed_download_keeps_the_list(in_service, http_folder):
    _, base = http_folder
    assert_refused_and_kept(
        in_service, match="Téléchargement impossible : HTTP 404", source=f"{base}/absent.xml"
    )


def test_https_download_trusts_the_configured_ca_bundle_only(settings, https_folder, pki):
    folder, base = https_folder
    shutil.copy(SAMPLE, folder / "liste.xml")
    settings.TRUSTLIST_CA_BUNDLE = str(pki.untrusted_ca)
    with pytest.raises(TrustListError, match="certificat du serveur non reconnu"):
        trustlist_import(source=f"{base}/liste.xml")
    settings.TRUSTLIST_CA_BUNDLE = str(pki.ca)
    assert trustlist_import(source=f"{base}/liste.xml").trust_list.entry_count == 619


def test_credentials_in_the_source_are_not_kept():
    assert (
        redact_source("https://user:pw@liste.example.org:8443/l.xml?token=abc")
        == "https://liste.example.org:8443/l.xml"
    )


# --- The command ----------------------------------------------------------------------------------


def test_command_prints_counts_in_french(capsys):
    call_command("import_trustlist", str(SAMPLE), "--sha256", SAMPLE_SHA256)
    out = capsys.readouterr().out
    assert "Liste de confiance n°" in out
    assert "entrées :            619" in out
    assert "domaines :           516" in out
    assert "DN opérateurs :      35" in out
    assert "13/03/2025" in out
    call_command("import_trustlist", str(SAMPLE))
    assert "Liste inchangée" in capsys.readouterr().out


def test_command_refusal_exits_1_with_the_reason(in_service, write_list):
    with pytest.raises(CommandError, match="la liste en service est conservée") as excinfo:
        call_command("import_trustlist", str(write_list(list_xml([]))))
    assert excinfo.value.returncode == 1
    assert "aucune entrée" in str(excinfo.value)
    assert active() == in_service


def test_command_exit_status_from_the_command_line(in_service, write_list, capsys):
    from django.core.management import execute_from_command_line

    with pytest.raises(SystemExit) as excinfo:
        execute_from_command_line(
            ["manage.py", "import_trustlist", str(SAMPLE), "--sha256", "1" * 64]
        )
    assert excinfo.value.code == 1
    assert "Empreinte SHA-256 différente" in capsys.readouterr().err


# --- Real files -----------------------------------------------------------------------------------


def test_the_full_list_imports_quickly_enough_for_a_daily_run(full_list):
    started = time.monotonic()
    trust_list = trustlist_import(source=str(full_list), sha256=FULL_SHA256).trust_list
    elapsed = time.monotonic() - started
    print(f"\nfull trust list: {trust_list.entry_count} entries in {elapsed:.2f} s")
    assert (trust_list.entry_count, trust_list.domain_count, trust_list.dn_count) == (
        6494, 4944, 390,
    )  # fmt: skip
    assert TrustedEntry.objects.count() == 6494
    assert len(trusted_dns("medecin.mssante.fr")) > 1


def test_the_demo_list_holds_the_test_operators():
    trust_list = trustlist_import(source=str(DEMO_TRUSTLIST)).trust_list
    assert trust_list.entry_count >= 12
    assert trusted_dns("peer.mssweb.test") == {
        "CN=mx.peer.test,OU=99999999900002,O=peer test operator,ST=gironde (33),C=fr"
    }
    from apps.trustlist.dn import dn_canonical

    assert trusted_dns("mssweb-demo.mssante.fr") == {dn_canonical(OUR_DN)}
    assert trusted_dns("peer.mssweb.test") == {dn_canonical(PEER_DN)}


def test_a_list_with_too_many_bad_entries_is_refused_with_its_count(in_service, write_list):
    entries = [(f"d{i}.mssante.fr", MIPIH) for i in range(20)] + [(None, MIPIH), ("x.fr", None)]
    failed = assert_refused_and_kept(
        in_service, match="Trop d'entrées inutilisables", source=str(write_list(entries))
    )
    assert failed.rejected_count == 2
    assert "Nom manquant : 1" in failed.error


def test_a_redirect_from_https_down_to_http_is_refused(settings, tmp_path, http_folder, pki):
    """Redirects are followed within https, never down to http."""
    folder, http_base = http_folder
    shutil.copy(SAMPLE, folder / "liste.xml")

    class Redirect(QuietHandler):
        def do_GET(self):
            if self.path == "/liste.xml":
                return super().do_GET()
            self.send_response(302)
            target = http_base if self.path == "/down" else ""
            self.send_header("Location", f"{target}/liste.xml")
            self.end_headers()

    shutil.copy(SAMPLE, tmp_path / "liste.xml")
    server = serve(tmp_path, tls_context(pki), handler=Redirect)
    base = f"https://localhost:{server.server_address[1]}"
    settings.TRUSTLIST_CA_BUNDLE = str(pki.ca)
    try:
        with pytest.raises(TrustListError, match="Redirection refusée vers http://"):
            trustlist_import(source=f"{base}/down")
        assert not TrustList.objects.filter(status=TrustList.Status.ACTIVE).exists()
        assert trustlist_import(source=f"{base}/same").trust_list.entry_count == 619
    finally:
        server.shutdown()
        server.server_close()
