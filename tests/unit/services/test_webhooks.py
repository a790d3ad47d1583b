"""WebhookService over in-memory fakes: the outbox written with the status, Standard Webhooks
signing, retries with backoff inside the retry window, and each account's secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from loraforge.domain.errors import FetchFailed, NotFound
from loraforge.domain.work import WebhookDelivery
from loraforge.ports import UnitOfWorkFactory, WebhookSender
from loraforge.services.webhooks import (
    CLAIM,
    MAX_RETRY_S,
    SECRET_PREFIX,
    WebhookService,
    backoff,
    sign,
)
from tests.fakes import FakeClock, FakeIds, FakeUnitOfWorkFactory, seed_account

ME = "acct-me"
URL = "https://hooks.example/receive"
DAY_AND_AN_HOUR_S = 90_000  # the default retry window


@dataclass
class Sent:
    url: str
    body: bytes
    headers: dict[str, str]


@dataclass
class FakeSender:
    """Answers each POST with the next status (the last one repeats), or raises it."""

    answers: list[int | Exception] = field(default_factory=lambda: [200])
    sent: list[Sent] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)

    def post_json(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        self.sent.append(Sent(url, body, dict(headers)))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        self.answered.append(answer)
        return answer


@pytest.fixture
def uow() -> FakeUnitOfWorkFactory:
    factory = FakeUnitOfWorkFactory()
    seed_account(factory, ME)
    return factory


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sender() -> FakeSender:
    return FakeSender()


@pytest.fixture
def webhooks(uow: FakeUnitOfWorkFactory, clock: FakeClock, sender: FakeSender) -> WebhookService:
    port: UnitOfWorkFactory = uow
    send: WebhookSender = sender
    return WebhookService(
        uow=port,
        sender=send,
        clock=clock,
        new_id=FakeIds("id"),
        retry_window_s=DAY_AND_AN_HOUR_S,
    )


def enqueue(
    webhooks: WebhookService, uow: FakeUnitOfWorkFactory, event: str = "training.succeeded"
) -> None:
    with uow(write=True) as tx:
        webhooks.enqueue(tx, account_id=ME, url=URL, event=event, data={"id": "tr-1"})
        tx.commit()


def deliveries(uow: FakeUnitOfWorkFactory) -> list[WebhookDelivery]:
    with uow() as tx:
        return tx.webhooks.list_for_account(ME)


def verifies(secret: str, sent: Sent) -> bool:
    """The receiver's check, written from the Standard Webhooks spec, not from ``sign``."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{sent.headers['webhook-id']}.{sent.headers['webhook-timestamp']}.".encode()
    expected = hmac.new(key, signed + sent.body, hashlib.sha256).digest()
    scheme, _, signature = sent.headers["webhook-signature"].partition(",")
    return scheme == "v1" and hmac.compare_digest(base64.b64decode(signature), expected)


def test_a_delivery_is_written_in_the_caller_s_transaction(
    webhooks: WebhookService, uow: FakeUnitOfWorkFactory, clock: FakeClock
) -> None:
    with uow(write=True) as tx:
        webhooks.enqueue(tx, account_id=ME, url=URL, event="training.failed", data={"id": "x"})
    assert deliveries(uow) == []  # the caller did not commit: no delivery either

    enqueue(webhooks, uow, "training.failed")

    (delivery,) = deliveries(uow)
    assert delivery.id == "msg_id0002"
    assert (delivery.url, delivery.event, delivery.attempts) == (URL, "training.failed", 0)
    assert delivery.created_at == delivery.next_attempt_at == clock.now()
    stamp = clock.now().isoformat()
    assert (
        delivery.body
        == f'{{"type":"training.failed","timestamp":"{stamp}","data":{{"id":"tr-1"}}}}'
    )


def test_a_due_delivery_is_posted_signed_once(
    webhooks: WebhookService, uow: FakeUnitOfWorkFactory, clock: FakeClock, sender: FakeSender
) -> None:
    secret = webhooks.rotate_secret(ME)
    enqueue(webhooks, uow)

    assert webhooks.deliver_due() == 1

    ((delivery,), (sent,)) = deliveries(uow), sender.sent
    assert sent.url == URL
    assert sent.body == delivery.body.encode()
    assert sent.headers["webhook-id"] == delivery.id
    assert sent.headers["webhook-timestamp"] == str(int(clock.now().timestamp()))
    assert sent.headers["content-type"] == "application/json"
    assert verifies(secret, sent)
    assert json.loads(sent.body)["data"] == {"id": "tr-1"}
    assert (delivery.delivered_at, delivery.attempts, delivery.last_error) == (clock.now(), 1, None)
    assert webhooks.deliver_due() == 0  # delivered once


def test_an_account_that_never_asked_gets_a_secret_that_is_kept(
    webhooks: WebhookService, uow: FakeUnitOfWorkFactory, sender: FakeSender
) -> None:
    enqueue(webhooks, uow)
    webhooks.deliver_due()
    with uow() as tx:
        made = tx.webhooks.get_secret(ME)
    assert made is not None
    assert made.startswith(SECRET_PREFIX)

    enqueue(webhooks, uow)
    webhooks.deliver_due()
    rotated = webhooks.rotate_secret(ME)
    enqueue(webhooks, uow)
    webhooks.deliver_due()

    assert [verifies(made, s) for s in sender.sent] == [True, True, False]
    assert verifies(rotated, sender.sent[2])


def test_rotating_makes_a_new_secret_each_time(webhooks: WebhookService) -> None:
    first, second = webhooks.rotate_secret(ME), webhooks.rotate_secret(ME)

    assert first.startswith(SECRET_PREFIX)
    assert second.startswith(SECRET_PREFIX)
    assert first != second
    assert len(base64.b64decode(first.removeprefix(SECRET_PREFIX))) == 24
    with pytest.raises(NotFound):
        webhooks.rotate_secret("acct-missing")


def test_failing_receiver_is_retried_with_backoff(
    webhooks: WebhookService, uow: FakeUnitOfWorkFactory, clock: FakeClock, sender: FakeSender
) -> None:
    sender.answers = [500, 503, 200]
    enqueue(webhooks, uow)

    assert webhooks.deliver_due() == 1
    assert webhooks.deliver_due() == 0  # not due again yet
    clock.advance(5)
    assert webhooks.deliver_due() == 1
    clock.advance(9)
    assert webhooks.deliver_due() == 0  # backoff doubled to 10 s
    clock.advance(1)
    assert webhooks.deliver_due() == 1

    assert sender.answered == [500, 503, 200]
    assert [s.headers["webhook-id"] for s in sender.sent] == [deliveries(uow)[0].id] * 3
    (delivery,) = deliveries(uow)
    assert delivery.delivered_at is not None
    assert delivery.attempts == 3


def test_retries_go_on_for_at_least_a_day_then_stop(
    webhooks: WebhookService, uow: FakeUnitOfWorkFactory, clock: FakeClock, sender: FakeSender
) -> None:
    sender.answers = [500]
    enqueue(webhooks, uow)
    attempts = 0
    elapsed = 0.0
    while webhooks.deliver_due():
        attempts += 1
        clock.advance(3600)
        elapsed += 3600
        assert attempts < 100

    assert elapsed >= 24 * 3600
    (delivery,) = deliveries(uow)
    assert delivery.failed_at is not None
    assert delivery.delivered_at is None
    assert delivery.last_error == "HTTP 500"


def test_an_unreachable_receiver_is_retried_with_the_reason_kept(
    webhooks: WebhookService, uow: FakeUnitOfWorkFactory, clock: FakeClock, sender: FakeSender
) -> None:
    sender.answers = [FetchFailed("The URL could not be fetched."), 204]
    enqueue(webhooks, uow)

    assert webhooks.deliver_due() == 1
    (failed,) = deliveries(uow)
    assert failed.last_error == "The URL could not be fetched."
    assert failed.next_attempt_at == clock.now() + backoff(1)

    clock.advance(5)
    assert webhooks.deliver_due() == 1
    (delivered,) = deliveries(uow)
    assert (delivered.delivered_at, delivered.last_error) == (clock.now(), None)


def test_a_sender_that_dies_mid_send_leaves_the_delivery_due_again_later(
    webhooks: WebhookService, uow: FakeUnitOfWorkFactory, clock: FakeClock, sender: FakeSender
) -> None:
    sender.answers = [RuntimeError("the process died"), 200]
    enqueue(webhooks, uow)

    with pytest.raises(RuntimeError):
        webhooks.deliver_due()

    assert webhooks.deliver_due() == 0  # still claimed by the sender that died
    clock.advance(CLAIM.total_seconds())
    assert webhooks.deliver_due() == 1
    assert deliveries(uow)[0].delivered_at == clock.now()


def test_deliver_due_sends_at_most_limit(
    webhooks: WebhookService, uow: FakeUnitOfWorkFactory, sender: FakeSender
) -> None:
    for _ in range(3):
        enqueue(webhooks, uow)

    assert webhooks.deliver_due(limit=2) == 2
    assert webhooks.deliver_due(limit=2) == 1
    assert webhooks.deliver_due(limit=2) == 0
    assert len({s.headers["webhook-id"] for s in sender.sent}) == 3


@pytest.mark.parametrize(
    ("attempts", "seconds"), [(0, 5), (1, 5), (2, 10), (3, 20), (10, 2560), (11, MAX_RETRY_S)]
)
def test_backoff_doubles_up_to_an_hour(attempts: int, seconds: float) -> None:
    assert backoff(attempts) == timedelta(seconds=seconds)


def test_sign_is_the_standard_webhooks_signature() -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 24).decode()
    digest = hmac.new(b"k" * 24, b"msg_1.1700000000.{}", hashlib.sha256).digest()

    assert sign(secret, "msg_1", 1700000000, "{}") == "v1," + base64.b64encode(digest).decode()
