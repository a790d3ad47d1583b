"""Webhooks, the Standard Webhooks way: an outbox in the database, signed POSTs, retries.

A terminal status writes a delivery row in the same transaction as the status (nothing is lost
across restarts); ``deliver_due`` sends what is due, retrying with exponential backoff for at
least ``retry_window`` (24 h by default).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from datetime import timedelta
from typing import Any

from loraforge.domain.errors import FetchFailed, NotFound
from loraforge.domain.work import WebhookDelivery
from loraforge.ports import Clock, IdFactory, UnitOfWork, UnitOfWorkFactory, WebhookSender

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
FIRST_RETRY_S = 5.0
MAX_RETRY_S = 3600.0
CLAIM = timedelta(minutes=2)  # a sender that dies mid-send leaves the delivery due again


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` with the secret's key bytes."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(FIRST_RETRY_S * 2 ** max(attempts - 1, 0), MAX_RETRY_S))


class WebhookService:
    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        sender: WebhookSender,
        clock: Clock,
        new_id: IdFactory,
        retry_window_s: float,
    ) -> None:
        self._uow = uow
        self._sender = sender
        self._clock = clock
        self._new_id = new_id
        self._window = timedelta(seconds=retry_window_s)

    def rotate_secret(self, account_id: str) -> str:
        """A new signing secret for the account, returned once (the old one stops working)."""
        secret = new_secret()
        with self._uow(write=True) as uow:
            if uow.accounts.get(account_id) is None:
                raise NotFound(f"No account {account_id}.")
            uow.webhooks.set_secret(account_id, secret)
            uow.commit()
        return secret

    def enqueue(
        self,
        uow: UnitOfWork,
        *,
        account_id: str,
        url: str,
        event: str,
        data: dict[str, Any],
        run_id: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Record a delivery inside the caller's transaction (the outbox). ``run_id``: the
        delivery takes the run's next sequence number, and goes out only after the run's
        earlier deliveries. ``extra``: top-level fields a lifecycle event adds to the payload
        (with its ``sequence``); without it the payload is ``type``, ``timestamp``, ``data``."""
        now = self._clock.now()
        sequence = None if run_id is None else uow.webhooks.last_sequence(run_id) + 1
        payload: dict[str, Any] = {"type": event, "timestamp": now.isoformat()}
        if extra is not None:
            payload |= {"sequence": sequence, **extra}
        body = json.dumps(payload | {"data": data}, separators=(",", ":"))
        uow.webhooks.add(
            WebhookDelivery(
                id="msg_" + self._new_id().replace("-", ""),
                account_id=account_id,
                url=url,
                event=event,
                body=body,
                created_at=now,
                next_attempt_at=now,
                run_id=run_id,
                sequence=sequence,
            )
        )

    def deliver_due(self, *, limit: int = 20) -> int:
        """Send due deliveries once each; return how many were attempted.

        Deliveries are claimed (pushed back by ``CLAIM``) in one short transaction and sent
        outside any transaction, so a slow receiver never holds a database lock.
        """
        with self._uow(write=True) as uow:
            now = self._clock.now()
            due = uow.webhooks.due(now, limit=limit)
            secrets_by_account: dict[str, str] = {}
            for delivery in due:
                delivery.next_attempt_at = now + CLAIM
                uow.webhooks.update(delivery)
                if delivery.account_id not in secrets_by_account:
                    secrets_by_account[delivery.account_id] = self._secret_in(
                        uow, delivery.account_id
                    )
            uow.commit()
        for delivery in due:
            self._attempt(delivery, secrets_by_account[delivery.account_id])
        with self._uow(write=True) as uow:
            for delivery in due:
                uow.webhooks.update(delivery)
            uow.commit()
        return len(due)

    def _attempt(self, delivery: WebhookDelivery, secret: str) -> None:
        now = self._clock.now()
        delivery.attempts += 1
        timestamp = int(now.timestamp())
        headers = {
            "webhook-id": delivery.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, delivery.id, timestamp, delivery.body),
            "content-type": "application/json",
        }
        try:
            status = self._sender.post_json(delivery.url, delivery.body.encode(), headers)
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except FetchFailed as exc:
            error = exc.message
        if error is None:
            delivery.delivered_at = now
            delivery.last_error = None
            return
        delivery.last_error = error
        next_at = now + backoff(delivery.attempts)
        if next_at - delivery.created_at > self._window:
            delivery.failed_at = now
        else:
            delivery.next_attempt_at = next_at

    def _secret_in(self, uow: UnitOfWork, account_id: str) -> str:
        """The account's secret; one is made if it never asked for it (it can rotate to learn
        one and verify from then on)."""
        secret = uow.webhooks.get_secret(account_id)
        if secret is None:
            secret = new_secret()
            uow.webhooks.set_secret(account_id, secret)
        return secret
