-- The reference MIS schema that the shipped "reference" query profile reads.
-- Portable across SQLite, PostgreSQL and MariaDB. One database may hold many schools (an LA's
-- extract), so every table carries the school's DfES number. The pupil table deliberately holds
-- fields that must never leave the school (gender, address, SEN status, ethnicity): the client
-- reads only what its profile selects and sends only what the record model allows.
CREATE TABLE mis_pupil (
    pupil_id           INTEGER      NOT NULL PRIMARY KEY,
    dfes_number        VARCHAR(7)   NOT NULL,
    upn                VARCHAR(20),
    legal_forename     VARCHAR(200),
    legal_surname      VARCHAR(200),
    preferred_forename VARCHAR(200),
    date_of_birth      DATE,
    gender             VARCHAR(1),
    year_group         VARCHAR(4),
    registration_group VARCHAR(40),
    admission_date     DATE,
    leaving_date       DATE,
    home_address       VARCHAR(400),
    sen_status         VARCHAR(10),
    ethnicity          VARCHAR(10)
);
CREATE INDEX mis_pupil_school ON mis_pupil (dfes_number);

CREATE TABLE mis_staff (
    staff_id       INTEGER      NOT NULL PRIMARY KEY,
    dfes_number    VARCHAR(7)   NOT NULL,
    staff_code     VARCHAR(20),
    title          VARCHAR(20),
    legal_forename VARCHAR(200),
    legal_surname  VARCHAR(200),
    start_date     DATE,
    leaving_date   DATE,
    home_address   VARCHAR(400),
    ni_number      VARCHAR(12)
);
CREATE INDEX mis_staff_school ON mis_staff (dfes_number);

CREATE TABLE mis_group (
    group_pk    INTEGER      NOT NULL PRIMARY KEY,
    dfes_number VARCHAR(7)   NOT NULL,
    group_code  VARCHAR(64)  NOT NULL,
    name        VARCHAR(200),
    group_type  VARCHAR(20)  NOT NULL,
    year_group  VARCHAR(4)
);
CREATE INDEX mis_group_school ON mis_group (dfes_number);

-- A membership row names either a pupil or a member of staff (teacher of the group).
CREATE TABLE mis_group_member (
    member_pk   INTEGER      NOT NULL PRIMARY KEY,
    dfes_number VARCHAR(7)   NOT NULL,
    group_pk    INTEGER      NOT NULL,
    pupil_id    INTEGER,
    staff_id    INTEGER
);
CREATE INDEX mis_group_member_school ON mis_group_member (dfes_number);
