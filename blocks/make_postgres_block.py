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
import asyncio
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


async def drop_rendered_url(name: str) -> None:
    """Remove what the saved document holds beyond the block's fields.

    prefect-sqlalchemy 0.4 (Prefect 2) saves ``_rendered_url``, the whole URL *with the password*,
    beside the fields, outside the ones Prefect masks: the API's block documents (read without
    ``include_secrets``) and ``prefect block inspect`` showed it. The block recomputes it from
    ``connection_info`` when it is loaded, so the stored copy is dropped (the data replaced, not
    merged, which also cleans a document saved by an older version of this script).
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import BlockDocumentUpdate

    async with get_client() as client:
        slug = SqlAlchemyConnector.get_block_type_slug()
        document = await client.read_block_document_by_name(name, block_type_slug=slug, include_secrets=True)
        private = [key for key in document.data if key.startswith("_")]
        if private:
            data = {key: value for key, value in document.data.items() if key not in private}
            await client.update_block_document(document.id, BlockDocumentUpdate(data=data, merge_existing_data=False))


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
    asyncio.run(drop_rendered_url(BLOCK))
    print(f"saved block {BLOCK!r} (postgresql+psycopg2://{args.user}@{args.host}:{args.port}/{args.database})")
    warn_if_superuser(args.host, args.port, args.user, password, args.database)


if __name__ == "__main__":
    main()
