"""Shared fixtures: the shipped rule book, a fully known household, and paths."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import strategies as st

from povertyrules import load_rules

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SAMPLE = ROOT / "datasets" / "sample_county.xlsx"

BASE_HOUSEHOLD = {
    "household_id": "h1", "year": "2020", "members": "2", "net_income": "20000", "net_income_last_year": "19000",
    "rigid_expenditure": "0", "food_secure": "是", "clothing_secure": "是", "education_secured": "是",
    "medical_secured": "是", "housing_secured": "是", "four_look_score": "75", "ex_public_employee": "否",
    "ex_village_cadre": "否", "ex_urban_property": "否", "ex_urban_property_rebuild": "否", "ex_vehicle": "否",
    "ex_business": "否", "ex_costly_schooling": "否", "hardship_approved": "否", "registered_status": "none",
}


@pytest.fixture(scope="session")
def book():
    return load_rules()


def households(*rows: dict) -> pd.DataFrame:
    """A frame of households built from BASE_HOUSEHOLD with per-row changes (ids h1, h2, … unless given)."""
    return pd.DataFrame([{**BASE_HOUSEHOLD, "household_id": f"h{i + 1}", **row} for i, row in enumerate(rows)])


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL server: POVERTYRULES_TEST_PG (started by .ci/run), or one started here."""
    import os

    from .pg import postgres_server

    if os.environ.get("POVERTYRULES_TEST_PG"):
        yield os.environ["POVERTYRULES_TEST_PG"]
        return
    try:
        with postgres_server() as url:
            yield url
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"no PostgreSQL server could be started ({exc}); to run these cases install PostgreSQL "
                    f"(`apt-get install postgresql`) or point POVERTYRULES_TEST_PG at a server you may write to")


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    """A fresh, empty audit store on each backend (a SQLite file, or a new PostgreSQL database)."""
    if request.param == "sqlite":
        return str(tmp_path / "audit.db")
    return request.getfixturevalue("postgres_db")


@pytest.fixture
def postgres_db(postgres_url):
    """A new, empty PostgreSQL database on the test server (its URL)."""
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"


#: text for property tests of stored rows (no lone surrogates: not UTF-8)
JSON_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)


def json_expected(value):
    """What a stored JSON value reads back as: null for a blank or non-finite number, numpy scalars as Python."""
    if value is None or value is pd.NA or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value
