"""Trust list fixtures: the ANS sample (619 entries), the full list (gzip), small lists made on
the fly, and loopback HTTP(S) servers publishing a folder."""

import gzip
import http.server
import shutil
import ssl
import threading
from functools import partial
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE = FIXTURES / "listeblanchemssante.xml"
SAMPLE_SHA256 = "fcec0113fe62c11c551882adc97f9eb254665d41fc31404cf984a0672cd9b2b2"
FULL_GZ = FIXTURES / "listeblanchemssante-full-2025-02-28.xml.gz"
FULL_SHA256 = "c14b71352b39cddce9b78b2eb1ce6cacb7e87b605ade40d95fae858797ad4761"
NS = "https://listeblanche.mssante.fr/schema"


def entry_xml(name: str | None, dn: str | None, *, description: str = "Test") -> str:
    parts = ["<Domaine>"]
    if name is not None:
        parts.append(f"<Nom>{name}</Nom>")
    parts.append(f"<Description>{description}</Description>")
    if dn is not None:
        parts.append(f"<DNCertificatOperateur>{dn}</DNCertificatOperateur>")
    parts.append("<ResponsableContact>01 02 03 04 05, r@x.fr</ResponsableContact>")
    parts.append("<SupportContact>01 02 03 04 05, s@x.fr</SupportContact>")
    parts.append("<DateMAJ>2025-01-02T03:04:05Z</DateMAJ></Domaine>")
    return "".join(parts)


def list_xml(entries: list[tuple[str | None, str | None]], *, generated="2026-01-01T00:00:00Z"):
    body = "".join(entry_xml(name, dn) for name, dn in entries)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><ListeBlancheMSSante xmlns="{NS}">'
        f"<DateDeGeneration>{generated}</DateDeGeneration><ListeDomaines>{body}</ListeDomaines>"
        "</ListeBlancheMSSante>"
    ).encode()


@pytest.fixture
def write_list(tmp_path):
    """``write_list(entries_or_bytes, name=…)`` → the path of a list file."""

    def write(content, name: str = "liste.xml") -> Path:
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else list_xml(content))
        return path

    return write


@pytest.fixture(scope="session")
def full_list(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("trustlist") / "listeblanchemssante-full-2025-02-28.xml"
    with gzip.open(FULL_GZ, "rb") as source, path.open("wb") as out:
        shutil.copyfileobj(source, out)
    return path


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def serve(folder: Path, context: ssl.SSLContext | None = None, handler=QuietHandler):
    """A loopback HTTP(S) server (in a thread) publishing ``folder``; call ``shutdown()``."""
    handler = partial(handler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


@pytest.fixture
def http_folder(tmp_path):
    """(folder, base URL): a loopback HTTP server publishing ``folder``."""
    folder = tmp_path / "www"
    folder.mkdir()
    server = serve(folder)
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def tls_context(pki) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, pki.peer))
    return context


@pytest.fixture
def https_folder(tmp_path, pki):
    """(folder, base URL): a loopback HTTPS server with a certificate of the test CA."""
    folder = tmp_path / "www-tls"
    folder.mkdir()
    server = serve(folder, tls_context(pki))
    yield folder, f"https://localhost:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
