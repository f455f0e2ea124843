"""One e-mail address as a To header carries it: the check intake and the outbox share.

The intake refuses a responder's address the outbox could never write (a case would otherwise load
with no e-mail to its supplier possible); the outbox writes each recipient as this returns it. One
function, so the two cannot drift. No message names the address: errors reach the run history, which
keeps no contact details.
"""

from __future__ import annotations

import re
from email.errors import HeaderParseError
from email.headerregistry import Address

import idna

_NON_ASCII = re.compile(r"[^\x00-\x7f]")
# An address the email package reads as one addr-spec and writes back as it is: a dot-atom local part
# (RFC 5322's atext) and a host name of ASCII letters, digits and hyphens. Nearly every address is
# one; the package's parser (some 30 microseconds an address) is for the rest.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ADDRESS = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
_NOT_ONE = "is not one e-mail address (name@domain, without a display name)"


class NotAnAddress(ValueError):
    """Why a text is not one address a To header can carry, without quoting it."""

    def __init__(self, problem: str, *, of_a_part: bool = False) -> None:
        """``problem`` follows the subject it is about ("is not one ...") or, ``of_a_part``, a colon
        after it ("the domain is ...")."""
        super().__init__(problem)
        self.problem = problem
        self.of_a_part = of_a_part

    def naming(self, subject: str) -> str:
        """The problem said of ``subject`` (e.g. "recipient 1 of 2")."""
        return f"{subject}: {self.problem}" if self.of_a_part else f"{subject} {self.problem}"


def addr_spec(given: str) -> str:
    """``given`` as the addr-spec a To header carries, a non-ASCII domain as IDNA 2008 (UTS 46 mapping).

    A non-ASCII local part (printable characters, as a dot-atom) is kept as it is: RFC 6532 lets a
    header in UTF-8 carry it, and Graph's ``sendMail`` takes it. Anything that is not one plain address
    (a list, a display name, no domain, a dot at the start or end of a part or two together...) is
    ``NotAnAddress``.
    """
    if _PLAIN_ADDRESS.fullmatch(given) is not None:
        return given
    return _parsed(given)


def comparable_domain(domain: str) -> str:
    """``domain`` in the form two domains compare in: as a To header carries it (IDNA 2008 with the
    UTS 46 mapping, for a non-ASCII one), lower-cased, without a trailing dot.

    Not ``casefold``: it makes ``straße-power.example`` the distinct domain ``strasse-power.example``,
    and a message meant for one supplier would go to a look-alike. A register written in punycode
    compares equal to the same domain typed in Unicode. A domain IDNA refuses raises
    ``idna.IDNAError`` (a ``ValueError``) naming the character.
    """
    domain = domain.strip().rstrip(".")
    return (domain if domain.isascii() else _idna(domain)).lower()


def _idna(domain: str) -> str:
    """A non-ASCII domain as the outbox writes it and ``comparable_domain`` compares it."""
    return idna.encode(domain, uts46=True).decode("ascii")


def _parsed(given: str) -> str:
    """``addr_spec`` by the email package's parser alone (what the fast path must agree with)."""
    local, at, domain = given.rpartition("@")
    if at and not domain.isascii():
        try:
            domain = _idna(domain)
        except idna.IDNAError as error:
            problem = "the domain is not a valid international domain name"
            raise NotAnAddress(problem, of_a_part=True) from error
    utf8 = bool(at) and not local.isascii()
    if utf8 and not all(character.isprintable() for character in local):
        raise NotAnAddress("the part before the @ has a control, format or space character", of_a_part=True)
    # RFC 6532 lets any UTF-8 character stand where ASCII's atext does; the email package's parser, which
    # refuses them (NonASCIILocalPartDefect), checks the rest of the address with a letter in their place.
    stand_in = _NON_ASCII.sub("x", local) if utf8 else local
    try:
        address = Address(addr_spec=f"{stand_in}{at}{domain}")
    except (ValueError, IndexError, HeaderParseError) as error:  # what the email package's parser raises
        raise NotAnAddress(_why_not(local, domain)) from error
    if not address.username or not address.domain:
        raise NotAnAddress(_why_not(local, domain))
    if not utf8:
        return address.addr_spec
    if address.addr_spec != f"{stand_in}@{domain}":  # the package would write it otherwise (quoted)
        raise NotAnAddress(_NOT_ONE)
    return f"{local}@{domain}"


def _why_not(local: str, domain: str) -> str:
    """What is wrong with an address the email package refused: the dots, when they are the fault
    (a form's typo, ``name.@x`` or ``name@x.example.``, which a reader would not see), else in general."""
    for name, part in (("the part before the @", local), ("the domain", domain)):
        if part.startswith(".") or part.endswith(".") or ".." in part:
            return f"is not one e-mail address: {name} begins or ends with a dot, or has two together"
    return _NOT_ONE
