"""The outbox's shorter paths give what the longer ones give."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tests.hypothesis_profiles  # noqa: F401 - loads the chosen Hypothesis profile
from adapters.outbox import mail
from flows.errors import BadInput

_ATOM = st.text(st.sampled_from("aZ09!#$%&'*+/=?^_`{|}~-.@\"() \u00e9"), min_size=0, max_size=12)


@given(st.one_of(st.emails(), st.builds(lambda a, b: f"{a}@{b}", _ATOM, _ATOM), _ATOM))
def test_a_plain_address_is_written_as_the_email_package_writes_it(address: str) -> None:
    """An address the pattern takes as plain is one the email package reads and writes back unchanged."""
    if mail._PLAIN_ADDRESS.fullmatch(address) is None:
        return
    assert mail._addr_spec(address, "recipient 1 of 1") == address


@pytest.mark.parametrize(
    "address",
    ["a@b", "first.last@sub.example.com", "o'brien+tag@x-y.example", "a!#$%&'*+/=?^_`{|}~-@b-c.d"],
)
def test_plain_addresses_take_the_short_path(address: str) -> None:
    assert mail._PLAIN_ADDRESS.fullmatch(address) is not None
    assert mail.recipients([address, address]) == f"{address}, {address}"


@pytest.mark.parametrize(
    "address", [".a@b", "a.@b", "a..b@c", "a@b..c", "a@.b", "a@b.", "a@", "@b", "a b@c", "a@b\n", "\u00e9@b"]
)
def test_anything_else_takes_the_email_packages_path(address: str) -> None:
    assert mail._PLAIN_ADDRESS.fullmatch(address) is None
    try:
        expected = mail._addr_spec(address, "recipient 1 of 1")
    except BadInput as error:
        with pytest.raises(BadInput, match=re.escape(str(error))):
            mail.recipients([address])
    else:
        assert mail.recipients([address]) == expected
