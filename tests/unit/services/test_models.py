"""ModelService over in-memory fakes: names, scoping, paging, soft delete."""

from __future__ import annotations

import pytest

from loraforge.domain.entities import Principal
from loraforge.domain.errors import InvalidInput, NotFound
from loraforge.ports import BaseModelCatalog, Clock, UnitOfWorkFactory
from loraforge.services.models import MAX_NAME, ModelService
from loraforge.services.paging import PageRequest, page_request
from tests.fakes import (
    FakeBaseModelCatalog,
    FakeClock,
    FakeIds,
    FakeUnitOfWorkFactory,
    seed_account,
)

ME = Principal(account_id="acct-me", key_id="k1")
OTHER = Principal(account_id="acct-other", key_id="k2")


@pytest.fixture
def uow() -> FakeUnitOfWorkFactory:
    factory = FakeUnitOfWorkFactory()
    seed_account(factory, ME.account_id)
    seed_account(factory, OTHER.account_id)
    return factory


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def service(uow: FakeUnitOfWorkFactory, clock: FakeClock) -> ModelService:
    port: UnitOfWorkFactory = uow
    time: Clock = clock
    catalog: BaseModelCatalog = FakeBaseModelCatalog(["tiny", "sd15-local"])
    return ModelService(uow=port, clock=time, new_id=FakeIds("model"), catalog=catalog)


def test_create_then_get(service: ModelService, uow: FakeUnitOfWorkFactory) -> None:
    model = service.create(ME, display_name="  Dresses  ", custom_model_type="fashion")
    assert model.display_name == "Dresses"
    assert model.custom_model_type == "fashion"
    assert model.base_model == "tiny"  # the catalog's default
    assert model.created_at == model.updated_at
    assert service.get(ME, model.id) == model
    assert uow.state.models == {model.id: model}
    assert uow.opened[-2:] == [True, False]  # created in a write transaction, read in a read one


@pytest.mark.parametrize("name", ["", "   ", "x" * (MAX_NAME + 1), "tab\tname", "nul\x00"])
def test_invalid_names_are_refused(service: ModelService, name: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        service.create(ME, display_name=name)
    assert caught.value.field == "displayName"


def test_base_model_must_be_in_the_catalog(service: ModelService) -> None:
    assert service.create(ME, display_name="m", base_model="sd15-local").base_model == "sd15-local"
    with pytest.raises(InvalidInput) as caught:
        service.create(ME, display_name="m", base_model="sdxl-missing")
    assert caught.value.field == "baseModel"
    assert "tiny" in caught.value.message


def test_longest_name_is_accepted(service: ModelService) -> None:
    assert service.create(ME, display_name="x" * MAX_NAME).display_name == "x" * MAX_NAME


def test_other_accounts_models_are_invisible(service: ModelService) -> None:
    model = service.create(ME, display_name="Mine")
    with pytest.raises(NotFound):
        service.get(OTHER, model.id)
    with pytest.raises(NotFound):
        service.rename(OTHER, model.id, display_name="Stolen")
    with pytest.raises(NotFound):
        service.delete(OTHER, model.id)
    assert service.list(OTHER, PageRequest(page_num=1, page_size=10)).total == 0
    assert service.get(ME, model.id).display_name == "Mine"


def test_list_is_newest_first_and_paged(service: ModelService, clock: FakeClock) -> None:
    created = []
    for i in range(5):
        created.append(service.create(ME, display_name=f"m{i}"))
        clock.advance(1)
    first = service.list(ME, PageRequest(page_num=1, page_size=2))
    assert [m.display_name for m in first.items] == ["m4", "m3"]
    assert (first.total, first.page_num, first.page_size) == (5, 1, 2)
    last = service.list(ME, PageRequest(page_num=3, page_size=2))
    assert [m.id for m in last.items] == [created[0].id]
    beyond = service.list(ME, PageRequest(page_num=4, page_size=2))
    assert (beyond.items, beyond.total) == ([], 5)


def test_same_instant_ties_are_broken_by_id(service: ModelService) -> None:
    a = service.create(ME, display_name="a")
    b = service.create(ME, display_name="b")
    assert [m.id for m in service.list(ME, PageRequest(1, 10)).items] == [b.id, a.id]


def test_rename_updates_name_and_time(
    service: ModelService, clock: FakeClock, uow: FakeUnitOfWorkFactory
) -> None:
    model = service.create(ME, display_name="Old")
    clock.advance(30)
    renamed = service.rename(ME, model.id, display_name="New")
    assert renamed.display_name == "New"
    assert renamed.updated_at == clock.now()
    assert renamed.created_at == model.created_at
    assert uow.state.models[model.id].display_name == "New"
    assert model.id in uow.locked
    with pytest.raises(InvalidInput) as caught:
        service.rename(ME, model.id, display_name=" ")
    assert caught.value.field == "updatedDisplayName"


def test_delete_is_soft_and_final(service: ModelService, uow: FakeUnitOfWorkFactory) -> None:
    model = service.create(ME, display_name="Doomed")
    service.delete(ME, model.id)
    with pytest.raises(NotFound):
        service.get(ME, model.id)
    with pytest.raises(NotFound):
        service.delete(ME, model.id)
    with pytest.raises(NotFound):
        service.rename(ME, model.id, display_name="Back")
    assert service.list(ME, PageRequest(1, 10)).total == 0
    assert uow.state.models[model.id].deleted_at is not None  # the row stays


@pytest.mark.parametrize(
    ("page_num", "page_size", "field"),
    [(0, 10, "pageNum"), (-1, 10, "pageNum"), (1, 0, "pageSize"), (1, 101, "pageSize")],
)
def test_page_request_is_validated(page_num: int, page_size: int, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        page_request(page_num, page_size, max_page_size=100)
    assert caught.value.field == field


def test_page_request_offset() -> None:
    assert page_request(3, 25, max_page_size=100).offset == 50
