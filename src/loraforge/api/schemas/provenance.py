"""Wire shapes of provenance: the signing key, an image's lineage, an erasure."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class SigningKeyRead(BaseModel):
    keyId: str = Field(description="RFC 7638 thumbprint of the public key; receipts name it.")
    algorithm: str = Field(description="`EdDSA` (Ed25519).")
    jwk: dict[str, str] = Field(description="The public key as a JWK (OKP, Ed25519).")
    pem: str = Field(description="The public key as PEM (SubjectPublicKeyInfo).")
    createdAt: datetime


class LineageTraining(BaseModel):
    id: str
    modelId: str
    status: str
    createdAt: datetime
    deletedAt: datetime | None
    erasedAt: datetime | None


class LineagePrediction(BaseModel):
    id: str
    status: str
    trainingIds: list[str] = Field(description="Those of its trainings that used the image.")
    outputImageIds: list[str]
    createdAt: datetime


class LineageRead(BaseModel):
    imageId: str
    sha256: str
    trainings: list[LineageTraining]
    predictions: list[LineagePrediction]


class ErasureRead(BaseModel):
    imageId: str
    erasedAt: datetime
    erasedImageIds: list[str] = Field(
        description="Every image of the account that held the same bytes (all deleted)."
    )
    erasedTrainingIds: list[str]
    blobsRemoved: int
