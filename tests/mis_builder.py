"""A small, exact MIS on the reference schema (SQLite file), for tests that assert precise outcomes.

The demo and benchmarks use ``hwb_synth`` for realistic data; these tests want a handful of records
they can change one at a time.
"""

from __future__ import annotations

import sqlite3
from importlib import resources
from pathlib import Path

from hwb_client.core.upn import make_upn


def upn(n: int) -> str:
    return make_upn(661, 2001 + n // 1000, 20, n % 1000)


class Mis:
    def __init__(self, path: Path, dfes: str) -> None:
        self.path = path
        self.dfes = dfes
        fresh = not path.exists()
        self.db = sqlite3.connect(path)
        if fresh:
            self.db.executescript((resources.files("hwb_client.profiles") / "reference.sql").read_text())

    @property
    def odbc(self) -> str:
        return f"Driver=SQLite3;Database={self.path}"

    def add_learner(
        self,
        n: int,
        *,
        upn_value: str | None = None,
        forename: str = "Siân",
        surname: str = "Prydderch",
        dob: str | None = "2015-03-04",
        year: str | None = "6",
        reg: str = "6A",
        leaving: str | None = None,
    ) -> None:
        self.db.execute(
            "INSERT INTO mis_pupil (pupil_id, dfes_number, upn, legal_forename, legal_surname, date_of_birth,"
            " year_group, registration_group, admission_date, leaving_date, gender, home_address)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                n,
                self.dfes,
                upn_value if upn_value is not None else upn(n),
                forename,
                surname,
                dob,
                year,
                reg,
                "2019-09-01",
                leaving,
                "F",
                "Tŷ Gwyn, Llanfair",
            ),
        )

    def add_staff(
        self,
        n: int,
        code: str | None,
        *,
        start: str | None = "2012-09-01",
        leaving: str | None = None,
        forename: str = "Dafydd",
        surname: str = "ap Gruffudd",
    ) -> None:
        self.db.execute(
            "INSERT INTO mis_staff (staff_id, dfes_number, staff_code, legal_forename, legal_surname, start_date,"
            " leaving_date, ni_number) VALUES (?,?,?,?,?,?,?,?)",
            (n, self.dfes, code, forename, surname, start, leaving, "AB123456C"),
        )

    def add_group(self, pk: int, code: str, *, kind: str = "registration", year: str | None = "6") -> None:
        self.db.execute(
            "INSERT INTO mis_group VALUES (?,?,?,?,?,?)", (pk, self.dfes, code, f"Grŵp {code}", kind, year)
        )

    def add_member(
        self, pk: int, group_pk: int, *, pupil: int | None = None, staff: int | None = None
    ) -> None:
        self.db.execute(
            "INSERT INTO mis_group_member VALUES (?,?,?,?,?)", (pk, self.dfes, group_pk, pupil, staff)
        )

    def execute(self, sql: str, *params: object) -> None:
        self.db.execute(sql, params)

    def commit(self) -> None:
        self.db.commit()

    def close(self) -> None:
        self.db.close()


def small_school(path: Path, dfes: str, learners: int = 30, first: int = 1) -> Mis:
    """A school with ``learners`` valid learners in 6A, two staff, one class with its members."""
    mis = Mis(path, dfes)
    mis.add_group(1, "6A")
    mis.add_staff(1, "DAP")
    mis.add_staff(2, "SJE", forename="Sioned", surname="Jones")
    mis.add_member(1, 1, staff=1)
    for i, n in enumerate(range(first, first + learners)):
        mis.add_learner(n)
        mis.add_member(100 + i, 1, pupil=n)
    mis.commit()
    return mis
