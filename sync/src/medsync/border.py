"""The border check: finds personal data (contact data and national identifiers) in an outgoing item.

Run on the origin before anything is sent and again, authoritatively, on the target before anything is
applied. A finding says what kind of data sits where, never the data itself.
"""

from __future__ import annotations

import datetime
import itertools
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal

import phonenumbers

from medsync.errors import BorderError
from medsync.items import SharedDocument, to_builtins

FindingKind = Literal["phone", "email", "ru_snils", "ru_inn", "ru_passport", "kz_iin", "uz_pinfl", "byline"]

_DESCRIPTIONS: Final[dict[FindingKind, str]] = {
    "phone": "a phone number",
    "email": "an e-mail address",
    "ru_snils": "a Russian SNILS (insurance account number)",
    "ru_inn": "a Russian INN (taxpayer number)",
    "ru_passport": "a Russian passport number",
    "kz_iin": "a Kazakh IIN (individual identification number)",
    "uz_pinfl": "an Uzbek PINFL (personal identification number)",
    "byline": "an author's byline",
}

# National formats of the federation's countries; a number written in international form (+...) is
# found whatever region the matcher assumes, so every country's numbers are covered. KZ is not listed:
# it shares RU's country code 7, trunk prefix 8 and international prefix 810, so a text parses the same
# with either default and a KZ pass would only repeat the RU one (a test watches the metadata).
_PHONE_REGIONS: Final = ("RU", "UZ")
# No valid phone number anywhere has fewer digits; skipping such texts saves the (slow) matcher.
_MIN_PHONE_DIGITS: Final = 6

# 9 digits (UZ national) to 12 (998 and a UZ number); RU: 10 digits, or 11 with the leading 7 or 8.
_PHONE_RUN = re.compile(r"(?<![0-9])(?<![0-9][.,])[0-9]{9,12}(?![0-9])(?![.,][0-9])")

# Characters that render as nothing and would otherwise split a number so that no pattern sees it.
_INVISIBLE = re.compile("[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u206a-\u206f\ufeff]")
_NON_ASCII_DIGIT = re.compile(r"(?![0-9])\d")

# Digits inside a longer run ("4607001234567") or after a decimal separator ("3.14159265358979") are
# not an identifier. Hyphens and slashes do not protect a number: "mp4-<INN>" in a slug must be found.
_START = r"(?<![0-9])(?<![0-9][.,])"
_END = r"(?![0-9])(?![.,][0-9])"

_SNILS = re.compile(_START + r"([0-9]{3})([- ]?)([0-9]{3})\2([0-9]{3})[- ]?([0-9]{2})" + _END)
_INN = re.compile(_START + r"([0-9]{12}|[0-9]{10})" + _END)
_IIN = re.compile(_START + r"([0-9]{12})" + _END)
_PINFL = re.compile(_START + r"([0-9]{14})" + _END)
# Series (2 + 2 digits, the first pair is the region) and number (6 digits); see _has_passport for the rule.
# NFKC has already turned "№" into "No".
_PASSPORT = re.compile(_START + r"([0-9]{2})( ?)([0-9]{2})( ?)(No\.? ?)?([0-9]{6})" + _END)
_PASSPORT_CONTEXT = re.compile(r"паспорт|passport", re.IGNORECASE)
_PASSPORT_CONTEXT_CHARS: Final = 30

# The domain after an "@": labels of letters, digits and hyphens, then a top-level domain of letters
# (internationalised ones included, e.g. .рф) or its punycode form.
_EMAIL_DOMAIN = re.compile(r"(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+(?:[^\W\d_]{2,63}|xn--[a-z0-9-]{1,59})(?![\w-])")
_EMAIL_LOCAL_END = re.compile(r"[\w%+'-]")
_EMAIL_DOMAIN_MAX: Final = 253

_CENTURIES: Final = {"1": 1800, "2": 1800, "3": 1900, "4": 1900, "5": 2000, "6": 2000}
_INN10_WEIGHTS: Final = (2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN12_WEIGHTS_11: Final = (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN12_WEIGHTS_12: Final = (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
_IIN_WEIGHTS_1: Final = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
_IIN_WEIGHTS_2: Final = (3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2)
# SNILS numbers up to 001-001-998 were issued before the control number existed.
_SNILS_FIRST_CHECKED: Final = 1_001_999

# Fields that are not text: the pattern of the allow-list makes them 64 hex digits computed from the
# blob's bytes, and random hex would trip the digit detectors.
_NOT_TEXT: Final = frozenset({"sha256"})


@dataclass(frozen=True, slots=True)
class Finding:
    """Personal data of one kind somewhere in a document. Holds the location, never the value."""

    kind: FindingKind
    path: str
    reason: str

    def __str__(self) -> str:
        return self.reason


class PersonalDataError(BorderError):
    """The border check refused a document; `findings` say what and where (never the values)."""

    def __init__(self, findings: tuple[Finding, ...]) -> None:
        listed = "; ".join(f"{f.kind} at {f.path}" for f in findings)
        super().__init__(f"personal data in the item: {listed}")
        self.findings = findings

    def __reduce__(self) -> tuple[type[PersonalDataError], tuple[tuple[Finding, ...]]]:
        # Exceptions are rebuilt from their args when they cross a process (Celery); ours are the findings.
        return type(self), (self.findings,)


def scan_text(text: str) -> list[tuple[FindingKind, str]]:
    """The kinds of personal data in `text`, each once, with a description that never quotes the text."""
    text = _normalise(text)
    if "@" not in text and _digits(text) < _MIN_PHONE_DIGITS:
        # Every kind needs an "@" (e-mail) or at least six digits (the shortest phone number; identifiers
        # have ten or more): most texts have neither and skip the matchers, the costly part of a scan.
        return []
    return _findings(text)


def _findings(text: str) -> list[tuple[FindingKind, str]]:
    """Every matcher over an already normalised text."""
    found: set[FindingKind] = set()
    if _has_phone(text):
        found.add("phone")
    if _has_email(text):
        found.add("email")
    if any(_snils_ok("".join(m.group(1, 3, 4, 5))) for m in _SNILS.finditer(text)):
        found.add("ru_snils")
    if any(_inn_ok(m[1]) for m in _INN.finditer(text)):
        found.add("ru_inn")
    if _has_passport(text):
        found.add("ru_passport")
    if any(_iin_ok(m[1]) for m in _IIN.finditer(text)):
        found.add("kz_iin")
    if any(_pinfl_ok(m[1]) for m in _PINFL.finditer(text)):
        found.add("uz_pinfl")
    return [(kind, _DESCRIPTIONS[kind]) for kind in _DESCRIPTIONS if kind in found]


def scan_document(doc: SharedDocument, *, allow_byline: bool) -> list[Finding]:
    """Every piece of personal data in every string of `doc`, one finding per kind and location.

    The byline's name is a finding only when `allow_byline` is False (the policy decides whether a byline
    may travel); contact data or an identifier inside it is always one.
    """
    findings: list[Finding] = []
    if doc.byline is not None and not allow_byline:
        findings.append(Finding("byline", "byline.name", f"{_DESCRIPTIONS['byline']} in byline.name"))
    for path, value in _strings(to_builtins(doc), ""):
        findings.extend(Finding(kind, path, f"{description} in {path}") for kind, description in scan_text(value))
    return findings


def check_document(doc: SharedDocument, *, allow_byline: bool) -> None:
    """Raise PersonalDataError (a BorderError, code "border.personal_data") if `doc` holds personal data."""
    if findings := scan_document(doc, allow_byline=allow_byline):
        raise PersonalDataError(tuple(findings))


# `media/<item id>_<sha256>`, or `media/<item id>/<sha256>` as keys were written before November 2026.
_MEDIA_KEY = re.compile(r"^(media/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}[_/])?(?P<sha>[0-9a-f]{64})$")


def _content_addressed(blob: dict[Any, Any]) -> bool:
    """A blob key the node made itself, `media/<item id>_<sha256>`: only hex, nothing a person wrote."""
    match = _MEDIA_KEY.match(str(blob.get("key", "")))
    return match is not None and match.group("sha") == blob.get("sha256")


def _strings(value: object, path: str) -> Iterator[tuple[str, str]]:
    # Walking the serialised form rather than naming fields means a field added to the allow-list later
    # is scanned without anyone remembering to add it here.
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            if key in _NOT_TEXT or (key == "key" and _content_addressed(value)):
                continue
            yield from _strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")


def _normalise(text: str) -> str:
    # NFKC turns full-width digits and at signs into ASCII and no-break spaces into spaces; invisible
    # characters and other scripts' digits would otherwise hide a number from the patterns. ASCII text is
    # left as it is by all three steps, so it skips them.
    if text.isascii():
        return text
    text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))
    return _NON_ASCII_DIGIT.sub(lambda m: str(unicodedata.decimal(m[0])), text)


def _digits(text: str) -> int:
    """How many ASCII digits `text` holds (after _normalise, every decimal digit is one)."""
    return sum(map(text.count, "0123456789"))


def _has_phone(text: str) -> bool:
    if _digits(text) < _MIN_PHONE_DIGITS:
        return False
    for region in _PHONE_REGIONS:
        for _ in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
            return True
    # The matcher rightly ignores digits glued to a word or to other digits in prose, but slugs and blob
    # keys are where a number hides that way ("cardiology79161234567", "mp4-998901234567"), so a bare run
    # of digits as long as a national or international number of the federation is also parsed alone.
    for run in _PHONE_RUN.finditer(text):
        for region in _PHONE_REGIONS:
            try:
                number = phonenumbers.parse(run[0], region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(number):
                return True
    return False


def _has_email(text: str) -> bool:
    # Anchored at each "@" instead of one search over the text: a local-part pattern run from every
    # position of a long text without "@" is quadratic.
    at = text.find("@")
    while at != -1:
        if at > 0 and _EMAIL_LOCAL_END.fullmatch(text[at - 1]) and _EMAIL_DOMAIN.match(text[at + 1 : at + 1 + _EMAIL_DOMAIN_MAX]):
            return True
        at = text.find("@", at + 1)
    return False


def _has_passport(text: str) -> bool:
    # No checksum exists, so a bare ten digits would flag every order and article number. A series and
    # number count only in their printed form "45 06 123456" (2-2-6, single spaces), or in any form
    # ("4506 123456", "4506123456", "45 06 № 123456") with "паспорт"/"passport" within 30 characters.
    for m in _PASSPORT.finditer(text):
        if m[2] == " " and m[4] == " " and m[5] is None:
            return True
        before = text[max(0, m.start() - _PASSPORT_CONTEXT_CHARS) : m.start()]
        after = text[m.end() : m.end() + _PASSPORT_CONTEXT_CHARS]
        if _PASSPORT_CONTEXT.search(before) or _PASSPORT_CONTEXT.search(after):
            return True
    return False


def _weighted(digits: str, weights: tuple[int, ...]) -> int:
    return sum(int(d) * w for d, w in zip(digits, weights, strict=False))


def _snils_ok(digits: str) -> bool:
    if int(digits[:9]) < _SNILS_FIRST_CHECKED:
        return False
    total = _weighted(digits, (9, 8, 7, 6, 5, 4, 3, 2, 1))
    # Below 100 the sum is the control number; 100 and 101 give 00; above, the rest mod 101, where 100
    # again gives 00.
    control = total % 101 % 100
    return control == int(digits[9:])


def _inn_ok(digits: str) -> bool:
    if digits.startswith("00"):  # the first two digits are a region code, 01 and up
        return False
    if len(digits) == 10:
        return _weighted(digits, _INN10_WEIGHTS) % 11 % 10 == int(digits[9])
    return _weighted(digits, _INN12_WEIGHTS_11) % 11 % 10 == int(digits[10]) and _weighted(digits, _INN12_WEIGHTS_12) % 11 % 10 == int(
        digits[11]
    )


def _valid_date(century_digit: str, yy: str, mm: str, dd: str) -> bool:
    century = _CENTURIES.get(century_digit)
    if century is None:
        return False
    try:
        datetime.date(century + int(yy), int(mm), int(dd))
    except ValueError:
        return False
    return True


def _iin_ok(digits: str) -> bool:
    # YYMMDD, then the century-and-sex digit 1-6; a check digit of 10 after both passes is never issued.
    if not _valid_date(digits[6], digits[0:2], digits[2:4], digits[4:6]):
        return False
    check = _weighted(digits, _IIN_WEIGHTS_1) % 11
    if check == 10:
        check = _weighted(digits, _IIN_WEIGHTS_2) % 11
        if check == 10:
            return False
    return check == int(digits[11])


def _pinfl_ok(digits: str) -> bool:
    # Century-and-sex digit 1-6, DDMMYY, district and serial, then the check digit.
    if not _valid_date(digits[0], digits[5:7], digits[3:5], digits[1:3]):
        return False
    return _weighted(digits, tuple(itertools.islice(itertools.cycle((7, 3, 1)), 13))) % 10 == int(digits[13])


NationalIdKind = Literal["ru_snils", "kz_iin", "uz_pinfl"]
_NATIONAL_IDS: Final[dict[NationalIdKind, tuple[int, Callable[[str], bool]]]] = {
    "ru_snils": (11, _snils_ok),
    "kz_iin": (12, _iin_ok),
    "uz_pinfl": (14, _pinfl_ok),
}


def national_id_valid(kind: NationalIdKind, digits: str) -> bool:
    """Whether `digits` is a well-formed national id of this kind, check digit included.

    The same rules the border check finds these ids by; the node uses them to check a doctor's own id at
    registration, so an id the border would not recognise is never stored as one.
    """
    length, check = _NATIONAL_IDS[kind]
    return len(digits) == length and digits.isascii() and digits.isdigit() and check(digits)
