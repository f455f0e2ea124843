"""Normalisation of identifiers: trim, drop all white space, upper-case; never touch zeros."""

from __future__ import annotations

import pytest

from flows.domain.identifiers import is_hex, names_agree, normalise_identifier


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        (" 3a11", "3A11"),
        ("11030001 ", "11030001"),
        ("0a\u00a01b", "0A1B"),  # non-breaking space
        ("\u202f0102\u2007", "0102"),  # narrow no-break and figure spaces
        ("f4 01\t00\n02", "F4010002"),
        ("0102", "0102"),
    ],
)
def test_white_space_of_every_kind_goes_and_hex_is_upper_cased(raw: str, normalised: str) -> None:
    assert normalise_identifier(raw) == normalised


def test_leading_zeros_are_significant() -> None:
    assert normalise_identifier("0102") != normalise_identifier("102")


def test_hex() -> None:
    assert is_hex("0A1B")
    assert not is_hex("XYZ!")
    assert not is_hex("")


def test_names_compare_loosely() -> None:
    assert names_agree("Corrie PPMID 2", "corrie-ppmid  2")
    assert not names_agree("Corrie PPMID 2", "Corrie PPMID 3")
