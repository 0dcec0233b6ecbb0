"""Audit-store tables (SQLModel). Append-only: rows are inserted, never updated or deleted — the database
refuses it too (triggers installed by `povertyrules.store.database.create`)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel


class Run(SQLModel, table=True):
    """One scoring of one input file with one effective rule set."""

    id: int | None = Field(default=None, primary_key=True)
    created_at: dt.datetime = Field(index=True)
    operator: str
    input_file: str
    input_sha256: str
    year: int | None = None
    rules_version: str = Field(index=True)
    decided: int
    error_rows: int
    input_rows: int
    lang: str = "zh"
    #: every parameter value in force for the run's years, with unit, source and confidence (JSON)
    parameters: str = Field(sa_column=Column(Text, nullable=False))
    #: the rule files and override values the run used, so explanations never depend on today's files (JSON)
    rules_snapshot: str = Field(sa_column=Column(Text, nullable=False))
    #: the text of every clause the rules cite, word for word (JSON)
    clauses: str = Field(sa_column=Column(Text, nullable=False))
    #: the rule ids a decision's `trace` holds a verdict for, in order (JSON list)
    trace_rules: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    #: what the run's decision rows refer to (`povertyrules.store.rows`): the input row's columns, in the order
    #: of its values, and the texts of its reasons (JSON); blank for runs stored before it or stored in parts
    #: (their rows keep each input row as a JSON object and the reasons as text)
    codebook: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class Decision(SQLModel, table=True):
    """One household's decision in one run: the contract's columns, plus the input row it was decided on."""

    __table_args__ = (Index("ix_decision_household_run", "household_id", "run_id"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    household_id: str
    year: int
    poverty_line: float | None = None
    monitoring_line: float | None = None
    per_capita_income: float | None = None
    four_look_score: float | None = None
    identification: str
    exit: str
    monitoring: str
    monitoring_triggers: str | None = None
    #: the main reason: in a run with a codebook of reasons, the position of its text there (`rows.reasons_texts`)
    reasons: str = Field(sa_column=Column(Text, nullable=False))
    rules_version: str
    county: str | None = None
    township: str | None = None
    village: str | None = None
    registered_status: str | None = None
    missing_columns: str | None = None
    row: int
    #: the typed input row: a JSON array of values in the order of the run's `Run.codebook` (a JSON object
    #: of column and value in runs without one); see `povertyrules.store.rows`
    inputs: str = Field(sa_column=Column(Text, nullable=False))
    clauses: str | None = None  # the clause ids of the decisive path, per decision (`;`-joined)
    trace: str = ""  # every criterion's and outcome rule's verdict, packed (`povertyrules.decisions.trace`)


class Reason(SQLModel):
    """One rule cited in one decision: verdict, observed values, thresholds and the rendered message.

    Not stored: re-derived from the decision's trace, its input row and the run's rule snapshot."""

    run_id: int
    household_id: str
    seq: int
    decision: str
    rule_id: str
    kind: str
    clause: str
    verdict: str  # true / false / unknown
    observed: str = Field(sa_column=Column(Text, nullable=False))  # JSON
    thresholds: str = Field(sa_column=Column(Text, nullable=False))  # JSON
    message: str = Field(sa_column=Column(Text, nullable=False))


class RunError(SQLModel, table=True):
    """An input row a run could not read."""

    # (a household's rows in every run: what the household page's integrity check reads)
    __table_args__ = (Index("ix_runerror_household_run", "household_id", "run_id"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    row: int
    household_id: str | None = None
    column: str
    value: str | None = None
    error: str
    file: str


class Evidence(SQLModel, table=True):
    """A department register's record behind a household's fact (MON-5.1): register, date, kind, masked member."""

    __table_args__ = (Index("ix_evidence_run_household", "run_id", "household_id"),
                      Index("ix_evidence_household_run", "household_id", "run_id"))

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id")
    household_id: str
    column: str  # the fact it supports (a contract column such as ex_vehicle, or a register fact)
    clause: str
    register_name: str
    kind: str | None = None
    record_date: str | None = None
    member: str  # masked ID number
    text: str = Field(sa_column=Column(Text, nullable=False))
    file: str
    row: int


class Contradiction(SQLModel, table=True):
    """A register says otherwise than the household file (file: 无车; register: a car): the 核查 list."""

    __table_args__ = (Index("ix_contradiction_household_run", "household_id", "run_id"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    household_id: str
    column: str
    file_value: str | None = None
    register_value: str | None = None
    evidence: str = Field(sa_column=Column(Text, nullable=False))
    register_file: str


class ProcedureStep(SQLModel, table=True):
    """One recorded step of a household's identification, exit or monitoring procedure (ID-4, EX-2, MON-3)."""

    __table_args__ = (Index("ix_step_household", "household_id", "procedure"),)

    id: int | None = Field(default=None, primary_key=True)
    household_id: str
    procedure: str
    step: str
    date: dt.date
    actor: str
    objection: bool = False
    note: str | None = None
    recorded_at: dt.datetime


class Alert(SQLModel, table=True):
    """A proposed monitoring object raised by an event (MON-2, MON-5.1), awaiting county confirmation (MON-3)."""

    id: int | None = Field(default=None, primary_key=True)
    created_at: dt.datetime
    household_id: str = Field(index=True)
    trigger: str
    clauses: str  # comma-separated clause ids
    event_file: str
    event_line: int
    event_date: dt.date
    source: str
    kind: str
    amount: float | None = None
    observed: str = Field(sa_column=Column(Text, nullable=False))  # JSON
    message: str = Field(sa_column=Column(Text, nullable=False))
    #: the event's content and the trigger, hashed: re-reading the same events raises no second alert
    event_key: str | None = Field(default=None, index=True, unique=True)


class AlertDecision(SQLModel, table=True):
    """The county's decision on an alert: confirmed as a monitoring object, or rejected (MON-3)."""

    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(foreign_key="alert.id", index=True, unique=True)
    confirmed: bool
    actor: str
    decided_at: dt.datetime
    note: str | None = None


APPEND_ONLY = ("run", "decision", "runerror", "procedurestep", "alert", "alertdecision", "rundigest", "accesslog")
