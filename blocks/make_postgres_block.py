r"""Save the ``postgres-connector`` block (SqlAlchemyConnector, postgresql+psycopg2, database ny_taxi).

Your server:  POSTGRES_PASSWORD=... python blocks/make_postgres_block.py --host db.example --user ny_taxi_etl
              (the password comes from $POSTGRES_PASSWORD, --password-file, or a prompt)
Local stack:  python blocks/make_postgres_block.py --local   (after: source .stack/env)

Saving again overwrites. The password is stored as a secret and never printed.

Connect the flows as a role of their own, not as a superuser (the course's ``root``):
it needs to create its tables in ny_taxi and nothing more. Once, as the superuser:

    CREATE ROLE ny_taxi_etl LOGIN PASSWORD '...' NOSUPERUSER NOCREATEDB NOCREATEROLE;
    GRANT CONNECT ON DATABASE ny_taxi TO ny_taxi_etl;
    \c ny_taxi
    GRANT USAGE, CREATE ON SCHEMA public TO ny_taxi_etl;

(the local stack does exactly this). The script checks the role it is given and warns
if it is a superuser.
"""
from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from prefect_sqlalchemy import ConnectionComponents, SqlAlchemyConnector, SyncDriver

from nyctaxi.resources import POSTGRES_BLOCK as BLOCK
from nyctaxi.resources import setting


def read_password(password_file: str | None, interactive: bool) -> str:
    if password_file:
        return Path(password_file).expanduser().read_text().strip()
    if setting("POSTGRES_PASSWORD"):
        return setting("POSTGRES_PASSWORD")
    if interactive and sys.stdin.isatty():
        return getpass.getpass("PostgreSQL password: ")
    sys.exit("no password: set POSTGRES_PASSWORD, pass --password-file, or run in a terminal to be asked")


def warn_if_superuser(host: str, port: int, user: str, password: str, database: str) -> None:
    """Say so if ``user`` is a superuser (the server is asked; if it cannot be, say that)."""
    import psycopg2

    try:
        with psycopg2.connect(host=host, port=port, user=user, password=password, dbname=database,
                              connect_timeout=5) as conn, conn.cursor() as cur:
            cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            superuser = cur.fetchone()[0]
        conn.close()
    except psycopg2.Error as e:  # the block is saved anyway: the server may not be up yet
        print(f"note: could not connect to check the role now ({type(e).__name__})")
        return
    if superuser:
        print(f"warning: {user!r} is a superuser: the flows need only to own their tables; create a role for "
              f"them (see `python {sys.argv[0]} --help`) and save the block with it", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--local", action="store_true", help="use the local stack's PostgreSQL")
    parser.add_argument("--host", default=setting("POSTGRES_HOST"))
    parser.add_argument("--port", type=int, default=int(setting("POSTGRES_PORT")))
    parser.add_argument("--user", default=setting("POSTGRES_USER"))
    parser.add_argument("--database", default=setting("POSTGRES_DB"))
    parser.add_argument("--password-file", default=setting("POSTGRES_PASSWORD_FILE"))
    args = parser.parse_args()
    if args.local and not setting("POSTGRES_PASSWORD_FILE"):
        sys.exit("--local needs the local stack's environment: run `make stack` and `source .stack/env` first")

    password = read_password(args.password_file, interactive=not args.local)
    connector = SqlAlchemyConnector(connection_info=ConnectionComponents(
        driver=SyncDriver.POSTGRESQL_PSYCOPG2, host=args.host, port=args.port, username=args.user,
        password=password, database=args.database,
    ))
    connector.save(BLOCK, overwrite=True)
    print(f"saved block {BLOCK!r} (postgresql+psycopg2://{args.user}@{args.host}:{args.port}/{args.database})")
    warn_if_superuser(args.host, args.port, args.user, password, args.database)


if __name__ == "__main__":
    main()
