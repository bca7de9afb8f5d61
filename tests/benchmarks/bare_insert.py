"""The gateway benchmark's baseline: a bare FastAPI endpoint that does one INSERT and COMMIT
per request on the same kind of database as ticket-core's (the engine `shared.db` makes, so
the same SQLite settings), run as its own uvicorn process like each service.

`BENCH_BARE_DATABASE_URL` names the database; the table `bench_bare` is made at start."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import uuid4

from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import Column, MetaData, String, Table, Text, insert

from shared.db import create_engine

metadata = MetaData()
rows = Table(
    "bench_bare",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("subject", String(200), nullable=False),
    Column("description", Text, nullable=False),
)
engine = create_engine(os.environ["BENCH_BARE_DATABASE_URL"])


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield
    await engine.dispose()


app = FastAPI(lifespan=lifespan)


class NewRow(BaseModel):
    subject: str
    description: str = ""


@app.post("/rows", status_code=201)
async def add_row(row: NewRow) -> dict[str, str]:
    row_id = str(uuid4())
    async with engine.begin() as connection:
        await connection.execute(
            insert(rows).values(id=row_id, subject=row.subject, description=row.description)
        )
    return {"id": row_id}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
