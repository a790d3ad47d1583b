"""Runtime configuration, read from ``LORAFORGE_*`` environment variables (and CLI flags).

Every field is documented in the settings table of docs/settings.md; a test fails when one is
missing.
Nothing reads settings at import time: build ``Settings()`` and pass it down.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LORAFORGE_", extra="ignore")

    data_dir: Path = Field(Path("data"), description="Folder for the SQLite database, blobs, keys.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default sqlite:///<data_dir>/loraforge.db."
    )
    blob_store: Literal["local", "s3"] = Field(
        "local",
        description="Where image bytes are kept: `local` (files under the data dir) or `s3` "
        "(a bucket of any S3-compatible store, shared by every server and worker).",
    )
    s3_bucket: str | None = Field(
        None, description="Bucket holding the blobs when `blob_store` is `s3` (required then)."
    )
    s3_endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint (MinIO, Ceph, R2...); unset: AWS S3."
    )
    s3_region: str | None = Field(
        None, description="Region of the bucket; unset: the AWS configuration's, else us-east-1."
    )
    s3_prefix: str | None = Field(
        None, description="Folder-like key prefix of the blobs in the bucket, e.g. `loraforge/`."
    )
    s3_timeout_s: float = Field(
        10.0,
        gt=0,
        description="S3: seconds to connect and to wait for each answer before a try fails; "
        "after 3 tries the blob store counts as down (503).",
    )
    db_connect_timeout_s: int = Field(
        5,
        ge=2,
        description="PostgreSQL: seconds to connect (and for a pooled connection's liveness "
        "check) before the database counts as down (503); whole seconds, at least 2.",
    )
    db_statement_timeout_s: float = Field(
        15.0,
        ge=0,
        description="PostgreSQL: longest a statement of the server or a worker may run "
        "(PostgreSQL cancels it: 503); a server silent for this long plus 1 s counts as hung "
        "and its connection is dropped. Migrations have no limit (0: none).",
    )
    db_pool_timeout_s: float = Field(
        5.0,
        gt=0,
        description="Seconds a request waits for a free database connection before 503.",
    )
    ready_timeout_s: float = Field(
        5.0,
        gt=0,
        description="Longest `/readyz` waits for the database and the blob store before 503.",
    )
    host: str = Field("127.0.0.1", description="Address `loraforge serve` binds to.")
    port: int = Field(8000, description="Port `loraforge serve` listens on.")
    public_url: str | None = Field(
        None, description="Base URL used in links (image `url`); default: the request's own."
    )
    signing_secret: str | None = Field(
        None, description="Secret for signed image links; default: generated in the data dir."
    )
    signed_url_ttl_s: int = Field(3600, ge=1, description="Lifetime of signed image links (s).")
    max_request_bytes: int = Field(20 * MiB, ge=1, description="Largest request body (413 above).")
    max_data_bytes: int = Field(10 * MiB, ge=1, description="Largest body for .../data uploads.")
    max_archive_bytes: int = Field(
        200 * MiB,
        ge=1,
        description="Largest body of a training-set ZIP (`POST .../data/archive`; 413 above).",
    )
    max_archive_entries: int = Field(
        1000, ge=1, description="Most files in a training-set ZIP (folders not counted)."
    )
    max_archive_inflated_bytes: int = Field(
        400 * MiB,
        ge=1,
        description="Most bytes the files of a training-set ZIP may inflate to together (each "
        "one at most `LORAFORGE_MAX_DATA_BYTES`).",
    )
    max_images_per_type: int = Field(20, ge=0, description="Images of each type per model.")
    max_pixels: int = Field(50_000_000, ge=1, description="Largest width x height accepted.")
    max_frames: int = Field(1000, ge=1, description="Most frames in an animated upload.")
    max_page_size: int = Field(100, ge=1, description="Largest `pageSize` of a listing.")
    max_checkpoints_per_training: int | None = Field(
        None,
        ge=0,
        description="Checkpoints (the LoRA at a sample step) kept per training, the latest "
        "ones; unset: one at every sample step but the last, whose LoRA is the final weights.",
    )
    image_workers: int = Field(
        2, ge=1, description="Images decoded at once; bounds CPU and memory under load."
    )
    image_workers_per_account: int | None = Field(
        None,
        ge=1,
        description="Decode slots one account may hold at once; unset: half of "
        "`image_workers`, rounded up.",
    )
    image_queue_per_account: int = Field(
        32,
        ge=1,
        description="Uploads of one account waiting for a decode slot; more get 429.",
    )
    image_wait_s: float = Field(
        30.0, gt=0, description="Longest an upload waits for a decode slot before 503 (s)."
    )
    fetch_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Wall-clock limit on a whole URL fetch: DNS, connect, headers and body of "
        "every redirect hop (s).",
    )
    fetch_slots: int = Field(
        16,
        ge=1,
        description="URL uploads fetched at once by one server process, on threads of their "
        "own; more answer 503 with Retry-After.",
    )
    fetch_slots_per_account: int = Field(
        4,
        ge=1,
        description="URL uploads of one account fetched at once; more answer 429 with Retry-After.",
    )
    fetch_allow_hosts: list[str] = Field(
        default_factory=list,
        description="host:port entries exempt from the SSRF address checks (test servers).",
    )
    blob_sweep_interval_s: int = Field(
        3600, ge=0, description="Seconds between unreferenced-blob sweeps in the server (0: off)."
    )
    blob_sweep_grace_s: int = Field(
        3600,
        ge=0,
        description="Blobs younger than this are never swept (uploads in flight would store "
        "them again).",
    )
    auth_cache_s: float = Field(
        0.0,
        ge=0,
        description="Seconds a checked API key is remembered; a revoke in another process "
        "takes effect after at most this long (0: check every request).",
    )
    auth_max_failures: int = Field(
        20,
        ge=1,
        description="Failed authentications per minute from one client address, or with one "
        "key prefix, after which further failures answer 429 (valid keys still pass).",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="IPs or CIDRs of reverse proxies whose X-Forwarded-For / Forwarded name "
        "the client address; from any other peer those headers are ignored.",
    )
    header_timeout_s: float = Field(
        10.0, gt=0, description="Time a connection has to send a complete request head."
    )
    body_timeout_s: float = Field(
        30.0, gt=0, description="Longest wait for the next piece of a request body (408)."
    )
    keepalive_timeout_s: int = Field(
        5, ge=1, description="Seconds an idle keep-alive connection stays open."
    )
    ws_auth_timeout_s: float = Field(
        10.0, gt=0, description="Time a Runware WebSocket has to authenticate before it is closed."
    )
    max_event_streams: int = Field(
        20, ge=1, description="Open event streams (SSE) per account per server process (429)."
    )
    event_poll_s: float = Field(
        0.5, gt=0, description="How often an event stream's subject is read (one read per subject)."
    )
    log_level: str = Field("info", description="Log level of the server.")
    workers: int = Field(
        1, ge=0, description="Worker processes `loraforge serve` starts and supervises (0: none)."
    )
    worker_poll_s: float = Field(0.5, gt=0, description="How often an idle worker looks for jobs.")
    job_lease_s: float = Field(
        60.0, gt=0, description="A job whose worker sent no heartbeat this long is taken over."
    )
    job_heartbeat_s: float = Field(
        5.0, gt=0, description="Seconds between a busy worker's heartbeats (keep < lease)."
    )
    queue: Literal["inline", "celery"] = Field(
        "inline",
        description="How workers learn of new jobs: `inline` (they poll the database) or "
        "`celery` (a Redis-backed Celery queue; workers may run on other machines).",
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0", description="The Celery broker when `queue` is `celery`."
    )
    celery_queue: str = Field("loraforge", description="Name of the Celery queue jobs go to.")
    job_requeue_s: float = Field(
        30.0,
        gt=0,
        description="With `celery`: how often each worker hands jobs whose worker died or "
        "whose message was lost back to the queue.",
    )
    job_max_attempts: int = Field(
        3, ge=1, description="Attempts before a job whose workers keep dying is failed."
    )
    base_models_config: Path | None = Field(
        None, description="JSON file listing operator base models (SD 1.5 / SDXL)."
    )
    default_base_model: str | None = Field(
        None, description="Base model for new models; default: the config's first, else tiny."
    )
    webhook_retry_window_s: float = Field(
        90_000, gt=0, description="How long failed webhook deliveries are retried (s, >= 24 h)."
    )
    runware_retention_days: int = Field(
        30,
        ge=0,
        description=(
            "Days after its last use (upload, fetch, use in a task) that an image uploaded "
            "through the Runware endpoint is deleted, at the next blob sweep (0: kept forever)."
        ),
    )
    captioning_model_dir: Path | None = Field(
        None,
        description=(
            "Local transformers image-to-text model folder (BLIP, Florence-2, or a chat model "
            "such as SmolVLM) whose background jobs caption training images uploaded without "
            "a caption; unset: no automatic captions (`POST .../captions` answers 409)."
        ),
    )
    captioning_prompt: str | None = Field(
        None,
        max_length=1000,
        description=(
            "Prompt of a prompt-based captioning model: a task token for Florence-2 "
            "(`<MORE_DETAILED_CAPTION>`), an instruction for a chat model (`Describe this "
            "image in one sentence.`); unset: the model captions unprompted (BLIP)."
        ),
    )
    captioning_max_new_tokens: int = Field(
        30, ge=1, le=1000, description="Longest automatic caption, in tokens."
    )
    dataset_min_images: int = Field(
        5,
        ge=1,
        description=(
            "Usable training images a model needs for its dataset report to be `ready` "
            '(a training with `"requireReadyDataset": true` refuses fewer).'
        ),
    )
    scenario_base_models: dict[str, str] = Field(
        default_factory=dict,
        description=(
            'Scenario LoRA type to base model, JSON such as {"flux.1-lora": "tiny"}; '
            "unmapped types train on the default base model."
        ),
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or CIDR: {entry!r}") from None
        return value

    @model_validator(mode="after")
    def _s3_needs_a_bucket(self) -> Settings:
        # Refuse to start rather than fail on the first upload.
        if self.blob_store == "s3" and not self.s3_bucket:
            raise ValueError("LORAFORGE_BLOB_STORE=s3 needs LORAFORGE_S3_BUCKET")
        return self

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'loraforge.db'}"
