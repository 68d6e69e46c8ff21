"""The protocol's bodies as pydantic models: they validate requests and generate ``/openapi.json``.

Every model forbids unknown fields (422) and validates strictly (no coercion of ``1`` into ``"1"``), so
what the sandbox stores and digests is exactly what the client sent.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

DFES_PATTERN = r"^(66[0-9]|67[0-9]|68[01])[0-9]{4}$"
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
KEY_ID_PATTERN = r"^[A-Za-z0-9._-]{1,32}$"
UPN_HASH_PATTERN = r"^[A-Za-z0-9._-]{1,32}:[0-9a-f]{64}$"
STAFF_CODE_PATTERN = r"^[A-Za-z0-9._-]{1,16}$"
GROUP_ID_PATTERN = r"^[^/]{1,64}$"
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
TIMESTAMP_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})$"
)
PUBLIC_KEY_PATTERN = r"^[A-Za-z0-9+/]{43}=$"

MAX_OPERATIONS = 5000


def _real_date(value: str) -> str:
    if re.fullmatch(DATE_PATTERN, value) is None:
        raise ValueError("expected a date as YYYY-MM-DD")
    dt.date.fromisoformat(value)  # raises ValueError for 2026-02-30
    return value


def _real_timestamp(value: str) -> str:
    if re.fullmatch(TIMESTAMP_PATTERN, value) is None:
        raise ValueError("expected an RFC 3339 time such as 2026-08-30T02:00:00Z")
    dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


# Dates and times travel as the strings sent (digests cover them byte for byte); the OpenAPI document
# describes them by format, which generators and validators understand better than a pattern.
IsoDate = Annotated[str, AfterValidator(_real_date), WithJsonSchema({"type": "string", "format": "date"})]
Timestamp = Annotated[
    str, AfterValidator(_real_timestamp), WithJsonSchema({"type": "string", "format": "date-time"})
]
Uuid = Annotated[str, Field(pattern=UUID_PATTERN)]
UpnHash = Annotated[str, Field(pattern=UPN_HASH_PATTERN)]
StaffCode = Annotated[str, Field(pattern=STAFF_CODE_PATTERN)]
GroupId = Annotated[str, Field(pattern=GROUP_ID_PATTERN)]
Name = Annotated[str, Field(min_length=1, max_length=100)]
RecordKeyText = Annotated[str, Field(min_length=1, max_length=200)]
Count = Annotated[int, Field(ge=0, le=10_000_000)]
YearGroup = Literal[
    "N1", "N2", "R", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14"
]
DfesNumber = Annotated[str, Field(pattern=DFES_PATTERN)]
PublicKeyB64 = Annotated[
    str,
    Field(pattern=PUBLIC_KEY_PATTERN, description="standard base64 of the raw 32-byte Ed25519 public key"),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# ------------------------------------------------------------------------------------------------------------
# Records


class LearnerRecord(_Model):
    upn_hash: UpnHash
    legal_forename: Name
    legal_surname: Name
    date_of_birth: IsoDate
    year_group: YearGroup | None
    registration_group: GroupId | None
    leaving_date: IsoDate | None
    upn_hash_previous: UpnHash | None = Field(
        default=None,
        description="protocol 2, national key changeover only: the pseudonym under the previous key "
        "(left out otherwise; the national side maps it to the same account)",
    )


class StaffRecord(_Model):
    staff_code: StaffCode | None = Field(description="null is refused per operation: staff_code_missing")
    legal_forename: Name
    legal_surname: Name
    start_date: IsoDate | None = Field(description="null is refused per operation: staff_start_date_missing")
    leaving_date: IsoDate | None


class GroupRecord(_Model):
    group_id: GroupId
    name: Annotated[str, Field(min_length=1, max_length=200)]
    group_type: Literal["registration", "teaching"]
    year_group: YearGroup | None


class MembershipRecord(_Model):
    group_id: GroupId
    member_kind: Literal["learner", "staff"]
    member_key: Annotated[str, Field(pattern=f"^(?:{UPN_HASH_PATTERN[1:-1]}|{STAFF_CODE_PATTERN[1:-1]})$")]


# ------------------------------------------------------------------------------------------------------------
# Operations and batches


class _OperationBase(_Model):
    key: RecordKeyText

    @model_validator(mode="after")
    def _record_present_unless_remove(self) -> _OperationBase:
        op = getattr(self, "op", None)
        if op != "remove" and getattr(self, "record", None) is None:
            raise ValueError(f"an {op} operation must carry its record")
        return self


class LearnerOperation(_OperationBase):
    op: Literal["upsert", "leave", "remove"]
    kind: Literal["learner"]
    record: LearnerRecord | None = None


class StaffOperation(_OperationBase):
    op: Literal["upsert", "leave", "remove"]
    kind: Literal["staff"]
    record: StaffRecord | None = None


class GroupOperation(_OperationBase):
    op: Literal["upsert", "remove"]
    kind: Literal["group"]
    record: GroupRecord | None = None


class MembershipOperation(_OperationBase):
    op: Literal["upsert", "remove"]
    kind: Literal["membership"]
    record: MembershipRecord | None = None


Operation = Annotated[
    LearnerOperation | StaffOperation | GroupOperation | MembershipOperation, Field(discriminator="kind")
]


class Batch(_Model):
    """One batch of operations for one school; ``batch_id`` equals the Idempotency-Key header."""

    batch_id: Uuid
    run_id: Uuid
    sequence: Annotated[int, Field(ge=1, le=1_000_000)]
    academic_year: Annotated[str, Field(pattern=r"^[0-9]{4}/[0-9]{2}$", examples=["2026/27"])]
    upn_key_id: Annotated[str, Field(pattern=KEY_ID_PATTERN)]
    operations: Annotated[list[Operation], Field(max_length=MAX_OPERATIONS)]


class OperationResult(_Model):
    index: int
    status: Literal["applied", "unchanged", "refused"]
    account_id: str | None = None
    reason: (
        Literal[
            "staff_start_date_missing",
            "staff_code_missing",
            "unknown_group",
            "unknown_member",
            "key_mismatch",
            "not_found",
            "upn_key_unknown",
            "text_control_characters",
        ]
        | None
    ) = None


class BatchResult(_Model):
    batch_id: str
    applied: int
    unchanged: int
    refused: int
    results: list[OperationResult]


# ------------------------------------------------------------------------------------------------------------
# Enrolment and keys


class EnrolmentRequest(_Model):
    dfes_number: DfesNumber
    enrolment_code: Annotated[str, Field(min_length=1, max_length=64)]
    public_key: PublicKeyB64


class ResponseKey(_Model):
    """The national API's response-signing key (protocol version 2)."""

    key_id: str
    public_key: str
    alg: Literal["ed25519"] = "ed25519"


class ResponseKeys(_Model):
    keys: list[ResponseKey]


class EnrolmentResponse(_Model):
    dfes_number: str
    key_id: str
    school_name: str
    response_key: ResponseKey | None = None


class KindSummary(_Model):
    count: int
    digest: str


class ManifestSummary(_Model):
    """Per kind: the record count and a digest over its records' keys, statuses and keyed digests."""

    dfes_number: str
    kinds: dict[str, KindSummary]


class KeyRequest(_Model):
    public_key: PublicKeyB64


class KeyResponse(_Model):
    key_id: str


# ------------------------------------------------------------------------------------------------------------
# Run reports, status, manifest


Kind = Literal["learner", "staff", "group", "membership"]
Op = Literal["upsert", "leave", "remove"]
ReasonCode = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class GuardHold(_Model):
    """A guard rule a run broke (``holds``) or that a person allowed (``overrides``, with ``user``)."""

    rule: ReasonCode
    kind: Kind | None = None
    count: Count = 0
    limit: Count = 0
    active: Count = 0
    flag: Annotated[str, Field(max_length=64)] = ""
    message: Annotated[str, Field(max_length=500)] = ""
    user: Annotated[str, Field(max_length=64)] | None = None


class RunReport(_Model):
    run_id: Uuid
    outcome: Literal["success", "partial", "failed", "blocked"]
    started_at: Timestamp
    finished_at: Timestamp
    client_version: Annotated[str, Field(min_length=1, max_length=64)]
    counts: dict[Kind, dict[Op, Count]] = Field(default_factory=dict)
    held_back: Annotated[dict[ReasonCode, Count], Field(max_length=64)] = Field(default_factory=dict)
    batches: Count = 0
    message: Annotated[str, Field(max_length=500)] = ""
    # Version 2 (0.2.0): planned apart from sent, people apart from classes, holds and overrides.
    as_of: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")] | None = None
    planned: dict[Kind, dict[Op, Count]] = Field(default_factory=dict)
    held_back_by_kind: dict[Kind, Annotated[dict[ReasonCode, Count], Field(max_length=64)]] = Field(
        default_factory=dict
    )
    refused: dict[Kind, Annotated[dict[ReasonCode, Count], Field(max_length=64)]] = Field(
        default_factory=dict
    )
    resent_batches: Count = 0
    resent_operations: Count = 0
    holds: Annotated[list[GuardHold], Field(max_length=16)] = Field(default_factory=list)
    overrides: Annotated[list[GuardHold], Field(max_length=16)] = Field(default_factory=list)


class RunReportAck(_Model):
    run_id: str
    received_at: str


class StoredRunReport(RunReport):
    received_at: str


class Status(_Model):
    dfes_number: str
    school_name: str
    last_run: StoredRunReport | None
    last_success_at: str | None


class ManifestRecord(_Model):
    kind: Kind
    key: str
    digest: str
    status: Literal["active", "left"]
    account_id: str | None
    # Protocol 2 (request header ``Hwb-Protocol: 2``): the national calendar as of the sandbox's today.
    state: Literal["active", "starting", "leaving", "left"] | None = Field(
        default=None, description="protocol 2: learners and staff: the state at the school today"
    )
    on_roll_until: IsoDate | None = Field(
        default=None, description="protocol 2: the last day on roll, when known (leaving or left)"
    )
    starts_on: IsoDate | None = Field(
        default=None, description="protocol 2: a staff start date still in the future"
    )
    passed_on_to_classrooms: bool | None = Field(
        default=None,
        description="protocol 2: groups and memberships: false for a change recorded from 2 June to"
        " 31 August, not passed on to Teams, Google Classroom or Apple Classroom",
    )


class Manifest(_Model):
    dfes_number: str
    records: list[ManifestRecord]


class Health(_Model):
    status: Literal["ok"]


class ProblemDocument(BaseModel):
    """RFC 9457 problem document; ``errors`` lists validation failures (location and message)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, object]] | None = None


# ------------------------------------------------------------------------------------------------------------
# Protocol 2: per-record lookup of the school's own records ("why has this person no account?")

MAX_LOOKUP_RECORDS = 100


class RecordRef(_Model):
    kind: Literal["learner", "staff"]
    key: RecordKeyText


class RecordLookup(_Model):
    records: Annotated[list[RecordRef], Field(min_length=1, max_length=MAX_LOOKUP_RECORDS)]


class LookedUpRecord(_Model):
    kind: Literal["learner", "staff"]
    key: str
    #: the school's record: absent (never sent, or removed long ago), active, left or removed
    status_at_school: Literal["active", "left", "removed"] | None
    account_id: str | None
    account_active: bool | None
    updated_at: str | None
    leaving_date: str | None
    #: learners only: the hashed UPN is on roll (active) at another school; the school is never named
    on_roll_elsewhere: bool | None


class RecordLookupResult(_Model):
    dfes_number: str
    records: list[LookedUpRecord]
