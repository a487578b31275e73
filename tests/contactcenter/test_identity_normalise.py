"""Addresses are normalised on the way in; a refused phone number says why: its format, or that it is not in use."""

from __future__ import annotations

import pytest

from contactcenter.errors import ApplicationError
from contactcenter.models import IdentityKind
from contactcenter.services.contacts import identity_normalise


def refusal(value: str) -> str:
    with pytest.raises(ApplicationError) as refused:
        identity_normalise(kind=IdentityKind.PHONE, value=value)
    assert refused.value.code == "invalid_phone"
    return refused.value.message


def test_phones_are_stored_as_e164():
    assert identity_normalise(kind=IdentityKind.PHONE, value="+44 7911 123456") == "+447911123456"
    assert identity_normalise(kind=IdentityKind.WHATSAPP, value="+1 (415) 555-0123") == "+14155550123"


def test_a_badly_formed_number_is_told_its_format():
    for value in ("4155550123", "+1 415 555", "call me"):
        assert "international format" in refusal(value)


def test_a_well_formed_number_out_of_use_is_told_so_not_its_format():
    # +44 7700 900xxx is Ofcom's range kept for drama: the right shape, never a real phone.
    message = refusal("+44 7700 900123")
    assert "not a phone number in use" in message and "international format" not in message


def test_a_user_id_is_kept_as_given_within_its_length():
    assert identity_normalise(kind=IdentityKind.EXTERNAL, value=" 1182 ") == "1182"
    with pytest.raises(ApplicationError):
        identity_normalise(kind=IdentityKind.EXTERNAL, value="x" * 201)
