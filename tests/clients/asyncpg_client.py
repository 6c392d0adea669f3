"""asyncpg through pgsluice: many concurrent connections with asyncpg's default statement cache
(every fetch/execute with parameters is a named protocol-level prepared statement), explicit
prepared statements, executemany and a transaction block.

Usage: asyncpg_client.py HOST PORT USER PASSWORD DBNAME CLIENTS ROUNDS
Checks every result; prints "OK ..." and exits 0, or prints the mismatches and exits 1.
"""

import asyncio
import sys

import asyncpg


class Mismatch(Exception):
    pass


def check(what, got, want):
    if got != want:
        raise Mismatch(f"{what}: got {got!r}, want {want!r}")


async def worker(args, client, rounds, counts):
    conn = await asyncpg.connect(
        host=args["host"], port=args["port"], user=args["user"],
        password=args["password"], database=args["db"], timeout=30,
    )
    try:
        stmt = await conn.prepare("select $1::int8 * 3 as tripled")
        for n in range(rounds):
            row = await conn.fetchrow(
                "select $1::int4 + $2::int4 as sum, $3::text as tag", client, n, f"c{client}")
            check("fetchrow", (row["sum"], row["tag"]), (client + n, f"c{client}"))
            rows = await conn.fetch(
                "select g, g * $2::int4 as m from generate_series(1, $1::int4) g", n % 4 + 1, client)
            check("fetch", [(r["g"], r["m"]) for r in rows],
                  [(g, g * client) for g in range(1, n % 4 + 2)])
            check("prepared", await stmt.fetchval(client * 1000 + n), (client * 1000 + n) * 3)
            counts["queries"] += 3
        await conn.executemany(
            "insert into asyncpg_items (client, k, v) values ($1, $2, $3)",
            [(client, k, f"v{k}") for k in range(10)])
        async with conn.transaction():
            await conn.execute(
                "insert into asyncpg_items (client, k, v) values ($1, $2, $3)", client, 10, "tx")
            n = await conn.fetchval("select count(*) from asyncpg_items where client = $1", client)
            check("count inside transaction", n, 11)
        total = await conn.fetchval(
            "select sum(k) from asyncpg_items where client = $1 and v like $2", client, "v%")
        check("executemany rows", total, sum(range(10)))
        counts["queries"] += 13
        # An error inside a prepared execution leaves the connection usable.
        try:
            await conn.fetchval("select 10 / $1::int4", 0)
            raise Mismatch("division by zero did not fail")
        except asyncpg.exceptions.DivisionByZeroError:
            pass
        check("after error", await conn.fetchval("select 10 / $1::int4", 5), 2)
        counts["clients_ok"] += 1
    finally:
        await conn.close()


async def main():
    host, port, user, password, db, clients, rounds = sys.argv[1:8]
    args = dict(host=host, port=int(port), user=user, password=password, db=db)
    setup = await asyncpg.connect(**{k if k != "db" else "database": v for k, v in args.items()})
    await setup.execute("drop table if exists asyncpg_items")
    await setup.execute("create table asyncpg_items (client int, k int, v text)")
    await setup.close()
    counts = {"queries": 0, "clients_ok": 0}
    results = await asyncio.gather(
        *(worker(args, c, int(rounds), counts) for c in range(int(clients))),
        return_exceptions=True)
    errors = [f"client {c}: {type(r).__name__}: {r}" for c, r in enumerate(results) if r is not None]
    if errors:
        print("\n".join(errors))
        print(f"FAILED asyncpg {asyncpg.__version__}: {len(errors)} of {clients} clients failed")
        sys.exit(1)
    print(f"OK asyncpg {asyncpg.__version__}: {counts['clients_ok']} clients, "
          f"{counts['queries']} checked queries")


if __name__ == "__main__":
    asyncio.run(main())
