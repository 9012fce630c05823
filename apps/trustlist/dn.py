"""Certificate subject distinguished names, as the trust list writes them and as peers present them.

The ANS trust list gives each operator certificate's subject as an RFC 4514 string, most specific
attribute first (``CN=bus.mssante.fr,OU=…,O=…,ST=…,C=FR``). Peers present DER certificates. Both
are brought to one canonical string so that equal names compare equal whatever the spacing, the
case of attribute types, the case of values or the escaping.
"""

import re

from cryptography import x509
from cryptography.x509.oid import NameOID

# Attribute type names as they appear in trust lists, mapped to one spelling.
_ALIASES = {
    "CN": "CN",
    "COMMONNAME": "CN",
    "OU": "OU",
    "ORGANIZATIONALUNITNAME": "OU",
    "O": "O",
    "ORGANIZATIONNAME": "O",
    "L": "L",
    "LOCALITYNAME": "L",
    "ST": "ST",
    "S": "ST",
    "STATEORPROVINCENAME": "ST",
    "C": "C",
    "COUNTRYNAME": "C",
    "E": "EMAILADDRESS",
    "EMAIL": "EMAILADDRESS",
    "EMAILADDRESS": "EMAILADDRESS",
    "1.2.840.113549.1.9.1": "EMAILADDRESS",
    "SERIALNUMBER": "SERIALNUMBER",
    "2.5.4.5": "SERIALNUMBER",
    "ORGANIZATIONIDENTIFIER": "ORGANIZATIONIDENTIFIER",
    "2.5.4.97": "ORGANIZATIONIDENTIFIER",
    "STREET": "STREET",
    "DC": "DC",
}
_OID_NAMES = {
    NameOID.COMMON_NAME: "CN",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.COUNTRY_NAME: "C",
    NameOID.EMAIL_ADDRESS: "EMAILADDRESS",
    NameOID.SERIAL_NUMBER: "SERIALNUMBER",
    NameOID.ORGANIZATION_IDENTIFIER: "ORGANIZATIONIDENTIFIER",
    NameOID.STREET_ADDRESS: "STREET",
    NameOID.DOMAIN_COMPONENT: "DC",
}
_HEX_PAIR = re.compile(r"\\([0-9A-Fa-f]{2})")


class DNError(ValueError):
    pass


def _split_unescaped(text: str, separators: str) -> list[str]:
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in separators:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        raise DNError("trailing backslash")
    parts.append("".join(current))
    return parts


def _unescape(value: str) -> str:
    value = _HEX_PAIR.sub(lambda m: chr(int(m.group(1), 16)), value)
    return re.sub(r"\\(.)", r"\1", value)


def _value(value: str) -> str:
    return " ".join(value.split()).casefold()


def dn_canonical(text: str) -> str:
    """``" cn=Bus.MSSante.fr , OU=1, O=X,C=FR"`` → ``"CN=bus.mssante.fr,OU=1,O=X,C=FR"``.

    Raises ``DNError`` for text that is not a distinguished name (no ``type=value`` pairs).
    """
    if not text or not text.strip():
        raise DNError("empty distinguished name")
    pairs = []
    for rdn in _split_unescaped(text.strip(), ",;"):
        for attribute in _split_unescaped(rdn, "+"):
            kind, sep, value = attribute.partition("=")
            kind = kind.strip().upper()
            if not sep or not kind:
                raise DNError(f"not a type=value pair: {attribute!r}")
            kind = _ALIASES.get(kind.removeprefix("OID."), kind)
            pairs.append(f"{kind}={_value(_unescape(value.strip()))}")
    return ",".join(pairs)


def dn_of_name(name: x509.Name) -> str:
    """The canonical string of a certificate name, most specific attribute first like the list."""
    pairs = []
    for rdn in reversed(list(name.rdns)):
        for attribute in rdn:
            kind = _OID_NAMES.get(attribute.oid, attribute.oid.dotted_string)
            pairs.append(f"{kind}={_value(str(attribute.value))}")
    return ",".join(pairs)


def dn_of_certificate(der: bytes) -> str:
    """Canonical subject DN of a DER certificate (``ssl.SSLSocket.getpeercert(True)``)."""
    return dn_of_name(x509.load_der_x509_certificate(der).subject)
