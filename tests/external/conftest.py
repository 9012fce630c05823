"""Recipients outside the trust space: OpenPGP keys made by a real GnuPG in throwaway homes
(the recipients' side, with their private keys), the operator's own throwaway home, and a
real SMTP peer (aiosmtpd, STARTTLS with the test PKI) standing for an ordinary mail server."""

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from apps.notifications.sms import LocmemBackend
from tests.conftest import make_user
from tests.delivery.conftest import (  # noqa: F401 - start_peer, trusted_peer: fixtures
    Behaviour,
    Handler,
    PeerController,
    free_port,
    server_context,
    start_peer,
    trusted_peer,
)

EXTERNAL_DOMAIN = "gmail.example"
ALICE = f"alice@{EXTERNAL_DOMAIN}"  # a valid key with an encryption subkey
OLD = f"old@{EXTERNAL_DOMAIN}"  # expired
REVOKED = f"rev@{EXTERNAL_DOMAIN}"  # revoked by its owner
SIGN_ONLY = f"sig@{EXTERNAL_DOMAIN}"  # cannot encrypt
NOKEY = f"someone@{EXTERNAL_DOMAIN}"


@dataclass
class RecipientKeys:
    home: Path  # the recipients' GnuPG home, private keys included
    public: dict[str, str]  # address → armoured public key
    secret: str  # Alice's armoured private key (to show it is refused)


def _gpg(home: Path, *args: str, data: bytes | None = None) -> bytes:
    gpg = shutil.which("gpg") or "/usr/bin/gpg"
    return subprocess.run(
        [gpg, "--homedir", str(home), "--batch", "--yes", "--passphrase", "",
         "--pinentry-mode", "loopback", *args],
        input=data, capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip


def _fingerprint(home: Path, address: str) -> str:
    out = _gpg(home, "--with-colons", "--list-keys", address).decode()
    return next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))


def kill_agent(home: Path) -> None:
    gpgconf = shutil.which("gpgconf")
    if gpgconf and home.exists():
        subprocess.run(
            [gpgconf, "--homedir", str(home), "--kill", "all"], capture_output=True, timeout=30
        )


@pytest.fixture(scope="session")
def recipient_keys(tmp_path_factory) -> RecipientKeys:
    home = tmp_path_factory.mktemp("recipients-gnupg")
    home.chmod(0o700)
    past = ["--faked-system-time", "20200101T000000"]
    _gpg(home, "--quick-gen-key", f"Alice <{ALICE}>", "ed25519", "cert,sign", "never")
    _gpg(home, "--quick-add-key", _fingerprint(home, ALICE), "cv25519", "encr", "never")
    _gpg(home, *past, "--quick-gen-key", f"Old <{OLD}>", "ed25519", "cert,sign", "1d")
    _gpg(home, *past, "--quick-add-key", _fingerprint(home, OLD), "cv25519", "encr", "1d")
    _gpg(home, "--quick-gen-key", f"Rev <{REVOKED}>", "ed25519", "cert,sign", "never")
    revoked = _fingerprint(home, REVOKED)
    _gpg(home, "--quick-add-key", revoked, "cv25519", "encr", "never")
    certificate = (home / "openpgp-revocs.d" / f"{revoked}.rev").read_text()
    _gpg(home, "--import", data=certificate.replace(":-----BEGIN", "-----BEGIN").encode())
    _gpg(home, "--quick-gen-key", f"Sig <{SIGN_ONLY}>", "ed25519", "sign", "never")
    public = {a: _gpg(home, "--armor", "--export", a).decode()
              for a in (ALICE, OLD, REVOKED, SIGN_ONLY)}  # fmt: skip
    secret = _gpg(home, "--armor", "--export-secret-keys", ALICE).decode()
    yield RecipientKeys(home=home, public=public, secret=secret)
    kill_agent(home)


@pytest.fixture(autouse=True)
def operator_gnupg(settings, tmp_path):
    """The operator's GnuPG home: a throwaway one per test."""
    home = tmp_path / "operator-gnupg"
    settings.GNUPG_HOME = str(home)
    settings.EXTERNAL_S2K_COUNT = 65536  # cheap in tests; the cost is not what is tested
    yield home
    kill_agent(home)


@pytest.fixture(autouse=True)
def _sms(settings):
    settings.SMS_BACKEND = "apps.notifications.sms.LocmemBackend"
    LocmemBackend.outbox.clear()
    yield
    LocmemBackend.outbox.clear()


@pytest.fixture
def dentist(db):
    return make_user(first_name="Claire", last_name="Morel")


@dataclass
class Mx:
    handler: Handler
    port: int


@pytest.fixture
def external_mx(pki, settings):
    """An ordinary mail server for EXTERNAL_DOMAIN: STARTTLS with a certificate of the test CA
    (EXTERNAL_CA_BUNDLE), not in any trust list."""
    settings.EXTERNAL_CA_BUNDLE = str(pki.ca)
    settings.EXTERNAL_RELAY_HOST = ""
    settings.DELIVERY_SMTP_TIMEOUT = 3
    settings.DELIVERY_EHLO_NAME = "mx.mssweb.test"
    started = []

    def start(behaviour: Behaviour | None = None, *, tls: bool = True) -> Mx:
        handler = Handler(behaviour or Behaviour())
        port = free_port()
        kwargs = {"tls_context": server_context(pki.rogue)} if tls else {}
        controller = PeerController(
            handler, hostname="127.0.0.1", port=port, server_hostname="mx.gmail.example",
            **kwargs,
        )  # fmt: skip
        controller.start()
        started.append(controller)
        settings.DELIVERY_ROUTES = f"{EXTERNAL_DOMAIN}=127.0.0.1:{port}"
        return Mx(handler=handler, port=port)

    yield start
    for controller in started:
        controller.stop(no_assert=True)
