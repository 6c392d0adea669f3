"""psycopg 3 through pgsluice with prepare_threshold=0 (every query is a named protocol-level
prepared statement), a small prepared_max so that psycopg evicts (closes) its own statements,
a transaction block, executemany and pipeline mode.

Usage: psycopg_client.py HOST PORT USER PASSWORD DBNAME CLIENTS ROUNDS
Checks every result; prints "OK ..." and exits 0, or prints the mismatches and exits 1.
"""

import asyncio
import sys

import psycopg


class Mismatch(Exception):
    pass


def check(what, got, want):
    if got != want:
        raise Mismatch(f"{what}: got {got!r}, want {want!r}")


async def worker(conninfo, client, rounds, counts):
    conn = await psycopg.AsyncConnection.connect(conninfo, prepare_threshold=0, autocommit=True)
    # Fewer cached statements than texts used below: psycopg deallocates the oldest ones.
    conn.prepared_max = 4
    try:
        for n in range(rounds):
            cur = await conn.execute("select %s::int4 + %s::int4, %s::text", (client, n, f"c{client}"))
            check("select", await cur.fetchone(), (client + n, f"c{client}"))
            cur = await conn.execute(
                "select g, g * %s::int4 from generate_series(1, %s::int4) g", (client, n % 4 + 1))
            check("rows", await cur.fetchall(), [(g, g * client) for g in range(1, n % 4 + 2)])
            # Six more texts cycle through the cache of four.
            k = n % 6
            cur = await conn.execute(f"select %s::int4 * {k + 2}", (client,))
            check("cycled", (await cur.fetchone())[0], client * (k + 2))
            counts["queries"] += 3
        async with conn.transaction():
            async with conn.cursor() as cur:
                await cur.executemany(
                    "insert into psycopg_items (client, k, v) values (%s, %s, %s)",
                    [(client, k, f"v{k}") for k in range(10)])
                await cur.execute("select count(*) from psycopg_items where client = %s", (client,))
                check("count inside transaction", (await cur.fetchone())[0], 10)
        # Pipeline mode: several prepared queries in flight before one Sync.
        async with conn.pipeline():
            curs = []
            for n in range(8):
                curs.append(await conn.execute("select %s::int4 * 2, %s::text", (n, f"p{client}")))
        for n, cur in enumerate(curs):
            check("pipeline", await cur.fetchone(), (n * 2, f"p{client}"))
        counts["queries"] += 10
        try:
            await conn.execute("select 10 / %s::int4", (0,))
            raise Mismatch("division by zero did not fail")
        except psycopg.errors.DivisionByZero:
            pass
        cur = await conn.execute("select 10 / %s::int4", (5,))
        check("after error", (await cur.fetchone())[0], 2)
        counts["clients_ok"] += 1
    finally:
        await conn.close()


async def main():
    host, port, user, password, db, clients, rounds = sys.argv[1:8]
    conninfo = psycopg.conninfo.make_conninfo(
        host=host, port=port, user=user, password=password, dbname=db, connect_timeout=30)
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as setup:
        await setup.execute("drop table if exists psycopg_items")
        await setup.execute("create table psycopg_items (client int, k int, v text)")
    counts = {"queries": 0, "clients_ok": 0}
    results = await asyncio.gather(
        *(worker(conninfo, c, int(rounds), counts) for c in range(int(clients))),
        return_exceptions=True)
    errors = [f"client {c}: {type(r).__name__}: {r}" for c, r in enumerate(results) if r is not None]
    version = f"psycopg {psycopg.__version__} (libpq {psycopg.pq.version()})"
    if errors:
        print("\n".join(errors))
        print(f"FAILED {version}: {len(errors)} of {clients} clients failed")
        sys.exit(1)
    print(f"OK {version}: {counts['clients_ok']} clients, {counts['queries']} checked queries")


if __name__ == "__main__":
    asyncio.run(main())
