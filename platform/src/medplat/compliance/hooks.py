"""Audit leaves other domains append in their own transaction: staff access to personal data, roles granted to staff,
data-subject request steps.

Payloads carry ids, codes and counts only (medplat.audit.log.check_payload refuses anything else). A staff
subject that is not a plain lower-case token (it could be an e-mail address) is logged as its SHA-256.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from medplat.audit import log
from medplat.audit.log import AuditKind

_TOKEN = re.compile(r"[a-z0-9][a-z0-9_.:-]{0,63}")


def staff_ref(subject: str) -> str:
    """How a staff member is named in the log: their token subject, or its hash if it could be personal."""
    if _TOKEN.fullmatch(subject) and sum(c.isdigit() for c in subject) <= 6:
        return subject
    return "sha256:" + hashlib.sha256(subject.encode()).hexdigest()[:32]


def personal_access(session: Session, staff: str, what: str, **ids: Any) -> int:
    payload = {"staff": staff_ref(staff), "what": what, **{k: str(v) if isinstance(v, uuid.UUID) else v for k, v in ids.items()}}
    return log.append(session, AuditKind.PERSONAL_DATA_ACCESS, payload)


async def personal_access_async(session: AsyncSession, staff: str, what: str, **ids: Any) -> int:
    return await session.run_sync(lambda s: personal_access(s, staff, what, **ids))


def role_granted(session: Session, staff: str, roles: Sequence[str], *, token_id: str, expires: int, operator: str) -> int:
    """Roles granted to a member of staff for a token's lifetime (`medfed token issue`): who, which, until when, by whom."""
    payload = {
        "change": "granted",
        "staff": staff_ref(staff),
        "roles": sorted(roles),
        "token_id": token_id,
        "expires": expires,
        "operator": staff_ref(operator),
    }
    return log.append(session, AuditKind.ROLE_CHANGE, payload)


def dsr_step(session: Session, dsr_id: uuid.UUID, kind: str, step: str, **extra: Any) -> int:
    """One step of a data-subject request: received, completed, rejected, extended, reminder_due_soon, reminder_overdue."""
    return log.append(session, AuditKind.DSR_STEP, {"dsr_id": str(dsr_id), "kind": kind, "step": step, **extra})


async def dsr_step_async(session: AsyncSession, dsr_id: uuid.UUID, kind: str, step: str, **extra: Any) -> int:
    return await session.run_sync(lambda s: dsr_step(s, dsr_id, kind, step, **extra))
