"""Parsing the ANS XML: real files, several DNs per domain, and every kind of refusal."""

import io

import pytest

from apps.trustlist.dn import dn_canonical
from apps.trustlist.parse import TrustListError, parse_trustlist
from tests.trustlist.conftest import NS, SAMPLE, list_xml

MAX = 20_000_000
MIPIH = "CN=medimail-asip.mipih.fr,OU=318310021300028,O=GIP MIPIH,ST=Haute-Garonne (31),C=FR"


def parse(data: bytes, **kwargs):
    return parse_trustlist(io.BytesIO(data), max_bytes=kwargs.pop("max_bytes", MAX), **kwargs)


def test_the_ans_sample_is_read_whole():
    with SAMPLE.open("rb") as stream:
        parsed = parse_trustlist(stream, max_bytes=MAX)
    assert len(parsed.entries) == 619
    assert parsed.domain_count == 516
    assert parsed.dn_count == 35
    assert parsed.rejected == 0
    assert parsed.generated_at.isoformat() == "2025-03-13T14:54:10+00:00"
    # As published, the sample stops after </ListeDomaines> without closing its root element.
    assert parsed.unterminated
    first = parsed.entries[0]
    assert (first.domain, first.dn) == ("nddtestasmae.mssante.fr", MIPIH)
    assert first.dn_canonical == dn_canonical(MIPIH)
    assert first.description == "BREST LA SAUVEGARDE"
    assert first.responsible_contact == "08 10 61 50 50, medimail.diffusion@mipih.fr"
    assert first.date_maj.isoformat() == "2025-03-14T15:34:10+00:00"


def test_the_full_list_with_its_signature_is_read(full_list):
    with full_list.open("rb") as stream:
        parsed = parse_trustlist(stream, max_bytes=MAX)
    assert len(parsed.entries) == 6494
    assert parsed.domain_count == 4944
    # 391 DNs as written, 390 once canonical: two spellings of one certificate subject.
    assert len({e.dn for e in parsed.entries}) == 391
    assert parsed.dn_count == 390
    assert not parsed.unterminated
    medecin = {e.dn_canonical for e in parsed.entries if e.domain == "medecin.mssante.fr"}
    assert len(medecin) > 1
    assert any(dn.startswith("CN=bus.mssante.fr,") for dn in medecin)


def test_a_domain_keeps_every_certificate_listed_for_it():
    with SAMPLE.open("rb") as stream:
        parsed = parse_trustlist(stream, max_bytes=MAX)
    dns = {e.dn_canonical for e in parsed.entries if e.domain == "15-20.mssante.fr"}
    assert len(dns) == 5
    assert "CN=mss.enovacom.fr,OU=344368557300034,O=enovacom,ST=bouches-du-rhône (13),C=fr" in dns


def test_domain_names_are_lowercased():
    parsed = parse(list_xml([(" Cabinet.MSSante.FR. ", MIPIH)]))
    assert parsed.entries[0].domain == "cabinet.mssante.fr"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "Fichier vide"),
        (b"   \n", "Fichier vide"),
        (b"not xml at all", "Fichier vide ou qui n'est pas du XML"),
        (b'<ListeBlancheMSSante xmlns="' + NS.encode() + b'"><ListeDomaines><Domaine>',
         "XML mal formé ou incomplet"),
        (b"<html><body>Maintenance</body></html>", "élément racine html"),
        (b'<ListeBlancheMSSante xmlns="https://example.org/other"><ListeDomaines/>'
         b"</ListeBlancheMSSante>", "espace de noms"),
        (b"<ListeBlancheMSSante><ListeDomaines/></ListeBlancheMSSante>", "élément racine"),
        (list_xml([]), "aucune entrée"),
        (b'<ListeBlancheMSSante xmlns="' + NS.encode() + b'"><DateDeGeneration>x'
         b"</DateDeGeneration></ListeBlancheMSSante>", "ListeDomaines absent"),
    ],
)  # fmt: skip
def test_unusable_files_are_refused(data, message):
    with pytest.raises(TrustListError, match=message):
        parse(data)


def test_a_file_cut_inside_the_list_is_refused():
    data = SAMPLE.read_bytes()
    with pytest.raises(TrustListError, match="XML mal formé ou incomplet"):
        parse(data[: len(data) // 2])


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<ListeBlancheMSSante xmlns="https://listeblanche.mssante.fr/schema"><ListeDomaines><Domaine>
<Nom>a.mssante.fr</Nom><Description>&lol4;</Description>
<DNCertificatOperateur>CN=x,C=FR</DNCertificatOperateur></Domaine></ListeDomaines>
</ListeBlancheMSSante>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE l [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<ListeBlancheMSSante xmlns="https://listeblanche.mssante.fr/schema"><ListeDomaines><Domaine>
<Nom>a.mssante.fr</Nom><Description>&xxe;</Description>
<DNCertificatOperateur>CN=x,C=FR</DNCertificatOperateur></Domaine></ListeDomaines>
</ListeBlancheMSSante>"""


@pytest.mark.parametrize("data", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["laughs", "xxe"])
def test_entities_are_refused(data):
    with pytest.raises(TrustListError, match="DTD ou des entités XML"):
        parse(data)


def test_a_file_over_the_size_limit_is_refused():
    data = SAMPLE.read_bytes()
    with pytest.raises(TrustListError, match="trop volumineux"):
        parse(data, max_bytes=len(data) - 1)
    assert len(parse(data, max_bytes=len(data)).entries) == 619


def _entries(good: int, bad: list[tuple]) -> list[tuple]:
    return [(f"d{i}.mssante.fr", MIPIH) for i in range(good)] + bad


def test_a_few_bad_entries_are_skipped_and_counted():
    bad = [(None, MIPIH), ("x.mssante.fr", None), ("y.mssante.fr", "no pairs here")]
    parsed = parse(list_xml(_entries(300, bad)))
    assert len(parsed.entries) == 300
    assert parsed.rejected == 3
    assert dict(parsed.reasons) == {
        "Nom manquant": 1, "DNCertificatOperateur manquant": 1, "DN invalide": 1,
    }  # fmt: skip
    assert [s["entry"] for s in parsed.samples] == [301, 302, 303]


def test_too_many_bad_entries_refuse_the_list():
    bad = [(None, MIPIH), ("x.mssante.fr", None), ("y..fr", MIPIH)]
    with pytest.raises(TrustListError, match="Trop d'entrées inutilisables : 3 sur 53"):
        parse(list_xml(_entries(50, bad)))
    assert parse(list_xml(_entries(50, bad)), max_rejected_ratio=0.1).rejected == 3
