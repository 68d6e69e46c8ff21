"""The demo and the rehearsal kit: schools on SQLite over ODBC, the sandbox, and hwb-client's real CLI."""
