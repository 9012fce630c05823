"""``manage.py audit_verify_export FILE``: a message trace exported by the trace view verifies;
the same export altered, or a chain tampered with since, fails with exit code 1 and the first
problem named in French."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.mailbox.models import Mailbox
from apps.mailbox.services import Address, message_send
from tests.conftest import login, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def export_file(client, tmp_path):
    """A message Alice sent to Bob, read by Bob, and the JSON trace Alice exported."""
    alice = make_user(first_name="Alice", last_name="Martin")
    bob = make_user(first_name="Bob", last_name="Durand")
    sent = message_send(
        user=alice, mailbox=Mailbox.objects.get(owner=alice), to=[Address("", bob.email)],
        subject="Compte rendu", text="Bonjour.\n",
    )  # fmt: skip
    login(client, alice)
    response = client.get(f"/messagerie/message/{sent.pk}/tracabilite/export.json")
    assert response.status_code == 200
    path = tmp_path / "trace.json"
    path.write_bytes(response.content)
    return path


def run(path) -> str:
    out = StringIO()
    call_command("audit_verify_export", str(path), stdout=out)
    return out.getvalue()


def test_an_export_from_the_trace_view_verifies(export_file):
    rows = len(json.loads(export_file.read_bytes())["rows"])
    assert rows >= 2
    output = run(export_file)
    assert output.startswith("OK : ")
    assert f"les {rows} lignes" in output


def test_an_altered_export_fails_with_the_first_problem(export_file):
    data = json.loads(export_file.read_bytes())
    seq = data["rows"][0]["seq"]
    data["rows"][0]["actor_label"] = "quelqu.un@ailleurs.fr"
    export_file.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(CommandError) as raised:
        run(export_file)
    assert raised.value.returncode == 1
    assert str(raised.value) == (
        f"ÉCHEC : Ligne {seq} : son empreinte ne correspond pas à son contenu."
    )


def test_an_export_of_a_chain_tampered_with_since_fails(export_file, tamper):
    seq = json.loads(export_file.read_bytes())["rows"][-1]["seq"]
    tamper(
        "UPDATE audit_auditevent SET ip = '203.0.113.66' "
        "WHERE id = (SELECT event_id FROM audit_auditlink WHERE seq = %s)",
        [seq],
    )
    with pytest.raises(CommandError) as raised:
        run(export_file)
    assert raised.value.returncode == 1
    assert "le journal de l'opérateur a été altéré" in str(raised.value)


def test_a_file_that_is_not_an_export_fails(tmp_path):
    path = tmp_path / "notes.json"
    path.write_text("pas du JSON", encoding="utf-8")
    with pytest.raises(CommandError) as raised:
        run(path)
    assert raised.value.returncode == 1
    assert "n'est pas un JSON lisible" in str(raised.value)
    with pytest.raises(CommandError) as raised:
        run(tmp_path / "absent.json")
    assert raised.value.returncode == 2
    assert "Impossible de lire" in str(raised.value)
