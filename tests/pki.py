"""The test PKI of the federation tests: one CA, our operator's and a peer operator's
certificates (server and client usage), and a rogue certificate from the same CA whose DN is in no
trust list. Written once per test session to a temporary directory."""

from dataclasses import dataclass
from pathlib import Path

import pytest

from apps.core.pki import issue, make_ca

OUR_DN = "CN=mx.mssweb.test,OU=99999999900001,O=mssweb test operator,ST=Paris (75),C=FR"
PEER_DN = "CN=mx.peer.test,OU=99999999900002,O=Peer test operator,ST=Gironde (33),C=FR"
ROGUE_DN = "CN=mx.rogue.test,OU=99999999900003,O=Rogue operator,ST=Nord (59),C=FR"


@dataclass
class Pki:
    directory: Path
    ca: Path  # CA bundle (PEM)
    ours: tuple[Path, Path]  # (cert, key) of this operator
    peer: tuple[Path, Path]  # (cert, key) of the other operator
    rogue: tuple[Path, Path]  # (cert, key) signed by the CA, DN not in the trust list
    untrusted_ca: Path  # another CA that signed nothing we accept
    stranger: tuple[Path, Path]  # (cert, key) signed by untrusted_ca, with PEER_DN


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = make_ca("mssweb test CA")
    other_ca = make_ca("Untrusted CA")
    hosts = ["localhost", "127.0.0.1"]
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca.cert_pem)
    other_path = directory / "other-ca.pem"
    other_path.write_bytes(other_ca.cert_pem)
    return Pki(
        directory=directory,
        ca=ca_path,
        ours=issue(ca, dn=OUR_DN, hostnames=hosts).write(directory, "ours"),
        peer=issue(ca, dn=PEER_DN, hostnames=hosts).write(directory, "peer"),
        rogue=issue(ca, dn=ROGUE_DN, hostnames=hosts).write(directory, "rogue"),
        untrusted_ca=other_path,
        stranger=issue(other_ca, dn=PEER_DN, hostnames=hosts).write(directory, "stranger"),
    )
