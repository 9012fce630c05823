"""One routing decision per recipient address, in at most two queries."""

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from apps.accounts.models import Domain
from apps.trustlist.dn import dn_canonical, dn_of_certificate
from apps.trustlist.routing import Route, route_for, routes_for, trusted_dns
from apps.trustlist.services import trustlist_import
from tests.pki import PEER_DN

pytestmark = pytest.mark.django_db

OURS = "mssweb-demo.mssante.fr"
PEER = "peer.mssweb.test"
OUR_LISTED_DN = "CN=mx.mssweb.test,OU=99999999900001,O=mssweb test operator,ST=Paris (75),C=FR"
ENOVACOM = "CN=mss.enovacom.fr,OU=344368557300034,O=ENOVACOM,ST=Bouches-du-Rhône (13),C=FR"


@pytest.fixture
def trust_list(write_list):
    path = write_list(
        [
            (OURS, OUR_LISTED_DN),  # our own domain is in the national list too
            (PEER, PEER_DN),
            ("15-20.mssante.fr", ENOVACOM),
            ("15-20.mssante.fr", "CN=smtp-1.sesan.santnet.com,OU=1750048886,O=GIP SESAN,C=FR"),
            ("patient.mssante.fr", "CN=mss.patient.fr,O=CNAM,C=FR"),
        ]
    )
    Domain.objects.create(name=OURS)
    Domain.objects.create(name="ancien.mssante.fr", is_active=False)
    return trustlist_import(source=str(path)).trust_list


def test_each_kind_of_address_gets_its_route(trust_list, django_assert_num_queries):
    addresses = [
        f"claire.morel@{OURS}",
        f"Dr.Who@{PEER.upper()}",
        "secretariat@15-20.mssante.fr",
        "162018885045327@patient.mssante.fr",
        "someone@gmail.com",
        "someone@sub.15-20.mssante.fr",
        "not an address",
        "",
    ]
    with django_assert_num_queries(2):
        routes = routes_for(addresses)
    assert routes == {
        f"claire.morel@{OURS}": Route.LOCAL,
        f"Dr.Who@{PEER.upper()}": Route.OPERATOR,
        "secretariat@15-20.mssante.fr": Route.OPERATOR,
        "162018885045327@patient.mssante.fr": Route.PATIENT,
        "someone@gmail.com": Route.EXTERNAL,
        "someone@sub.15-20.mssante.fr": Route.EXTERNAL,
        "not an address": Route.EXTERNAL,
        "": Route.EXTERNAL,
    }
    assert routes[f"claire.morel@{OURS}"] == "local"


def test_query_count_does_not_grow_with_recipients(trust_list, django_assert_num_queries):
    many = [f"user{i}@{PEER}" for i in range(200)] + [f"u{i}@x{i}.fr" for i in range(200)]
    with django_assert_num_queries(2):
        routes = routes_for(many)
    assert len(routes) == 400
    with django_assert_num_queries(1):  # every domain is ours: the list is not read
        routes_for([f"a@{OURS}", f"b@{OURS}"])
    with django_assert_num_queries(0):
        assert routes_for(["nobody", ""]) == {"nobody": Route.EXTERNAL, "": Route.EXTERNAL}


def test_local_and_patient_domains_win_over_the_trust_list(trust_list, settings):
    assert route_for(f"x@{OURS}") == Route.LOCAL
    assert route_for("123456789012345@patient.mssante.fr") == Route.PATIENT
    settings.MSSANTE_PATIENT_DOMAIN = "patient.test"
    assert route_for("123456789012345@patient.test") == Route.PATIENT
    assert route_for("123456789012345@patient.mssante.fr") == Route.OPERATOR


def test_an_inactive_operator_domain_is_not_local(trust_list):
    assert route_for("x@ancien.mssante.fr") == Route.EXTERNAL


def test_without_a_trust_list_only_local_and_patient_routes_exist(db):
    Domain.objects.create(name=OURS)
    assert route_for(f"x@{OURS}") == Route.LOCAL
    assert route_for(f"x@{PEER}") == Route.EXTERNAL
    assert route_for("123456789012345@patient.mssante.fr") == Route.PATIENT
    assert trusted_dns(PEER) == frozenset()


def test_trusted_dns_are_canonical_whatever_the_spelling(write_list):
    trustlist_import(
        source=str(
            write_list(
                [
                    (PEER, " cn = MX.Peer.TEST ,  ou=99999999900002;O=Peer   test operator, "
                           "st=Gironde (33),c=fr"),
                    (PEER, "CN=mx2.peer.test,OU=99999999900002,O=Peer test operator,C=FR"),
                    ("other.mssante.fr", ENOVACOM),
                ]
            )
        )
    )  # fmt: skip
    dns = trusted_dns(" Peer.MSSweb.Test. ")
    assert dns == {
        "CN=mx.peer.test,OU=99999999900002,O=peer test operator,ST=gironde (33),C=fr",
        "CN=mx2.peer.test,OU=99999999900002,O=peer test operator,C=fr",
    }
    assert isinstance(dns, frozenset)
    assert dn_canonical(PEER_DN) in dns
    assert trusted_dns("unknown.mssante.fr") == frozenset()
    assert trusted_dns("") == frozenset()


def _der(path) -> bytes:
    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(Encoding.DER)


def test_trusted_dns_match_the_peer_certificate(write_list, pki):
    trustlist_import(source=str(write_list([(PEER, PEER_DN)])))
    assert dn_of_certificate(_der(pki.peer[0])) in trusted_dns(PEER)
    assert dn_of_certificate(_der(pki.rogue[0])) not in trusted_dns(PEER)
