"""The local ledger: SQLite schema, migrations, queries."""
