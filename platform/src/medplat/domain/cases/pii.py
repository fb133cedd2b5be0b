"""The personal-data check of a clinical case's free text.

Phones, e-mail addresses and RU/KZ/UZ national identifiers are found by the same scanner the border uses
(`medsync.border.scan_text`, checksums included). Names are found best-effort, by patterns rather than a
register of people (there is none to check against):

- a common first name (a short list of Russian, Kazakh, Uzbek and English ones) followed by a capitalised word;
- a word with a patronymic ending (-ович, -евич, -овна, -евна, -ична, -улы, -кызы, -ugli, -qizi, -ovich, -ovna …)
  next to a capitalised word;
- initials with a surname: "И. И. Иванов", "Иванов И.И.", "A. Karimova" (one initial only beside a word with
  a surname's ending);
- a salutation or role before a capitalised word: "пациентка Иванова", "Mrs Smith", "г-жа …".

Capitalised pairs alone are not enough (product names such as "La Roche-Posay" are capitalised too). A
name spelled in lower case, or one not matching these shapes, passes: moderators still read every case.
"""

from __future__ import annotations

import re

from medsync.border import scan_text

_FIRST_NAMES = frozenset(
    """
    александр алексей анатолий андрей антон артём артем борис вадим валентин валерий василий виктор виталий
    владимир владислав вячеслав геннадий георгий григорий даниил денис дмитрий евгений егор иван игорь илья
    кирилл константин леонид максим михаил никита николай олег павел пётр петр роман сергей станислав степан
    тимур фёдор федор юрий ярослав александра алёна алена алина анастасия анна валентина валерия вера
    виктория галина дарья диана евгения екатерина елена елизавета жанна зоя ирина карина кристина ксения
    лариса людмила любовь маргарита марина мария надежда наталья наталия нина оксана ольга полина светлана
    софья софия тамара татьяна ульяна юлия яна
    айгерим айгуль айдана айжан айнур алия асель аружан асхат бауыржан гульнара дамир данияр ерлан ержан
    жанар жандос канат куаныш мадина нурлан нурсултан сауле серик тимур шынар
    азиз акмаль алишер бахтиёр бобур гульноза дильноза джамшид жамшид зарина камола мохира нодира нигора
    отабек рустам санжар севара улугбек фарход шахноза шерзод
    alexander alexey andrey anna anastasia dmitry elena ekaterina irina ivan maria mikhail natalia olga pavel
    sergey svetlana tatiana vladimir yulia aigerim aliya asel nurlan yerlan dilnoza aziz alisher bobur
    jamshid rustam sardor shakhnoza john james robert michael william david mary patricia jennifer linda
    elizabeth barbara susan jessica sarah karen emma olivia sophia
    """.split()  # noqa: SIM905 (a word list reads better as text)
)
_CAP = r"[A-ZА-ЯЁӘҒҚҢӨҰҮҺІЎҚҒҲ][a-zа-яёәғқңөұүһіўқғҳ'’-]+"
_CAP_PAIR = re.compile(rf"\b({_CAP})\s+({_CAP})")
_PATRONYMIC = re.compile(
    r"(?:ович|евич|ьич|овна|евна|ична|инична|улы|уулу|кызы|қызы|угли|ўғли|қизи|кизи|ovich|evich|ovna|evna|ichna|uly|kyzy|ugli|o'g'li|qizi)$",
    re.IGNORECASE,
)
_SURNAME = re.compile(
    r"(?:ов|ев|ёв|ин|ын|ова|ева|ёва|ина|ына|ский|цкий|ская|цкая|енко|ко|ук|юк|швили|дзе|ян|ova|eva|ov|ev|in|ina|sky|skaya|enko)$"
)
_TWO_INITIALS = r"[A-ZА-ЯЁ]\.\s?[A-ZА-ЯЁ]\."
_INITIALS_FIRST = re.compile(rf"\b(?:{_TWO_INITIALS}|[A-ZА-ЯЁ]\.)\s?({_CAP})")
_INITIALS_AFTER = re.compile(rf"\b({_CAP})\s+(?:{_TWO_INITIALS}|[A-ZА-ЯЁ]\.)")
_TWO = re.compile(_TWO_INITIALS)
_SALUTATION = re.compile(
    rf"\b(?:пациент(?:ка|а|у|ке|ом|кой)?|больн(?:ой|ая|ого|ую)|г-н|г-жа|господин|госпожа|mr|mrs|ms|miss|patient|науқас|bemor)\.?\s+{_CAP}",
    re.IGNORECASE,
)


def has_name(value: str) -> bool:
    """Whether `value` seems to hold a person's name (best-effort; see the module's docstring)."""
    if _SALUTATION.search(value):
        return True
    for pattern in (_INITIALS_FIRST, _INITIALS_AFTER):
        for match in pattern.finditer(value):
            # Two initials always; one initial only before or after a word shaped like a surname ("vitamin C. Then" passes).
            if _TWO.search(match.group(0)) or _SURNAME.search(match.group(1)):
                return True
    for match in _CAP_PAIR.finditer(value):
        first, second = match.group(1), match.group(2)
        if first.lower() in _FIRST_NAMES or second.lower() in _FIRST_NAMES:
            return True
        if _PATRONYMIC.search(first) or _PATRONYMIC.search(second):
            return True
    return False


def findings(field: str, value: str) -> list[dict[str, str]]:
    """One error per kind of personal data in `value`, naming the field; never quoting the value."""
    found = [{"field": field, "reason": f"{description}; a case must be anonymised"} for _, description in scan_text(value)]
    if has_name(value):
        found.append({"field": field, "reason": "looks like a person's name; a case must be anonymised"})
    return found
