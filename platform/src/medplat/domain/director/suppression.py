"""Small-number suppression of the director's counts, as health statistics offices publish tables: a count
below the region's threshold k is withheld, and so are enough others that it cannot be recovered from a total.

The rule, for one group of counts that add up to a total (shown, or known to the reader some other way):

- primary: every count n with 0 < n < k is withheld (a true zero is shown: it points at nobody);
- complementary ("next smallest cell"): while anything in the group is withheld, the withheld counts must be
  at least two, add up to at least k, and not all be 1; until they do, the smallest count still shown (ties
  by key) is withheld too. Subtracting the shown counts from the total then gives only their sum, which is
  k or more and splits in more than one way, so no withheld count can be told;
- when even the whole group cannot meet that, its total is withheld as well.

Withheld counts are reported as null, never as a range, and primary and complementary ones look the same
(telling them apart would tell that the complementary ones are k or more).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple


class Suppressed(NamedTuple):
    """What one group withholds: its cells' keys, and whether its total must go too."""

    cells: frozenset[str]
    total: bool


def safe(withheld: list[int], threshold: int) -> bool:
    """Whether the sum of these withheld counts, the one thing a reader can get by subtraction, tells none of them."""
    return len(withheld) >= 2 and sum(withheld) >= threshold and sum(withheld) > len(withheld)


def suppress(cells: Mapping[str, int], threshold: int) -> Suppressed:
    """Apply primary and complementary suppression to one group of counts (module docstring)."""
    withheld = {key for key, n in cells.items() if small(n, threshold)}
    shown = sorted((n, key) for key, n in cells.items() if key not in withheld and n > 0)
    while withheld and not safe([cells[key] for key in withheld], threshold):
        if not shown:
            return Suppressed(frozenset(withheld), True)
        withheld.add(shown.pop(0)[1])
    return Suppressed(frozenset(withheld), False)


def small(n: int, threshold: int) -> bool:
    """A count that is withheld on its own account (primary suppression)."""
    return 0 < n < threshold


def published(cells: Mapping[str, int], withheld: frozenset[str]) -> dict[str, int | None]:
    return {key: None if key in withheld else n for key, n in cells.items()}
