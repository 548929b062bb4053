"""A realistic database of a chosen size for the benchmarks.

Market ticks with numeric columns, jsonb order documents, free-text event logs, with their
indexes, and fifty small reference tables: data that compresses like real data (3-5x),
unlike pgbench's blank filler.  ``grow`` only ever adds rows, so one cluster serves every
size of a run, smallest first.
"""

import time

SCHEMA = """
CREATE TABLE IF NOT EXISTS ticks (
    id bigserial PRIMARY KEY,
    symbol text NOT NULL,
    ts timestamptz NOT NULL,
    price numeric(14,4) NOT NULL,
    bid numeric(14,4) NOT NULL,
    ask numeric(14,4) NOT NULL,
    volume integer NOT NULL,
    venue smallint NOT NULL
);
CREATE INDEX IF NOT EXISTS ticks_symbol_ts ON ticks (symbol, ts);
CREATE TABLE IF NOT EXISTS orders (
    id bigserial PRIMARY KEY,
    customer_id integer NOT NULL,
    placed_at timestamptz NOT NULL,
    status text NOT NULL,
    doc jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_customer ON orders (customer_id, placed_at);
CREATE TABLE IF NOT EXISTS events (
    id bigserial PRIMARY KEY,
    created timestamptz NOT NULL,
    level text NOT NULL,
    message text NOT NULL
);
CREATE INDEX IF NOT EXISTS events_created ON events (created);
"""

SMALL_TABLES = 50

# One batch, about 48 MB on disk with indexes: ~50% ticks, ~30% orders, ~20% events. {ticks}, {orders}
# and {events} are the rows of each (batch_sql scales them).
BATCH_TEMPLATE = """
INSERT INTO ticks (symbol, ts, price, bid, ask, volume, venue)
SELECT 'SYM' || (g * 7919 % 500), now() - (g || ' ms')::interval,
       p, p - 0.01, p + 0.01, (random() * 10000)::int, (random() * 12)::smallint
  FROM (SELECT g, round((10 + random() * 990)::numeric, 4) AS p FROM generate_series(1, {ticks}) g) s;
INSERT INTO orders (customer_id, placed_at, status, doc)
SELECT (random() * 50000)::int, now() - (g || ' s')::interval,
       (ARRAY['new','paid','shipped','returned','cancelled'])[1 + (random() * 4)::int],
       jsonb_build_object('items', jsonb_build_array(
                              jsonb_build_object('sku', 'SKU-' || (random() * 99999)::int,
                                                 'qty', 1 + (random() * 5)::int,
                                                 'price', round((random() * 300)::numeric, 2)),
                              jsonb_build_object('sku', 'SKU-' || (random() * 99999)::int,
                                                 'qty', 1 + (random() * 3)::int,
                                                 'price', round((random() * 80)::numeric, 2))),
                          'shipping', jsonb_build_object('city', (ARRAY['Berlin','Lyon','Porto','Oslo','Riga'])[1 + (random() * 4)::int],
                                                         'zip', lpad(((random() * 99999)::int)::text, 5, '0')),
                          'note', md5(random()::text), 'gift', random() < 0.1)
  FROM generate_series(1, {orders}) g;
INSERT INTO events (created, level, message)
SELECT now() - (g || ' s')::interval,
       (ARRAY['INFO','INFO','INFO','WARN','ERROR'])[1 + (random() * 4)::int],
       'user ' || (random() * 100000)::int || ' ' ||
       (ARRAY['logged in','updated profile','exported report','failed payment','reset password'])[1 + (random() * 4)::int] ||
       ' from ' || ((random() * 255)::int) || '.' || ((random() * 255)::int) || '.' || ((random() * 255)::int) || '.1 session ' ||
       substr(md5(random()::text), 1, 16)
  FROM generate_series(1, {events}) g;
"""

BATCH_MB = 48


def batch_sql(scale=1.0):
    """The batch with its row counts times scale (at most 1: the tick symbols are computed in integer
    arithmetic that a bigger batch overflows): the same mix of rows, fewer of them."""
    rows = {"ticks": 240000, "orders": 50000, "events": 90000}
    return BATCH_TEMPLATE.format(**{table: max(1, int(n * scale)) for table, n in rows.items()})


BATCH = batch_sql()


def create(conn):
    with conn.cursor() as cur:
        cur.execute(SCHEMA)
        for n in range(SMALL_TABLES):
            cur.execute("CREATE TABLE IF NOT EXISTS ref_%02d (code text PRIMARY KEY, label text, weight numeric)" % n)
            cur.execute(
                "INSERT INTO ref_%02d SELECT 'C' || g, 'label ' || md5(g::text), random() "
                "FROM generate_series(1, %d) g ON CONFLICT DO NOTHING" % (n, 50 + 40 * n)
            )


def size_mb(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT pg_database_size(current_database())")
        return cur.fetchone()[0] / 1048576.0


def grow(conn, target_mb, log=print):
    """Add batches until the database is at least target_mb; returns its size in MB."""
    create(conn)
    started = time.monotonic()
    current = size_mb(conn)
    while current < target_mb:
        with conn.cursor() as cur:
            cur.execute(BATCH)
        current = size_mb(conn)
    with conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    log("dataset: %.0f MB (%.0f s to grow)" % (current, time.monotonic() - started))
    return current
