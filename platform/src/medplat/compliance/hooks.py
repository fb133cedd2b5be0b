"""Audit leaves other domains append in their own transaction: staff access to personal data, roles granted to staff,
data-subject request steps.

Payloads carry ids, codes and counts only (medplat.audit.log.check_payload refuses anything else). A staff
subject that is not a plain lower-case token (it could be an e-mail address) is logged as a keyed hash of it:
HMAC-SHA256 under a subkey of the node's data key (medplat.fields.subkey, purpose `staff-pseudonym`). The same
subject always gets the same pseudonym on one node, so an auditor can follow a person across leaves, while nobody
without the node's data key can confirm a guess by hashing it, and two nodes name the same person differently.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from medplat.audit import log
from medplat.audit.log import AuditKind
from medplat.fields import subkey

_TOKEN = re.compile(r"[a-z0-9][a-z0-9_.:-]{0,63}")
PSEUDONYM_PREFIX = "hmac:"
_PSEUDONYM_PURPOSE = b"staff-pseudonym"


def staff_ref(subject: str, data_key: bytes) -> str:
    """How a staff member is named in the log: their token subject, or a keyed hash of it if it could be personal.

    `data_key` is the node's (Settings.data_key). A subject that already looks like a pseudonym is hashed too, so no
    token can pass itself off as another member of staff."""
    if _TOKEN.fullmatch(subject) and sum(c.isdigit() for c in subject) <= 6 and not subject.startswith(PSEUDONYM_PREFIX):
        return subject
    key = subkey(data_key, _PSEUDONYM_PURPOSE)
    return PSEUDONYM_PREFIX + hmac.new(key, subject.encode(), hashlib.sha256).hexdigest()[:32]


def personal_access(session: Session, data_key: bytes, staff: str, what: str, **ids: Any) -> int:
    """Staff `staff` read personal data (`what`, with ids and counts); `data_key` is the node's, for `staff_ref`."""
    payload = {
        "staff": staff_ref(staff, data_key),
        "what": what,
        **{k: str(v) if isinstance(v, uuid.UUID) else v for k, v in ids.items()},
    }
    return log.append(session, AuditKind.PERSONAL_DATA_ACCESS, payload)


async def personal_access_async(session: AsyncSession, data_key: bytes, staff: str, what: str, **ids: Any) -> int:
    return await session.run_sync(lambda s: personal_access(s, data_key, staff, what, **ids))


def role_granted(session: Session, data_key: bytes, staff: str, roles: Sequence[str], *, token_id: str, expires: int, operator: str) -> int:
    """Roles granted to a member of staff for a token's lifetime (`medfed token issue`): who, which, until when, by whom."""
    payload = {
        "change": "granted",
        "staff": staff_ref(staff, data_key),
        "roles": sorted(roles),
        "token_id": token_id,
        "expires": expires,
        "operator": staff_ref(operator, data_key),
    }
    return log.append(session, AuditKind.ROLE_CHANGE, payload)


def dsr_step(session: Session, dsr_id: uuid.UUID, kind: str, step: str, **extra: Any) -> int:
    """One step of a data-subject request: received, completed, rejected, extended, reminder_due_soon, reminder_overdue."""
    return log.append(session, AuditKind.DSR_STEP, {"dsr_id": str(dsr_id), "kind": kind, "step": step, **extra})


async def dsr_step_async(session: AsyncSession, dsr_id: uuid.UUID, kind: str, step: str, **extra: Any) -> int:
    return await session.run_sync(lambda s: dsr_step(s, dsr_id, kind, step, **extra))
