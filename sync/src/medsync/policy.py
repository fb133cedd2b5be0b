"""The isolation rules of each region (`regions/<code>/policy.toml`) and the verdicts they give on an item.

Outbound rules run on the origin when an editor previews or publishes; inbound rules run again,
authoritatively, on the target before it applies anything. Both end with the border check.

The file format (every table and key below; unknown keys are an error)::

    region = "kz"                     # must equal the folder's name

    [outbound]                        # what this region lets leave when it is the origin
    share_to = ["ru", "uz"]           # the only regions it may send to (known regions, not itself)
    bylines = "strip_without_consent" # see "bylines" below; applied before anything is sent
    keep_origin_only = true           # optional, and only `true` is accepted: content marked
                                      # origin_only never leaves; the key exists so the file says so

    [inbound]                         # what this region accepts when it is the target
    kinds = ["article", "course", "event", "product_note"]   # item kinds accepted at all
    categories = ["clinical_research", "product_note"]       # optional; absent means any category
    languages_any_of = ["ru", "kk"]   # the item (and each lesson that has texts) needs a text in one
                                      # of these languages; [] means no requirement
    bylines = "strip_without_consent" # "strip_without_consent": keep a byline only if the author's
                                      # cross-border consent is recorded; "always_strip"; "keep"
    max_item_bytes = 2_097_152        # size of the item's canonical JSON (RFC 8785), in bytes
    max_blob_bytes = 209_715_200      # declared length of each blob, in bytes
    max_blobs = 50                    # blobs per item
    media_types = ["image/png", "image/jpeg", "image/webp", "application/pdf", "video/mp4"]

    [inbound.origins.uz]              # one table per accepted origin; an origin without a table is
                                      # refused. Empty: everything the [inbound] rules allow.
    [inbound.origins.ru]
    categories = ["product_note", "event", "congress"]  # optional narrowing for this origin
    kinds = ["product_note", "event"]                   # optional narrowing for this origin

Per-origin lists must be subsets of the region-wide ones. A verdict lists every reason, not only the
first, so the editor's preview shows all that must change. Stripping a byline is not a refusal: it is
recorded as a reason ("policy.byline_stripped") on an accepted verdict.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Final, Literal

import msgspec

from medplat.config import REGION_CODE, known_regions, regions_dir
from medsync.border import scan_document, scan_text
from medsync.errors import PolicyError
from medsync.items import Kind, Language, RegionCode, SharedDocument, Slug, Text, canonical_document

Bylines = Literal["strip_without_consent", "always_strip", "keep"]
MediaType = Annotated[str, msgspec.Meta(pattern=r"^[a-z]+/[a-z0-9.+-]+$")]
PositiveInt = Annotated[int, msgspec.Meta(ge=1, le=2**53 - 1)]

ReasonCode = Literal[
    "policy.origin_not_accepted",
    "policy.kind_not_accepted",
    "policy.category_not_accepted",
    "policy.language_required",
    "policy.origin_only",
    "policy.target_not_allowed",
    "policy.item_too_large",
    "policy.blob_too_large",
    "policy.media_type",
    "policy.too_many_blobs",
    "policy.byline_stripped",
    "border.personal_data",
]

# Reasons that record a change to the item rather than refuse it.
_NOTICES: Final[frozenset[str]] = frozenset({"policy.byline_stripped"})


class OriginRule(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """What a region accepts from one origin; None means whatever the region accepts at all."""

    categories: tuple[Slug, ...] | None = None
    kinds: tuple[Kind, ...] | None = None


class Outbound(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    share_to: tuple[RegionCode, ...]
    bylines: Bylines
    keep_origin_only: Literal[True] = True


class Inbound(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    origins: dict[RegionCode, OriginRule]
    kinds: tuple[Kind, ...]
    languages_any_of: tuple[Language, ...]
    bylines: Bylines
    max_item_bytes: PositiveInt
    max_blob_bytes: PositiveInt
    max_blobs: Annotated[int, msgspec.Meta(ge=0, le=10_000)]
    media_types: tuple[MediaType, ...]
    categories: tuple[Slug, ...] | None = None


class Policy(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One region's isolation rules, as `regions/<code>/policy.toml` states them."""

    region: RegionCode
    outbound: Outbound
    inbound: Inbound


class Reason(msgspec.Struct, frozen=True):
    """Why a verdict is what it is. The message names fields and rules, never personal data."""

    code: ReasonCode
    message: str


class Verdict(msgspec.Struct, frozen=True):
    """The outcome for one item: `document` is what may be sent or applied (None when refused)."""

    accepted: bool
    reasons: tuple[Reason, ...]
    document: SharedDocument | None

    def codes(self) -> list[str]:
        """Its distinct reason codes, sorted: what an audit leaf keeps of it (the messages stay in `federation.verdict`)."""
        return sorted({r.code for r in self.reasons})


def load_policy(code: str, directory: Path | None = None) -> Policy:
    """Read and check `<directory>/<code>/policy.toml`; raises PolicyError naming the file and the field.

    Parsed once per version of the file (its modification time), since every item of every manifest asks.
    """
    directory = directory or regions_dir()
    if not REGION_CODE.match(code):
        raise PolicyError(f"{code!r} is not a region code", code="policy.invalid")
    path = directory / code / "policy.toml"
    try:
        stamp = path.stat().st_mtime_ns
    except OSError as exc:
        raise PolicyError(f"{path}: {exc.strerror}", code="policy.invalid") from None
    return _load_policy(code, path, stamp)


@functools.lru_cache(maxsize=64)
def _load_policy(code: str, path: Path, stamp: int) -> Policy:
    directory = path.parent.parent
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PolicyError(f"{path}: {exc.strerror}", code="policy.invalid") from None
    try:
        policy = msgspec.toml.decode(raw, type=Policy)
    except msgspec.ValidationError as exc:
        raise PolicyError(f"{path}: {exc}", code="policy.invalid") from None
    except msgspec.DecodeError as exc:
        raise PolicyError(f"{path}: not valid TOML: {exc}", code="policy.invalid") from None
    problem = _problem(policy, code, known_regions(directory))
    if problem is not None:
        raise PolicyError(f"{path}: {problem}", code="policy.invalid")
    return policy


def evaluate_outbound(origin_policy: Policy, doc: SharedDocument, *, origin: str, target: str) -> Verdict:
    """May `doc` leave `origin` for `target`? Also strips the byline when the origin's rule says so."""
    reasons, sent = _outbound(origin_policy, doc, origin=origin, target=target)
    return _verdict(reasons, sent)


def evaluate_inbound(target_policy: Policy, doc: SharedDocument, *, origin: str, target: str, document_bytes: int) -> Verdict:
    """May `target` apply `doc` from `origin`? `document_bytes` is the size of the canonical document received."""
    if target != target_policy.region:
        raise ValueError(f"the policy of {target_policy.region} cannot judge what arrives at {target}")
    rules = target_policy.inbound
    reasons: list[Reason] = []
    origin_rule = rules.origins.get(origin)
    if origin_rule is None:
        reasons.append(Reason("policy.origin_not_accepted", f"{target} does not accept content from {_quoted(origin)}"))

    if doc.kind not in rules.kinds:
        reasons.append(Reason("policy.kind_not_accepted", f"{target} does not accept items of kind {doc.kind!r}"))
    elif origin_rule is not None and origin_rule.kinds is not None and doc.kind not in origin_rule.kinds:
        reasons.append(
            Reason("policy.kind_not_accepted", f"{target} accepts from {origin} only kinds {_listed(origin_rule.kinds)}, not {doc.kind!r}")
        )

    category = _quoted(doc.category)
    if rules.categories is not None and doc.category not in rules.categories:
        reasons.append(Reason("policy.category_not_accepted", f"{target} does not accept category {category}"))
    elif origin_rule is not None and origin_rule.categories is not None and doc.category not in origin_rule.categories:
        reasons.append(
            Reason(
                "policy.category_not_accepted",
                f"{target} accepts from {origin} only categories {_listed(origin_rule.categories)}, not {category}",
            )
        )

    if doc.origin_only:
        # The origin should never have sent it; refusing here keeps a faulty origin from leaking it.
        reasons.append(Reason("policy.origin_only", f"the item is marked origin-only and never leaves {origin}"))

    reasons.extend(_language_reasons(rules.languages_any_of, doc, target=target))

    if document_bytes > rules.max_item_bytes:
        reasons.append(
            Reason("policy.item_too_large", f"the item is {document_bytes} bytes; {target} accepts at most {rules.max_item_bytes}")
        )
    if len(doc.blobs) > rules.max_blobs:
        reasons.append(Reason("policy.too_many_blobs", f"the item has {len(doc.blobs)} blobs; {target} accepts at most {rules.max_blobs}"))
    for index, blob in enumerate(doc.blobs):
        if blob.length > rules.max_blob_bytes:
            reasons.append(
                Reason("policy.blob_too_large", f"blobs[{index}] is {blob.length} bytes; {target} accepts at most {rules.max_blob_bytes}")
            )
        if blob.media_type not in rules.media_types:
            reasons.append(
                Reason(
                    "policy.media_type",
                    f"blobs[{index}] is {_quoted(blob.media_type)}; {target} accepts only {_listed(rules.media_types)}",
                )
            )

    stripped, applied = _apply_bylines(rules.bylines, doc, region=target)
    reasons.extend(stripped)
    reasons.extend(_border_reasons(applied))
    return _verdict(reasons, applied)


def preview(doc: SharedDocument, *, origin: str, targets: Iterable[str], directory: Path | None = None) -> dict[str, Verdict]:
    """What each target would make of `doc`: the origin's outbound rules, then the target's inbound rules.

    A target the origin does not share to gets only the outbound verdict (already a refusal), so a
    region without a policy file cannot break the editor's preview.
    """
    origin_policy = load_policy(origin, directory)
    verdicts: dict[str, Verdict] = {}
    for target in targets:
        reasons, sent = _outbound(origin_policy, doc, origin=origin, target=target)
        if target in origin_policy.outbound.share_to:
            size = len(canonical_document(sent))
            inbound = evaluate_inbound(load_policy(target, directory), sent, origin=origin, target=target, document_bytes=size)
            # The border check runs on both sides; the editor needs to see each finding once.
            reasons.extend(r for r in inbound.reasons if r not in reasons)
            sent = inbound.document or sent
        verdicts[target] = _verdict(reasons, sent)
    return verdicts


def _outbound(policy: Policy, doc: SharedDocument, *, origin: str, target: str) -> tuple[list[Reason], SharedDocument]:
    if origin != policy.region:
        raise ValueError(f"the policy of {policy.region} cannot judge what leaves {origin}")
    reasons: list[Reason] = []
    if doc.origin_only:
        reasons.append(Reason("policy.origin_only", f"the item is marked origin-only and never leaves {origin}"))
    if target not in policy.outbound.share_to:
        reasons.append(
            Reason("policy.target_not_allowed", f"{origin} shares only to {_listed(policy.outbound.share_to)}, not to {_quoted(target)}")
        )
    stripped, sent = _apply_bylines(policy.outbound.bylines, doc, region=origin)
    reasons.extend(stripped)
    reasons.extend(_border_reasons(sent))
    return reasons, sent


def _verdict(reasons: Sequence[Reason], document: SharedDocument) -> Verdict:
    accepted = all(r.code in _NOTICES for r in reasons)
    return Verdict(accepted=accepted, reasons=tuple(reasons), document=document if accepted else None)


def _apply_bylines(rule: Bylines, doc: SharedDocument, *, region: str) -> tuple[list[Reason], SharedDocument]:
    if doc.byline is None or rule == "keep":
        return [], doc
    if rule == "strip_without_consent":
        if doc.byline.cross_border_consent:
            return [], doc
        why = f"{region} removes bylines unless the author's consent to cross-border transfer is on record, and none is"
    else:
        why = f"{region} removes every byline"
    return [Reason("policy.byline_stripped", f"the byline was removed: {why}")], msgspec.structs.replace(doc, byline=None)


def _language_reasons(required: tuple[Language, ...], doc: SharedDocument, *, target: str) -> list[Reason]:
    if not required:
        return []

    def readable(texts: Iterable[Text]) -> bool:
        return any(t.language in required for t in texts)

    wanted = _listed(required)
    reasons: list[Reason] = []
    if not readable(doc.texts):
        reasons.append(Reason("policy.language_required", f"{target} requires a text in one of {wanted}; the item has none"))
    # A course readable on its cover but not in its lessons is no more usable than one in no language.
    reasons.extend(
        Reason("policy.language_required", f"{target} requires a text in one of {wanted}; lessons[{index}] has none")
        for index, lesson in enumerate(doc.lessons)
        if lesson.texts and not readable(lesson.texts)
    )
    return reasons


def _border_reasons(doc: SharedDocument) -> list[Reason]:
    # Bylines are this module's decision (already applied), so the border check only looks for data.
    return list(_border_findings(doc))


@functools.lru_cache(maxsize=128)
def _border_findings(doc: SharedDocument) -> tuple[Reason, ...]:
    """The scan is the costly part of a verdict and both sides of a preview (and every target of a build)
    ask it about the same frozen document, so the answer is kept for the latest documents."""
    return tuple(Reason("border.personal_data", finding.reason) for finding in scan_document(doc, allow_byline=True))


def _quoted(value: str) -> str:
    # Reasons go into receipts and logs on both sides; a slug or media type can be made to carry a phone
    # number, so a value is echoed only when the border check finds nothing in it.
    if scan_text(value) or len(value) > 100:
        return "(a value withheld from this message)"
    return repr(value)


def _listed(values: Iterable[str]) -> str:
    return ", ".join(values) or "nothing"


def _problem(policy: Policy, code: str, known: Sequence[str]) -> str | None:
    """The first thing in a decoded policy that its types cannot express, as 'field: what is wrong'."""
    if policy.region != code:
        return f"region: says {policy.region!r} but the file lives in the folder of {code!r}"
    peers = [("outbound.share_to", region) for region in policy.outbound.share_to]
    peers += [(f"inbound.origins.{region}", region) for region in policy.inbound.origins]
    for field, region in peers:
        if region == code:
            return f"{field}: names the region itself"
        if region not in known:
            return f"{field}: {region!r} is not a known region ({_listed(known)})"
    inbound = policy.inbound
    for origin, rule in inbound.origins.items():
        if inbound.categories is not None and rule.categories is not None:
            extra = sorted(set(rule.categories) - set(inbound.categories))
            if extra:
                return f"inbound.origins.{origin}.categories: {_listed(extra)} not in inbound.categories"
        if rule.kinds is not None:
            extra = sorted(set(rule.kinds) - set(inbound.kinds))
            if extra:
                return f"inbound.origins.{origin}.kinds: {_listed(extra)} not in inbound.kinds"
    return None
