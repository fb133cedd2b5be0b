"""Imports every model module so that the metadata and the mapper registry are complete.

Alembic, the residency checks and the data map all start from here; a model module missing from this
list is invisible to them, so tests/unit/test_residency.py also checks that every module under
medplat.domain that defines a mapped class is imported.
"""

from __future__ import annotations

from medplat.audit import models as audit_models
from medplat.compliance import models as compliance_models
from medplat.db.base import Base
from medplat.domain.accounts import models as accounts_models
from medplat.domain.cases import models as cases_models
from medplat.domain.content import models as content_models
from medplat.domain.events import models as events_models
from medplat.domain.system import models as system_models
from medsync import models as sync_models

MODEL_MODULES = (
    accounts_models, cases_models, content_models, events_models, system_models, sync_models, audit_models, compliance_models,
)  # fmt: skip


def all_mappers() -> list:  # type: ignore[type-arg]
    return sorted(Base.registry.mappers, key=lambda m: m.class_.__qualname__)


__all__ = ["MODEL_MODULES", "Base", "all_mappers"]
