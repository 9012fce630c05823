"""OpenPGP public keys on contacts: import, refusal of unusable keys, removal."""

import pytest

from apps.audit.events import Event
from apps.audit.models import AuditEvent
from apps.directory.services import contact_save
from apps.external import openpgp
from apps.external.models import ContactKey
from apps.external.services import contact_key_import, contact_key_remove
from tests.conftest import client_for, make_user
from tests.external.conftest import ALICE, OLD, REVOKED, SIGN_ONLY


@pytest.fixture
def alice_contact(dentist):
    return contact_save(owner=dentist, email=ALICE, display_name="Alice Patiente")


def test_a_valid_key_is_imported_with_its_fingerprint_and_audited(
    dentist, alice_contact, recipient_keys, operator_gnupg
):
    key = contact_key_import(user=dentist, contact=alice_contact, data=recipient_keys.public[ALICE])
    assert len(key.fingerprint) == 40
    assert ALICE in key.uids
    assert openpgp.key_usable(key.fingerprint)
    assert oct(operator_gnupg.stat().st_mode & 0o777) == "0o700"
    row = AuditEvent.objects.get(event=Event.PGP_KEY_IMPORTED)
    assert row.detail["fingerprint"] == key.fingerprint


@pytest.mark.parametrize(
    ("address", "reason"),
    [(OLD, "a expiré"), (REVOKED, "révoquée"), (SIGN_ONLY, "ne permet pas de chiffrer")],
    ids=["expired", "revoked", "sign-only"],
)
def test_unusable_keys_are_refused_with_a_clear_message(dentist, recipient_keys, address, reason):
    contact = contact_save(owner=dentist, email=address, display_name="X")
    with pytest.raises(openpgp.KeyRefused, match=reason):
        contact_key_import(user=dentist, contact=contact, data=recipient_keys.public[address])
    assert not ContactKey.objects.exists()
    assert not AuditEvent.objects.filter(event=Event.PGP_KEY_IMPORTED).exists()


def test_a_key_for_another_address_is_refused(dentist, recipient_keys):
    contact = contact_save(owner=dentist, email="bob@gmail.example", display_name="Bob")
    with pytest.raises(openpgp.KeyRefused, match=r"n'est pas celle de bob@gmail\.example"):
        contact_key_import(user=dentist, contact=contact, data=recipient_keys.public[ALICE])


def test_a_private_key_is_refused_and_not_imported(dentist, alice_contact, recipient_keys):
    with pytest.raises(openpgp.KeyRefused, match="clé privée"):
        contact_key_import(user=dentist, contact=alice_contact, data=recipient_keys.secret)


def test_keys_page_imports_an_asc_file_lists_and_removes(dentist, alice_contact, recipient_keys):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client = client_for(dentist)
    upload = SimpleUploadedFile("alice.asc", recipient_keys.public[ALICE].encode())
    response = client.post("/externe/cles/", {"contact": alice_contact.pk, "upload": upload})
    assert response.status_code == 302
    key = ContactKey.objects.get()
    page = client.get("/externe/cles/").content.decode()
    assert key.fingerprint_display in page
    assert "Alice Patiente" in page
    response = client.post(f"/externe/cles/{key.pk}/retirer/")
    assert response.status_code == 302
    assert not ContactKey.objects.exists()
    assert AuditEvent.objects.filter(event=Event.PGP_KEY_REMOVED).count() == 1


def test_keys_page_shows_the_refusal_in_french(dentist, recipient_keys):
    contact = contact_save(owner=dentist, email=OLD, display_name="Old")
    response = client_for(dentist).post(
        "/externe/cles/", {"contact": contact.pk, "armored": recipient_keys.public[OLD]}
    )
    assert response.status_code == 200
    assert "Cette clé a expiré" in response.content.decode()


def test_another_users_key_cannot_be_removed(dentist, alice_contact, recipient_keys):
    key = contact_key_import(user=dentist, contact=alice_contact, data=recipient_keys.public[ALICE])
    other = make_user()
    assert client_for(other).post(f"/externe/cles/{key.pk}/retirer/").status_code == 404
    assert ContactKey.objects.filter(pk=key.pk).exists()


def test_removing_the_last_use_of_a_key_forgets_it_in_gnupg(
    dentist, alice_contact, recipient_keys, django_capture_on_commit_callbacks
):
    key = contact_key_import(user=dentist, contact=alice_contact, data=recipient_keys.public[ALICE])
    with django_capture_on_commit_callbacks(execute=True):
        contact_key_remove(user=dentist, key=key)
    assert not openpgp.key_usable(key.fingerprint)


def test_gpg_messages_that_are_not_utf8_do_not_stop_reading_its_status():
    """python-gnupg reads gpg's stderr with the encoding given: ours replaces a stray byte
    instead of ending the reader thread (and losing the status lines after it)."""
    import codecs
    import io

    reader = codecs.getreader(openpgp.GPG_ENCODING)(
        io.BytesIO(b"gpg: \xf4 message \xc3\xa9trange\n[GNUPG:] DECRYPTION_OKAY\n")
    )
    assert reader.readline() == "gpg: \ufffd message étrange\n"
    assert reader.readline() == "[GNUPG:] DECRYPTION_OKAY\n"
    assert "clé".encode(openpgp.GPG_ENCODING) == "clé".encode()
