"""How staff are named in audit leaves and log lines: a plain token as it is, anything else as a keyed pseudonym."""

from __future__ import annotations

import hashlib

import pytest

from medplat.compliance.hooks import staff_ref

NODE = bytes(range(32))
OTHER_NODE = bytes(range(1, 33))


@pytest.mark.parametrize("subject", ["moderator.one@clinic.kz", "Erlan Bekovich", "officer-77012345678", "Moderator-7"])
def test_a_subject_that_could_be_personal_is_a_keyed_pseudonym(subject: str) -> None:
    ref = staff_ref(subject, NODE)
    assert ref.startswith("hmac:") and len(ref) == len("hmac:") + 32
    assert subject not in ref and subject.lower() not in ref
    # Stable on one node: an auditor can follow one person across leaves.
    assert staff_ref(subject, NODE) == ref
    # Keyed: another node's data key names the same person differently, and nobody can confirm a guess by hashing it.
    assert staff_ref(subject, OTHER_NODE) != ref
    plain = hashlib.sha256(subject.encode()).hexdigest()
    assert ref.removeprefix("hmac:") not in plain and plain[:32] not in ref


def test_different_subjects_get_different_pseudonyms() -> None:
    assert staff_ref("a@clinic.kz", NODE) != staff_ref("b@clinic.kz", NODE)


@pytest.mark.parametrize("subject", ["moderator-7", "ops", "officer.one", "svc:sync-2"])
def test_a_plain_token_subject_stays_as_it_is(subject: str) -> None:
    assert staff_ref(subject, NODE) == subject == staff_ref(subject, OTHER_NODE)


def test_a_subject_that_looks_like_a_pseudonym_is_hashed_too() -> None:
    other = staff_ref("someone@clinic.kz", NODE)
    forged = "hmac:abcdefabcdefabcdefabcdefabcdefab"
    assert staff_ref(forged, NODE) != forged and staff_ref(forged, NODE).startswith("hmac:")
    assert staff_ref(other, NODE) != other
