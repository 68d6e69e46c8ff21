"""The MIS source over the real SQLite3 ODBC driver (unixODBC + libsqliteodbc): profiles, streaming, errors."""

import sqlite3
from importlib import resources
from pathlib import Path

import pytest

from hwb_client.adapters.odbc_source import MisSource, load_profile
from hwb_client.core.upn import make_upn
from hwb_client.errors import ConfigError, MisError, ProfileError

DFES = "6612001"


def make_mis(path: Path, learners: int = 3) -> None:
    schema = (resources.files("hwb_client.profiles") / "reference.sql").read_text()
    with sqlite3.connect(path) as db:
        db.executescript(schema)
        for n in range(learners):
            db.execute(
                "INSERT INTO mis_pupil (pupil_id, dfes_number, upn, legal_forename, legal_surname, date_of_birth,"
                " year_group, registration_group, gender, home_address) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    n + 1,
                    DFES,
                    make_upn(661, 2001 + n // 1000, 20, n % 1000),
                    "Gwenllïan",
                    "Llŷr",
                    "2015-02-03",
                    "6",
                    "6A",
                    "F",
                    "Tŷ Newydd",
                ),
            )
        db.execute("INSERT INTO mis_pupil (pupil_id, dfes_number, upn) VALUES (99999, '6619999', 'X')")
        db.execute(
            "INSERT INTO mis_staff (staff_id, dfes_number, staff_code, legal_forename, legal_surname,"
            " start_date) VALUES (1, ?, 'T1', 'Rhodri', 'ap Siôn', '2011-09-01')",
            (DFES,),
        )
        db.execute("INSERT INTO mis_group VALUES (1, ?, '6A', 'Dosbarth 6A', 'registration', '6')", (DFES,))
        db.execute("INSERT INTO mis_group_member VALUES (1, ?, 1, 1, NULL)", (DFES,))
        db.execute("INSERT INTO mis_group_member VALUES (2, ?, 1, NULL, 1)", (DFES,))


@pytest.fixture
def mis(tmp_path: Path) -> str:
    path = tmp_path / "mis.sqlite3"
    make_mis(path)
    return f"Driver=SQLite3;Database={path}"


def test_reference_profile_reads_one_schools_rows_with_welsh_text_intact(mis: str) -> None:
    source = MisSource.connect(mis, DFES, load_profile("reference"))
    learners = list(source.rows("learners"))
    assert len(learners) == 3
    assert learners[0]["legal_forename"] == "Gwenllïan" and learners[0]["legal_surname"] == "Llŷr"
    assert "home_address" not in learners[0] and "gender" not in learners[0]
    assert str(learners[0]["date_of_birth"])[:10] == "2015-02-03"
    assert [r["staff_code"] for r in source.rows("staff")] == ["T1"]
    members = sorted((r["member_kind"], r["upn"] or r["staff_code"]) for r in source.rows("memberships"))
    assert members == [("learner", make_upn(661, 2001, 20, 0)), ("staff", "T1")]
    source.close()


def test_rows_are_streamed_in_chunks(mis: str, tmp_path: Path) -> None:
    path = tmp_path / "big.sqlite3"
    make_mis(path, learners=2500)
    source = MisSource.connect(f"Driver=SQLite3;Database={path}", DFES, load_profile("reference"))
    source.fetch_rows = 100
    stream = iter(source.rows("learners"))
    first = next(stream)
    assert first["legal_forename"] == "Gwenllïan"
    assert sum(1 for _ in stream) == 2499
    chunks = source.rows("learners")  # as the membership reader takes them: values, no dict per row
    sizes = [len(chunk) for chunk in chunks.chunks]
    assert sizes == [100] * 25
    source.close()


def test_a_query_with_its_columns_in_another_order_gives_the_same_rows(mis: str, tmp_path: Path) -> None:
    """A profile whose SQL returns more columns, in another order, than its fields: each row's values
    are picked out in the order of the fields, and the rows are the same as the reference profile's."""
    text = (resources.files("hwb_client.profiles") / "reference.toml").read_text()
    reordered = text.replace(
        "SELECT g.group_code, 'learner' AS member_kind, p.upn AS upn, NULL AS staff_code",
        "SELECT NULL AS staff_code, p.upn AS upn, 'learner' AS member_kind, g.group_code, 1 AS extra",
    ).replace(
        "SELECT g.group_code, 'staff' AS member_kind, NULL AS upn, s.staff_code AS staff_code",
        "SELECT s.staff_code AS staff_code, NULL AS upn, 'staff' AS member_kind, g.group_code, 1 AS extra",
    )
    assert reordered != text
    profile = tmp_path / "reordered.toml"
    profile.write_text(reordered.replace('name = "reference"', 'name = "reordered"'))
    reference = MisSource.connect(mis, DFES, load_profile("reference"))
    other = MisSource.connect(mis, DFES, load_profile(str(profile)))
    try:
        assert list(other.rows("memberships")) == list(reference.rows("memberships"))
        (chunk,) = list(other.rows("memberships").chunks)
        fields = other.rows("memberships").fields
        assert [dict(zip(fields, values, strict=True)) for values in chunk] == list(
            reference.rows("memberships")
        )
    finally:
        reference.close()
        other.close()


def test_a_profile_naming_a_missing_column_fails_with_the_column_and_the_fix(
    mis: str, tmp_path: Path
) -> None:
    text = (resources.files("hwb_client.profiles") / "reference.toml").read_text()
    broken = tmp_path / "broken.toml"
    broken.write_text(
        text.replace(
            'year_group = "year_group"\nregistration_group', 'year_group = "nc_year"\nregistration_group', 1
        )
    )
    source = MisSource.connect(mis, DFES, load_profile(str(broken)))
    with pytest.raises(ProfileError, match=r"no column .nc_year.*learners\.columns"):
        list(source.rows("learners"))


def test_a_query_error_names_the_query_and_the_profile(mis: str, tmp_path: Path) -> None:
    text = (resources.files("hwb_client.profiles") / "reference.toml").read_text()
    broken = tmp_path / "broken.toml"
    broken.write_text(text.replace("FROM mis_staff", "FROM mis_staff_v2"))
    source = MisSource.connect(mis, DFES, load_profile(str(broken)))
    with pytest.raises(ProfileError, match="the staff query failed"):
        list(source.rows("staff"))


def test_unreachable_mis_is_a_clear_mis_error() -> None:
    with pytest.raises(MisError, match="cannot connect to the MIS over ODBC"):
        MisSource.connect("Driver=NoSuchDriver;Database=x", DFES, load_profile("reference"))


def test_a_profile_mapping_a_field_outside_the_record_model_is_a_config_error(tmp_path: Path) -> None:
    text = (resources.files("hwb_client.profiles") / "reference.toml").read_text()
    broken = tmp_path / "extra.toml"
    broken.write_text(text.replace('upn = "upn"\n', 'upn = "upn"\nhome_address = "home_address"\n', 1))
    with pytest.raises(ConfigError, match="home_address, which the record model does not have"):
        load_profile(str(broken))


def test_unknown_builtin_profile_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no built-in profile"):
        load_profile("capita-sims")
