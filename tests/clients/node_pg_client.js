// node-postgres (`pg`) through pgsluice: named queries ({name, text, values}) are prepared once
// per connection under the given name and then only bound and executed, on whichever server
// the pooler hands out. Also a transaction block and an error inside a named query.
//
// Usage: node node_pg_client.js HOST PORT USER PASSWORD DBNAME CLIENTS ROUNDS
// (NODE_PATH must point at a node_modules holding `pg`.)
// Checks every result; prints "OK ..." and exits 0, or prints the mismatches and exits 1.
'use strict';
const pg = require('pg');

const [host, port, user, password, database, clients, rounds] = process.argv.slice(2);
const config = { host, port: Number(port), user, password, database, connectionTimeoutMillis: 30000 };

function check(what, got, want) {
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  if (g !== w) throw new Error(`${what}: got ${g}, want ${w}`);
}

const counts = { queries: 0, clientsOk: 0 };

async function worker(c) {
  const client = new pg.Client(config);
  await client.connect();
  try {
    for (let n = 0; n < Number(rounds); n++) {
      let r = await client.query({ name: 'add', text: 'select $1::int4 + $2::int4 as s, $3::text as t', values: [c, n, `c${c}`] });
      check('add', r.rows, [{ s: c + n, t: `c${c}` }]);
      r = await client.query({ name: 'series', text: 'select g from generate_series(1, $1::int4) g', values: [(n % 4) + 1] });
      check('series', r.rows.map((x) => x.g), Array.from({ length: (n % 4) + 1 }, (_, i) => i + 1));
      r = await client.query({ name: `own_${c % 3}`, text: `select $1::int4 * ${(c % 3) + 2} as m`, values: [n] });
      check('own', r.rows, [{ m: n * ((c % 3) + 2) }]);
      counts.queries += 3;
    }
    await client.query('BEGIN');
    for (let k = 0; k < 5; k++) {
      await client.query({ name: 'ins', text: 'insert into node_items (client, k) values ($1, $2)', values: [c, k] });
    }
    const r = await client.query({ name: 'count', text: 'select count(*)::int4 as n from node_items where client = $1', values: [c] });
    check('count inside transaction', r.rows, [{ n: 5 }]);
    await client.query('COMMIT');
    counts.queries += 6;
    let failed = false;
    try {
      await client.query({ name: 'div', text: 'select 10 / $1::int4 as q', values: [0] });
    } catch (e) {
      failed = e.code === '22012';
      if (!failed) throw e;
    }
    if (!failed) throw new Error('division by zero did not fail');
    const q = await client.query({ name: 'div', text: 'select 10 / $1::int4 as q', values: [5] });
    check('after error', q.rows, [{ q: 2 }]);
    counts.clientsOk += 1;
  } finally {
    await client.end();
  }
}

async function main() {
  const setup = new pg.Client(config);
  await setup.connect();
  await setup.query('drop table if exists node_items');
  await setup.query('create table node_items (client int, k int)');
  await setup.end();
  const results = await Promise.allSettled(Array.from({ length: Number(clients) }, (_, c) => worker(c)));
  const errors = results.map((r, c) => (r.status === 'rejected' ? `client ${c}: ${r.reason}` : null)).filter(Boolean);
  const version = `node-postgres ${require('pg/package.json').version}`;
  if (errors.length > 0) {
    console.log(errors.join('\n'));
    console.log(`FAILED ${version}: ${errors.length} of ${clients} clients failed`);
    process.exit(1);
  }
  console.log(`OK ${version}: ${counts.clientsOk} clients, ${counts.queries} checked queries`);
}

main().catch((e) => {
  console.log(`FAILED: ${e.stack || e}`);
  process.exit(1);
});
