"""From MIS rows to the school's snapshot: validated, pseudonymised, minimised records, and the held back.

``build_snapshot`` is pure: it takes the rows (any iterables, streamed from ODBC by the caller), the UPN
hasher and today's date, and returns the wire records keyed per kind plus every held-back record with
its reason. Raw UPNs live only inside this function's locals; what comes out carries ``upn_hash``.

Unchanged rows take a short cut. Each acknowledged record remembers a *row fingerprint*: a keyed
BLAKE2b of the raw MIS values it was built from (key local to the school, so it reveals nothing). A row
whose fingerprint is known is the same row the national side already holds: its key and digest are
reused and it is not validated, hashed or encoded again (the guard, duplicate detection and class
membership checks still see it). Any other row takes the full path, which is the definition.

Memberships, most of a school's rows, can also be *settled* class by class (``Settled``): a run whose
memberships of a class all ended exactly as acknowledged leaves a keyed token of everything they were
built from (the class's membership rows, what each row's member is in that read:
whether it is on roll, left, held back or unknown, and what the class itself is). A later run whose
token for the class is the same would decide the same memberships of it, so it skips them: none is sent
or removed, and the state does not load them. One learner moving class un-settles the two classes, not
the school. Memberships have no dates; the people they point at are read in full every run, with their
dates, and what they are on the day is part of each token.

A night on which nothing changed has one more short cut (``SchoolToken``): when every class was settled
by the same run, the state keeps one token of the whole read beside them; the same token again means
every class's token would be the same, so none is worked out.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import itertools
import operator
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from hwb_client.core import validate as v
from hwb_client.core.model import Kind, WireRecord, record_digest, record_key, stable_forms, wire_record
from hwb_client.core.upn import normalise as normalise_upn
from hwb_client.core.validate import HeldBack, Invalid, Reason

Row = Mapping[str, object]


class RowChunks:
    """One kind's rows as the source fetched them: chunks of value sequences in the order of ``fields``,
    with no dict made per row. Iterated, it gives ``{field: value}`` rows as any other source does; the
    membership reader takes the chunks themselves (most rows, and in a nightly run nearly all of them
    are known by their fingerprint, which is over the values alone)."""

    __slots__ = ("chunks", "fields")

    def __init__(self, fields: tuple[str, ...], chunks: Iterable[Sequence[Sequence[object]]]) -> None:
        self.fields = fields
        self.chunks = chunks

    def __iter__(self) -> Iterator[Row]:
        fields = self.fields
        for chunk in self.chunks:
            for values in chunk:
                yield dict(zip(fields, values, strict=True))


def _value_chunks(rows: Iterable[Row]) -> Iterator[tuple[tuple[str, ...], Sequence[Sequence[object]]]]:
    """(field names, a chunk of value sequences in that order): a ``RowChunks``' own chunks, or each
    row of any other iterable of rows as a chunk of one."""
    if isinstance(rows, RowChunks):
        for chunk in rows.chunks:
            yield rows.fields, chunk
    else:
        for row in rows:
            yield tuple(row), (tuple(row.values()),)


class Entry(NamedTuple):
    """One record of the snapshot, ready to diff and send (a named tuple: as immutable as a frozen
    dataclass and several times faster to build, once per row of every run).

    ``record`` is ``None`` for a row recognised by its fingerprint: it is exactly what was acknowledged,
    so it is never sent. ``fingerprint`` is set for rows that took the full path, to be remembered.
    ``left`` is the record's state *on the day of the run*: its leaving date (the last day on roll) is
    before that day. A record whose leaving date is still to come is on roll."""

    kind: Kind
    key: str
    record: WireRecord | None
    digest: str
    left: bool
    year_group: str | None = None
    fingerprint: bytes | None = None
    leaving_date: dt.date | None = None
    start_date: dt.date | None = None
    #: keyed digests of what the record says (``CONTENT:ROLLOVER_FREE``, see ``stable_digest``)
    stable: str | None = None


def stable_digest(keyed: Callable[[bytes], str], kind: Kind, record: WireRecord) -> str:
    """``CONTENT:ROLLOVER_FREE``: keyed digests of the record without its pseudonyms, and without its
    rollover fields too (``model.stable_forms``); the guard compares them to tell an expected change
    (a key changeover, the summer rollover) from a rewrite."""
    content, rollover_free = stable_forms(kind, record)
    return f"{keyed(content)[:32]}:{keyed(rollover_free)[:32]}"


class Known(NamedTuple):
    """What an acknowledged record's fingerprint stands for (a named tuple, as ``diff.Acknowledged``)."""

    key: str
    digest: str
    leaving: bool
    year_group: str | None = None
    stable: str | None = None


class Settled(NamedTuple):
    """A class whose memberships a clean run left exactly as acknowledged: the token of what they were
    built from (``ClassTokens``) and how many there are."""

    token: bytes
    records: int


#: a school's settled classes: group id -> what the last clean run left of the class
SettledClasses = Mapping[str, Settled]


class RowFingerprints:
    """Keyed fingerprints of raw MIS rows, and the acknowledged records they produced.

    ``later`` gives the fingerprints of acknowledged memberships when the state left them out of
    ``known`` (it does when classes may be settled), but those of the classes settled in this read."""

    def __init__(
        self,
        key: bytes,
        context: str,
        known: Mapping[bytes, Known] | None = None,
        later: Callable[[frozenset[str], frozenset[str]], Mapping[bytes, Known]] | None = None,
    ) -> None:
        self._key = key[:64]
        self._context = context
        #: per kind and field names, the keyed BLAKE2b state after the prefix, copied for each row
        self._states: dict[tuple[Kind, tuple[str, ...]], hashlib.blake2b] = {}
        self.known: Mapping[bytes, Known] = known or {}
        self._later = later

    def membership_known(
        self, settled: frozenset[str] = frozenset(), read: frozenset[str] = frozenset()
    ) -> Mapping[bytes, Known]:
        """Where memberships' fingerprints are looked up: ``known``, or the ones loaded ``later`` (but
        the ``settled`` classes', whose rows are not looked at; ``read``: the classes the read names)."""
        return self._later(settled, read) if self._later is not None else self.known

    def token(self, purpose: str) -> hashlib.blake2b:
        """A fresh keyed BLAKE2b for a token over many rows, bound to the context and ``purpose``."""
        return hashlib.blake2b(
            repr(("token", purpose, self._context)).encode(), key=self._key, digest_size=16
        )

    def __call__(self, kind: Kind, row: Row) -> bytes:
        """BLAKE2b, keyed, of the context, the kind, the field names and the raw values' ``repr``."""
        running = self.prefixed(kind, tuple(row)).copy()
        running.update(repr(tuple(row.values())).encode())
        return running.digest()

    def prefixed(self, kind: Kind, names: tuple[str, ...]) -> hashlib.blake2b:
        """The keyed state after the prefix (context, kind, names), made once: a row then costs one copy,
        one update with the ``repr`` of its values (a tuple, or a pyodbc row, whose ``repr`` is the
        same) and one digest, the same bytes as hashing it all in one call."""
        state = self._states.get((kind, names))
        if state is None:
            prefix = repr((self._context, kind.value, names)).encode()
            state = self._states[(kind, names)] = hashlib.blake2b(prefix, key=self._key, digest_size=16)
        return state


@dataclass
class Snapshot:
    entries: dict[Kind, dict[str, Entry]] = field(default_factory=lambda: {k: {} for k in Kind})
    held_back: list[HeldBack] = field(default_factory=list)
    #: keys of records that exist in the MIS but were held back: never treated as vanished
    held_keys: set[tuple[Kind, str]] = field(default_factory=set)
    rows_read: Counter[Kind] = field(default_factory=Counter)
    #: local, human labels of held-back rows for the school's own report; never logged or stored
    labels: dict[int, str] = field(default_factory=dict)
    #: records left as they were acknowledged (the memberships of ``settled_classes``), counted per
    #: kind: no entry is built for them, and nothing of theirs is sent or removed
    settled: dict[Kind, int] = field(default_factory=dict)
    #: the classes (group ids) whose memberships this read settled (``Settled``)
    settled_classes: frozenset[str] = frozenset()
    #: the classes this read names, when it was compared with settled ones (else empty)
    classes_read: frozenset[str] = frozenset()
    #: this read's token of each class it decided with none of its rows held back, for the state to keep
    #: if the run ends clean (``Plan.settles_classes``)
    class_tokens: dict[str, bytes] = field(default_factory=dict)
    #: this read's token of all its memberships and the classes it names (``SchoolToken``), when none
    #: of its membership rows was held back: for the state to keep once every class is settled
    school_token: tuple[bytes, frozenset[str]] | None = None
    #: whether it is the token the state kept (every class settled at once, none compared)
    school_settled: bool = False

    def count(self, kind: Kind) -> int:
        return len(self.entries[kind]) + self.settled.get(kind, 0)


@dataclass(frozen=True)
class SourceRows:
    """The four row streams of one school, in the order they must be read."""

    learners: Iterable[Row]
    staff: Iterable[Row]
    groups: Iterable[Row]
    memberships: Iterable[Row]


def _iso(value: dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _label(kind: Kind, index: int, row: Row, reason: Reason) -> str:
    """The school's own label for a held-back row: ``learner row 5 (MIS id 60) Name``, with the staff or
    group code, and the registration group when that is what is wrong (never logged or stored)."""
    names = " ".join(str(row.get(f) or "").strip() for f in ("legal_forename", "legal_surname")).strip()
    code = row.get("staff_code") or row.get("group_id") or ""
    mis_id = row.get("mis_id")
    head = f"{kind.value} row {index}" + (f" (MIS id {mis_id})" if mis_id not in (None, "") else "")
    details = [str(code)] if code and kind is not Kind.LEARNER else []
    if names:
        details.append(names)
    if reason is Reason.REGISTRATION_GROUP_INVALID:
        details.append(f"registration group {str(row.get('registration_group'))[:60]!r}")
    return head + (" " + ", ".join(details) if details else "")


#: A row as the builder keeps it while it may still turn out a duplicate: the row, or a known row's field
#: names and fetched values (made a row only if it is held back)
_Fetched = Row | tuple[tuple[str, ...], Sequence[object]]


def _as_row(fetched: _Fetched) -> Row:
    if isinstance(fetched, tuple):
        names, values = fetched
        return dict(zip(names, values, strict=True))
    return fetched


#: How a kind is built from a row: the validated record plus its dates and year group, or ``Invalid``.
Built = tuple[WireRecord, dt.date | None, dt.date | None, str | None]  # record, leaving, start, year


@dataclass
class _Builder:
    """Collects one school's entries and held-back records as the rows stream past."""

    today: dt.date
    keyed: Callable[[bytes], str]
    fingerprints: RowFingerprints | None = None
    snapshot: Snapshot = field(default_factory=Snapshot)
    _first_rows: dict[tuple[Kind, str], tuple[int, _Fetched]] = field(default_factory=dict)
    _duplicated: set[tuple[Kind, str]] = field(default_factory=set)

    def hold(self, kind: Kind, index: int, row: Row, reason: Reason, key: str | None = None) -> None:
        mis_id = str(row["mis_id"]) if row.get("mis_id") is not None else None
        self.snapshot.held_back.append(HeldBack(kind, f"{kind.value}:{index}", reason, key, mis_id))
        self.snapshot.labels[len(self.snapshot.held_back) - 1] = _label(kind, index, row, reason)
        if key is not None:
            self.snapshot.held_keys.add((kind, key))

    def _claim(self, kind: Kind, index: int, row: _Fetched, key: str, duplicate: Reason) -> bool:
        """Two MIS rows claiming the same identity are both held back; True if ``key`` is free."""
        entries = self.snapshot.entries[kind]
        if (kind, key) not in self._duplicated and key not in entries:
            self._first_rows[(kind, key)] = (index, row)
            return True
        if key in entries:
            del entries[key]
            first_index, first_row = self._first_rows.pop((kind, key))
            self.hold(kind, first_index, _as_row(first_row), duplicate, key)
            self._duplicated.add((kind, key))
        self.hold(kind, index, _as_row(row), duplicate, key)
        return False

    def add_known(self, kind: Kind, index: int, row: _Fetched, known: Known, duplicate: Reason) -> None:
        if self._claim(kind, index, row, known.key, duplicate):
            self.snapshot.entries[kind][known.key] = Entry(
                kind, known.key, None, known.digest, known.leaving, known.year_group, stable=known.stable
            )

    def add(
        self, kind: Kind, index: int, row: Row, built: Built, duplicate: Reason, fp: bytes | None
    ) -> None:
        record, leaving, start, year_group = built
        key = record_key(kind, record)
        if not self._claim(kind, index, row, key, duplicate):
            return
        # A record with a leaving date changes state when the date passes, with no change to its row, and
        # one starting later is shown as starting: neither is short-cut by a fingerprint, so every run
        # looks at its dates again.
        remembered = fp if leaving is None and (start is None or start <= self.today) else None
        left = leaving is not None and leaving < self.today
        self.snapshot.entries[kind][key] = Entry(
            kind,
            key,
            record,
            record_digest(record),
            left,
            year_group,
            remembered,
            leaving,
            start,
            stable_digest(self.keyed, kind, record),
        )

    def read(
        self,
        kind: Kind,
        rows: Iterable[Row],
        build: Callable[[Row], Built],
        duplicate: Reason,
        held_key: Callable[[Row], str | None],
        on_known: Callable[[tuple[str, ...], Sequence[object], Known], None] | None = None,
    ) -> None:
        """Every row of a kind: known by its fingerprint, or validated and built, or held back. A known
        row is looked up by the fingerprint of its fetched values (``RowChunks``), as memberships are,
        with no dict made for it; ``on_known`` gets its field names and values."""
        fingerprints = self.fingerprints
        known = fingerprints.known if fingerprints is not None else {}
        index = 0
        for names, chunk in _value_chunks(rows):
            self.snapshot.rows_read[kind] += len(chunk)
            prefixed = fingerprints.prefixed(kind, names) if fingerprints is not None else None
            for values in chunk:
                index += 1
                fp = None
                if prefixed is not None:
                    running = prefixed.copy()  # the bytes of ``RowFingerprints.__call__`` of the row
                    running.update(repr(values).encode())
                    fp = running.digest()
                    hit = known.get(fp)
                    if hit is not None:
                        if on_known is not None:
                            on_known(names, values, hit)
                        self.add_known(kind, index, (names, values), hit, duplicate)
                        continue
                row = dict(zip(names, values, strict=True))
                try:
                    built = build(row)
                except Invalid as exc:
                    self.hold(kind, index, row, exc.reason, held_key(row))
                    continue
                self.add(kind, index, row, built, duplicate, fp)


def _stripped(value: object) -> str | None:
    return str(value or "").strip() or None


class _Upns:
    """Parsed UPNs and their hashes, remembered: each learner's UPN comes back in every membership.
    Raw UPNs live here, in memory, for one build; what leaves carries the hash."""

    def __init__(self, hasher: Callable[[str], str]) -> None:
        self._hasher = hasher
        self._parsed: dict[object, str] = {}
        self.hashes: dict[str, str] = {}  # normalised UPN -> upn_hash

    def parse(self, value: object) -> str:
        """``validate.parse_upn``, remembered (a UPN that cannot be used raises and is not remembered)."""
        try:
            return self._parsed[value]
        except (KeyError, TypeError):
            upn = v.parse_upn(value)
        with contextlib.suppress(TypeError):
            self._parsed[value] = upn
        return upn

    def parse_seen(self, value: object) -> str:
        """``parse``, but a UPN this read hashed already is taken as it is: only a permanent UPN is
        hashed (a learner known by their fingerprint was checked the run their row was bound)."""
        if value is not None:
            upn = normalise_upn(str(value))
            if upn in self.hashes:
                return upn
        return self.parse(value)

    def hash(self, upn: str) -> str:
        upn_hash = self.hashes.get(upn)
        if upn_hash is None:
            upn_hash = self.hashes[upn] = self._hasher(upn)
        return upn_hash

    def known(self, names: tuple[str, ...], values: Sequence[object], hit: Known) -> None:
        """A learner row known by its fingerprint: note its UPN's hash without parsing or hashing."""
        upn = values[names.index("upn")] if "upn" in names else None
        self.hashes[normalise_upn(str(upn))] = hit.key

    def held_key(self, row: Row) -> str | None:
        """The hashed UPN of a learner held back for a reason other than their UPN, else ``None``."""
        try:
            return self.hash(self.parse(row.get("upn")))
        except Invalid:
            return None


def _learner(
    upns: _Upns, today: dt.date, previous_hasher: Callable[[str], str] | None
) -> Callable[[Row], Built]:
    def build(row: Row) -> Built:
        valid = v.learner(row, today, upn_parser=upns.parse)
        record = wire_record(
            Kind.LEARNER,
            {
                "upn_hash": upns.hash(valid.upn),
                "legal_forename": valid.legal_forename,
                "legal_surname": valid.legal_surname,
                "date_of_birth": valid.date_of_birth.isoformat(),
                "year_group": valid.year_group,
                "registration_group": valid.registration_group,
                "leaving_date": _iso(valid.leaving_date),
                "upn_hash_previous": previous_hasher(valid.upn) if previous_hasher else None,
            },
        )
        return record, valid.leaving_date, valid.start_date, valid.year_group

    return build


def _staff(row: Row) -> Built:
    valid = v.staff(row)
    record = wire_record(
        Kind.STAFF,
        {
            "staff_code": valid.staff_code,
            "legal_forename": valid.legal_forename,
            "legal_surname": valid.legal_surname,
            "start_date": valid.start_date.isoformat(),
            "leaving_date": _iso(valid.leaving_date),
        },
    )
    return record, valid.leaving_date, valid.start_date, None


def _group(row: Row) -> Built:
    valid = v.group(row)
    record = wire_record(
        Kind.GROUP,
        {
            "group_id": valid.group_id,
            "name": valid.name,
            "group_type": valid.group_type,
            "year_group": valid.year_group,
        },
    )
    return record, None, None, valid.year_group


def build_snapshot(
    rows: SourceRows,
    hasher: Callable[[str], str],
    today: dt.date,
    fingerprints: RowFingerprints | None = None,
    keyed: Callable[[bytes], str] | None = None,
    previous_hasher: Callable[[str], str] | None = None,
    settled: SettledClasses | None = None,
    settled_school: bytes | None = None,
) -> Snapshot:
    """Validate, pseudonymise and minimise every row; hold back the broken ones with a reason.

    ``keyed`` keys the stable digests with the school's local secret (the state database keeps them);
    without it they are plain SHA-256. During a national key changeover ``previous_hasher`` gives each
    learner's ``upn_hash_previous``. ``settled``: what the last clean run left of each class; a class whose
    token in this read is the same is settled (``Snapshot.settled_classes``), its memberships not built.
    ``settled_school``: the token of the whole read kept beside them (``SchoolToken``), if the state
    vouches that every one of ``settled`` was settled with it; the same again settles them all."""
    b = _Builder(
        today,
        keyed or _plain,
        fingerprints,
    )
    upns = _Upns(hasher)
    b.read(
        Kind.LEARNER,
        rows.learners,
        _learner(upns, today, previous_hasher),
        Reason.UPN_DUPLICATE,
        upns.held_key,
        upns.known,
    )
    b.read(
        Kind.STAFF, rows.staff, _staff, Reason.STAFF_CODE_DUPLICATE, lambda r: _stripped(r.get("staff_code"))
    )
    b.read(Kind.GROUP, rows.groups, _group, Reason.GROUP_ID_DUPLICATE, lambda r: _stripped(r.get("group_id")))
    _read_memberships(b, rows.memberships, upns, settled, settled_school)
    return b.snapshot


def _plain(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_FIRST, _SECOND = operator.itemgetter(0), operator.itemgetter(1)


class ClassTokens:
    """Keyed tokens, one per class (group id), of everything the class's memberships are decided from:
    its rows' values in order (each row's ``repr``); what each row's member is in this read
    (``member``: on roll, left, held back, unknown or not valid; the member's key follows from the row's
    values and, through the key, from the national keys); what the class itself is; and, through the
    key, the context (national keys, profile). Two reads with the same token for a class decide the same
    memberships of it, however the driver cut the rows into chunks. Rows whose fields differ from the
    first chunk's make no token at all.

    A school's rows come in any order (the reference profile does not sort them): ``add`` takes a
    whole school's rows at once when it can, sorts them by class and hashes each class's rows, and their
    members, with no Python statement per row."""

    def __init__(self, fingerprints: RowFingerprints, member: Callable[[Row], str]) -> None:
        self._base = fingerprints.token("memberships settled per class v1")
        self._member = member
        self._names: tuple[str, ...] | None = None
        self._group_value: Callable[[Sequence[object]], Any] = operator.itemgetter(0)
        self._others: Callable[[Sequence[object]], object] = lambda values: ()
        self._members: dict[object, str] = {}  # the row's values but its group -> what its member is
        #: per class, the running tokens of its rows and of their members
        self._running: dict[str, tuple[hashlib.blake2b, hashlib.blake2b]] = {}
        #: each raw group value seen -> the group id it names
        self.group_of: dict[object, str] = {}
        self.usable = True

    def add(
        self, names: tuple[str, ...], chunk: Sequence[Sequence[object]], texts: Sequence[str] | None = None
    ) -> None:
        """A chunk of rows with the same fields (``texts``: each row's ``repr``, if made already)."""
        if not self.usable:
            return
        if names != self._names:
            if self._names is not None or "group_id" not in names:
                self.usable = False
                return
            self._names, group = names, names.index("group_id")
            self._group_value = operator.itemgetter(group)
            rest = [i for i in range(len(names)) if i != group]
            if rest:
                self._others = operator.itemgetter(*rest)
            self._base.update(b"\x00fields" + repr(names).encode() + b"\x00")
        groups = list(map(self._group_value, chunk))
        order: Iterable[int] = range(len(chunk))
        with contextlib.suppress(TypeError):  # group values that do not sort: each run of a class in turn
            order = sorted(order, key=groups.__getitem__)  # stable: each class's rows in their order
        try:
            for raw, run in itertools.groupby(order, key=groups.__getitem__):
                positions = list(run)
                rows = list(map(chunk.__getitem__, positions))
                text = map(texts.__getitem__, positions) if texts is not None else map(repr, rows)
                self._add_class(names, raw, rows, text)
        except TypeError:  # a value that cannot be a key (no driver gives one): no class settles
            self.usable = False

    def _add_class(
        self, names: tuple[str, ...], raw: object, rows: list[Sequence[object]], texts: Iterable[str]
    ) -> None:
        gid = self.group_of.get(raw)
        if gid is None:
            gid = self.group_of[raw] = v.membership_group(raw)
        running = self._running.get(gid)
        if running is None:
            running = self._running[gid] = (self._base.copy(), self._base.copy())
            running[0].update(f"\x00class\x00{gid!r}\x00".encode())
        members, whos = self._members, list(map(self._others, rows))
        try:
            states = "\n".join(map(members.__getitem__, whos))
        except KeyError:  # a member not met yet in this read
            for who, values in zip(whos, rows, strict=True):
                if who not in members:
                    members[who] = self._member(dict(zip(names, values, strict=True)))
            states = "\n".join(map(members.__getitem__, whos))
        running[0].update(("\n".join(texts) + "\n").encode())
        running[1].update((states + "\n").encode())

    def digests(self, group: Callable[[str], str]) -> dict[str, bytes]:
        """Each class's token, once every row was added (``group``: what the class is in this read)."""
        if not self.usable:
            return {}
        tokens = {}
        for gid, (rows, members) in self._running.items():
            token = rows.copy()
            token.update(b"\x00members\x00" + members.digest() + f"\x00group\x00{group(gid)}".encode())
            tokens[gid] = token.digest()
        return tokens


class SchoolToken:
    """A keyed token of everything a school's class tokens are made from, made with a few C-level
    passes and no work per class: every learner's, member of staff's and group's key with whether they
    have left, the held-back staff and groups and the UPNs' pseudonyms, as they are before any
    membership is decided (``_membership`` may hash more UPNs); then every membership row's values in
    order; and, through the key, the context. The same token means the same inputs, so the same token
    for every class (a superset of what each covers: any change anywhere makes it differ, and the
    classes are then compared one by one)."""

    def __init__(
        self,
        fingerprints: RowFingerprints,
        snapshot: Snapshot,
        upn_hashes: Mapping[str, str],
        held: tuple[set[str], set[str]],
    ) -> None:
        self._hash = fingerprints.token("memberships settled per school v2")
        for kind in (Kind.LEARNER, Kind.STAFF, Kind.GROUP):
            # ``left`` is a bool when built, 0 or 1 when known from the state: the same, as a bool
            people = sorted((key, bool(entry.left)) for key, entry in snapshot.entries[kind].items())
            self._hash.update(f"\x00{kind.value}\x00{people!r}".encode())
        self._hash.update(f"\x00held\x00{sorted(held[0])!r}\x00{sorted(held[1])!r}".encode())
        self._hash.update(f"\x00upns\x00{sorted(upn_hashes.items())!r}\x00rows".encode())
        self._names: tuple[str, ...] | None = None

    def add(self, names: tuple[str, ...], texts: Iterable[str]) -> None:
        """A chunk of rows with the same fields, as each row's ``repr``."""
        if names != self._names:  # \x00 is never in a repr: a marker no value can forge
            self._names = names
            self._hash.update(b"\x00fields" + repr(names).encode() + b"\x00")
        self._hash.update(("\n".join(texts) + "\n").encode())

    def digest(self) -> bytes:
        return self._hash.digest()


def _member_status(
    upns: _Upns, members: Mapping[Kind, Mapping[str, Entry]], held_staff: set[str]
) -> Callable[[Row], str]:
    """What a membership row's member is in this read, as ``_membership`` would find it: not valid
    (and why), unknown, on roll, left or held back. Their key is not part of it: it follows from the
    row's values (a UPN's pseudonym from the national key, which the token's context names)."""

    def status(row: Row) -> str:
        try:
            kind, ref = v.membership_member(row, upn_parser=upns.parse_seen)
        except Invalid as exc:
            return f"invalid {exc.reason.value}"
        if kind is Kind.LEARNER:
            key = upns.hashes.get(ref)
        else:
            key = ref if ref in members[Kind.STAFF] or ref in held_staff else None
        if key is None:
            return "unknown"
        entry = members[kind].get(key)
        return "held" if entry is None else "left" if entry.left else "on roll"

    return status


def _group_status(groups: Mapping[str, Entry], held_groups: set[str]) -> Callable[[str], str]:
    def status(gid: str) -> str:
        entry = groups.get(gid)
        if entry is not None:
            return "left" if entry.left else "on roll"
        return "held" if gid in held_groups else "unknown"

    return status


def _read_memberships(
    b: _Builder,
    rows: Iterable[Row],
    upns: _Upns,
    settled: SettledClasses | None,
    settled_school: bytes | None = None,
) -> None:
    """Memberships are most of a school's rows, and in a nightly run nearly all are known: a known row
    is looked up by the fingerprint of its values, with no dict made for it, and the per-kind tables are
    looked up once, not per row. Any other row takes the full path (``_membership``).

    Each class's token (``ClassTokens``) is made as the rows pass. When the last clean run left some
    (``settled``), the rows are kept and the tokens made first: a class whose token is the same is
    settled and none of its rows is looked at again; the other classes are read as they come (a first
    run's memory holds one chunk, and a token per class)."""
    snap = b.snapshot
    held = (
        {key for kind, key in snap.held_keys if kind is Kind.STAFF},
        {key for kind, key in snap.held_keys if kind is Kind.GROUP},
    )
    members = {Kind.LEARNER: snap.entries[Kind.LEARNER], Kind.STAFF: snap.entries[Kind.STAFF]}
    group = _group_status(snap.entries[Kind.GROUP], held[1])
    tokens = school = None
    if b.fingerprints is not None:
        tokens = ClassTokens(b.fingerprints, _member_status(upns, members, held[0]))
        school = SchoolToken(b.fingerprints, snap, upns.hashes, held)
    chunks: Iterable[tuple[tuple[str, ...], Sequence[Sequence[object]]]] = _value_chunks(rows)
    made: dict[str, bytes] | None = None
    whole = b""
    skip: frozenset[object] = frozenset()  # the settled classes' raw group values
    texts: list[list[str]] | None = None  # each kept row's repr, made once for every token and fingerprint
    if tokens is not None and school is not None and settled:
        chunks = list(chunks)  # one school's memberships, read twice: for the tokens first
        texts = [list(map(repr, chunk)) for _, chunk in chunks]
        for (names, _), chunk_texts in zip(chunks, texts, strict=True):
            school.add(names, chunk_texts)
        whole = school.digest()
        if settled_school is not None and whole == settled_school:  # every class as it was settled
            snap.settled_classes = snap.classes_read = frozenset(settled)
            snap.settled[Kind.MEMBERSHIP] = sum(kept.records for kept in settled.values())
            snap.rows_read[Kind.MEMBERSHIP] += sum(len(chunk) for _, chunk in chunks)
            snap.school_token, snap.school_settled = (whole, snap.classes_read), True
            return
        school = None  # made already
        made, skip = _compare_classes(snap, tokens, chunks, texts, settled, group)
    held_classes: set[str] = set()
    if skip and snap.settled_classes.issuperset(snap.classes_read):
        read = sum(len(chunk) for _, chunk in chunks)  # every class settled: no row to look at
    else:
        pending = None if made is not None else tokens  # made already, or made as the rows pass
        read, held_classes = _decide_memberships(b, chunks, upns, held, pending, skip, school, texts)
    snap.rows_read[Kind.MEMBERSHIP] += read
    if tokens is not None:
        made = made if made is not None else tokens.digests(group)
        unsettled = snap.settled_classes | held_classes
        snap.class_tokens = {gid: token for gid, token in made.items() if gid not in unsettled}
        whole = whole if school is None else school.digest()
        if tokens.usable and not any(h.kind is Kind.MEMBERSHIP for h in snap.held_back):
            snap.school_token = (whole, frozenset(made))


def _compare_classes(
    snap: Snapshot,
    tokens: ClassTokens,
    chunks: Sequence[tuple[tuple[str, ...], Sequence[Sequence[object]]]],
    texts: Sequence[Sequence[str]],
    settled: SettledClasses,
    group: Callable[[str], str],
) -> tuple[dict[str, bytes], frozenset[object]]:
    """Every class's token, made from the rows kept (and their ``texts``); the classes whose token is
    what was settled are settled in ``snap``. Returns the tokens and the settled classes' raw group values."""
    for names, same_names in itertools.groupby(zip(chunks, texts, strict=True), key=lambda kept: kept[0][0]):
        both = list(same_names)
        rows = list(itertools.chain.from_iterable(chunk for (_, chunk), _ in both))
        tokens.add(names, rows, list(itertools.chain.from_iterable(map(_SECOND, both))))
    made = tokens.digests(group)
    snap.classes_read = frozenset(tokens.group_of.values())
    same = frozenset(gid for gid, kept in settled.items() if made.get(gid) == kept.token)
    if not same:
        return made, frozenset()
    snap.settled_classes = same
    snap.settled[Kind.MEMBERSHIP] = sum(settled[gid].records for gid in same)
    return made, frozenset(raw for raw, gid in tokens.group_of.items() if gid in same)


def _decide_memberships(
    b: _Builder,
    chunks: Iterable[tuple[tuple[str, ...], Sequence[Sequence[object]]]],
    upns: _Upns,
    held: tuple[set[str], set[str]],
    tokens: ClassTokens | None,
    skip: frozenset[object],
    school: SchoolToken | None = None,
    kept_texts: Sequence[Sequence[str]] | None = None,
) -> tuple[int, set[str]]:
    """Every membership row, known or the long way, but those of settled classes (``skip``: their raw
    group values); returns how many rows there were, and the classes with a row held back.
    ``kept_texts``: each chunk's rows' ``repr``, made already (for the tokens)."""
    snap = b.snapshot
    members = {Kind.LEARNER: snap.entries[Kind.LEARNER], Kind.STAFF: snap.entries[Kind.STAFF]}
    learners, staff = members[Kind.LEARNER], members[Kind.STAFF]
    groups, entries = snap.entries[Kind.GROUP], snap.entries[Kind.MEMBERSHIP]
    known: Mapping[bytes, Known] = {}
    if b.fingerprints is not None:
        known = b.fingerprints.membership_known(snap.settled_classes, snap.classes_read)
    learner, membership = Kind.LEARNER.value, Kind.MEMBERSHIP
    held_classes: set[str] = set()
    index = 0
    for number, (names, chunk) in enumerate(chunks):
        # the whole read's token made as the rows pass (a first run): each row's repr made once, for it,
        # the class tokens and the row's fingerprint
        texts = kept_texts[number] if kept_texts is not None else None
        if school is not None:
            texts = list(map(repr, chunk))
            school.add(names, texts)
        if tokens is not None:
            tokens.add(names, chunk, texts)
        prefixed = b.fingerprints.prefixed(membership, names) if b.fingerprints is not None else None
        group = names.index("group_id") if skip else -1
        for position, values in enumerate(chunk):
            index += 1
            if group >= 0 and values[group] in skip:
                continue
            fp = None
            if prefixed is not None:
                running = prefixed.copy()
                running.update((texts[position] if texts is not None else repr(values)).encode())
                fp = running.digest()
                hit = known.get(fp)
                if hit is not None:
                    key = hit.key
                    group_id, member_kind, member_ref = key.split("/", 2)
                    present = learners if member_kind == learner else staff
                    if member_ref in present and group_id in groups:
                        if key not in entries:
                            entries[key] = Entry(membership, key, None, hit.digest, False)
                        continue
            # not known, or the member or the group is no longer sendable: the full path says why
            row = dict(zip(names, values, strict=True))
            before = len(snap.held_back)
            _membership(b, index, row, fp, upns, members, groups, held)
            if len(snap.held_back) != before:
                held_classes.add(v.membership_group(row.get("group_id")))
    return index, held_classes


def _membership(
    b: _Builder,
    index: int,
    row: Row,
    fp: bytes | None,
    upns: _Upns,
    members: Mapping[Kind, Mapping[str, Entry]],
    groups: Mapping[str, Entry],
    held: tuple[set[str], set[str]],
) -> None:
    """One membership row the long way: validated, its member and group looked up, held back or kept."""
    held_staff, held_groups = held
    entries = b.snapshot.entries[Kind.MEMBERSHIP]
    try:
        valid = v.membership(row, upn_parser=upns.parse)
    except Invalid as exc:
        reason = Reason.MEMBER_HELD_BACK if exc.reason.value.startswith("upn_") else exc.reason
        b.hold(Kind.MEMBERSHIP, index, row, reason)
        return
    if valid.member_kind is Kind.LEARNER:
        member_key = upns.hashes.get(valid.member_ref)
    else:
        known_staff = valid.member_ref in members[Kind.STAFF] or valid.member_ref in held_staff
        member_key = valid.member_ref if known_staff else None
    if member_key is None:
        b.hold(Kind.MEMBERSHIP, index, row, Reason.MEMBER_UNKNOWN)
        return
    record = wire_record(
        Kind.MEMBERSHIP,
        {"group_id": valid.group_id, "member_kind": valid.member_kind.value, "member_key": member_key},
    )
    key = record_key(Kind.MEMBERSHIP, record)
    if member_key not in members[valid.member_kind]:
        b.hold(Kind.MEMBERSHIP, index, row, Reason.MEMBER_HELD_BACK, key)
    elif valid.group_id not in groups:
        is_held = valid.group_id in held_groups
        reason = Reason.MEMBER_HELD_BACK if is_held else Reason.GROUP_UNKNOWN
        b.hold(Kind.MEMBERSHIP, index, row, reason, key if is_held else None)
    elif key not in entries:  # the same membership listed twice is one membership
        entries[key] = Entry(Kind.MEMBERSHIP, key, record, record_digest(record), False, None, fp)
