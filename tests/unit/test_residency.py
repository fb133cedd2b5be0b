"""Every mapped class declares where it lives; no SHARED table points at a PERSONAL one."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import medplat.domain
from medplat.db.models import MODEL_MODULES, all_mappers
from medplat.residency import DataCategory, Residency, Violation, check_mappers


def test_every_model_of_the_node_declares_residency_and_category() -> None:
    mappers = all_mappers()
    assert len(mappers) >= 3
    assert check_mappers(mappers) == []


def test_the_first_models_exercise_personal_shared_and_node_local() -> None:
    declared = {m.class_.__name__: (m.class_.__residency__, m.local_table.schema) for m in all_mappers()}
    assert declared["Doctor"] == (Residency.PERSONAL, "personal")
    assert declared["ContentItem"] == (Residency.SHARED, "shared")
    assert declared["WorkerHeartbeat"] == (Residency.NODE_LOCAL, "node")


def test_every_module_that_defines_models_is_registered() -> None:
    """A model module left out of medplat.db.models would escape the checks above and Alembic."""
    registered = {m.__name__ for m in MODEL_MODULES}
    for info in pkgutil.walk_packages(medplat.domain.__path__, "medplat.domain."):
        if info.name.endswith(".models"):
            assert info.name in registered, f"{info.name} is not imported by medplat.db.models"
            importlib.import_module(info.name)


class _Base(DeclarativeBase):
    pass


class _Person(_Base):
    __tablename__ = "person"
    __table_args__ = {"schema": "personal"}
    __residency__ = Residency.PERSONAL
    __data_category__ = DataCategory.IDENTITY
    id: Mapped[int] = mapped_column(primary_key=True)


class _Undeclared(_Base):
    __tablename__ = "undeclared"
    __table_args__ = {"schema": "shared"}
    id: Mapped[int] = mapped_column(primary_key=True)


class _UnknownValues(_Base):
    __tablename__ = "unknown_values"
    __table_args__ = {"schema": "shared"}
    __residency__ = "everywhere"
    __data_category__ = "stuff"
    id: Mapped[int] = mapped_column(primary_key=True)


class _Misplaced(_Base):
    __tablename__ = "misplaced"
    __table_args__ = {"schema": "shared"}
    __residency__ = Residency.PERSONAL
    __data_category__ = DataCategory.HEALTH
    id: Mapped[int] = mapped_column(primary_key=True)


class _LeakyArticle(_Base):
    __tablename__ = "leaky_article"
    __table_args__ = {"schema": "shared"}
    __residency__ = Residency.SHARED
    __data_category__ = DataCategory.CONTENT
    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("personal.person.id"))
    title: Mapped[str] = mapped_column(String(10))


class _InheritsDeclaration(_Person):
    """Declarations are not inherited: a subclass must say for itself where it lives."""

    __tablename__ = "inherits"
    __table_args__ = {"schema": "personal"}
    id: Mapped[int] = mapped_column(ForeignKey("personal.person.id"), primary_key=True)


def _problems(cls: type) -> list[str]:
    mapper = next(m for m in _Base.registry.mappers if m.class_ is cls)
    everything = list(_Base.registry.mappers)
    own = [v for v in check_mappers(everything) if v.subject.endswith(cls.__qualname__) or v.subject.endswith(mapper.local_table.fullname)]
    return [v.problem for v in own]


def test_a_missing_declaration_fails() -> None:
    assert _problems(_Undeclared) == ["declares no __residency__", "declares no __data_category__"]


def test_an_unknown_declaration_fails() -> None:
    assert _problems(_UnknownValues) == ["declares an unknown residency 'everywhere'", "declares an unknown data category 'stuff'"]


def test_a_table_outside_the_schema_of_its_class_fails() -> None:
    assert _problems(_Misplaced) == ["is PERSONAL but its table is in schema 'shared' (allowed: personal)"]


def test_a_foreign_key_from_shared_to_personal_fails() -> None:
    assert _problems(_LeakyArticle) == ["SHARED table has a foreign key author_id -> personal.person.id to a PERSONAL table"]


def test_an_inherited_declaration_does_not_count() -> None:
    assert _problems(_InheritsDeclaration) == ["declares no __residency__", "declares no __data_category__"]


@pytest.mark.parametrize("violation", [Violation("x.Y", "declares no __residency__")])
def test_violations_read_as_one_line(violation: Violation) -> None:
    assert str(violation) == "x.Y: declares no __residency__"
