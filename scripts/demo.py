"""Drive the demo: a throwaway PostgreSQL with sample data, the demo playbook, the host command."""
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))

from pgcluster import make_scratch_dir, new_cluster  # noqa: E402

SAMPLE = """
CREATE TABLE strategies (id serial PRIMARY KEY, name text NOT NULL, params jsonb);
INSERT INTO strategies (name, params)
  SELECT 'strategy ' || g, jsonb_build_object('window', g % 50, 'threshold', round(random()::numeric, 3))
  FROM generate_series(1, 200) g;
CREATE TABLE market_data (id bigserial PRIMARY KEY, symbol text, ts timestamptz, price numeric(12,4), volume int);
INSERT INTO market_data (symbol, ts, price, volume)
  SELECT (ARRAY['BTC','ETH','SOL','ADA'])[1 + g % 4], now() - g * interval '1 minute',
         round((100 + random() * 900)::numeric, 4), (random() * 1000)::int
  FROM generate_series(1, 50000) g;
CREATE TABLE backtest_results (id serial PRIMARY KEY, strategy_id int REFERENCES strategies(id), pnl numeric);
INSERT INTO backtest_results (strategy_id, pnl) SELECT 1 + g % 200, random() * 100 - 50 FROM generate_series(1, 5000) g;
"""


def step(title):
    print("\n==> %s" % title, flush=True)


def main():
    step("starting a throwaway PostgreSQL 15 with sample data")
    cluster = new_cluster()
    backup_dir = make_scratch_dir("pgsafe-demo-backups-")
    try:
        cluster.create_database("mastertrade")
        cluster.psql(SAMPLE, "mastertrade")
        print("cluster on port %d, socket %s, backups in %s" % (cluster.port, cluster.socket_dir, backup_dir))
        env = cluster.env
        env["ANSIBLE_NOCOLOR"] = env.get("ANSIBLE_NOCOLOR", "1")
        step("ansible-playbook playbooks/demo.yml: back up, list + verify, restore into a new database")
        extra = ["-e", "demo_socket_dir=%s" % cluster.socket_dir, "-e", "demo_port=%d" % cluster.port,
                 "-e", "demo_user=%s" % cluster.user, "-e", "demo_database=mastertrade",
                 "-e", "demo_backup_dir=%s" % backup_dir, "-e", "ansible_python_interpreter=%s" % sys.executable]
        subprocess.run(["ansible-playbook", "-i", "localhost,", os.path.join(ROOT, "playbooks", "demo.yml")] + extra,
                       env=env, check=True)
        env["BACKUP_DIR"] = backup_dir
        env["PGSAFE_PYTHON"] = sys.executable
        pgsafe = os.path.join(ROOT, "scripts", "pgsafe")
        step("the host command cron runs: pgsafe backup mastertrade --format plain --compression gzip")
        subprocess.run([pgsafe, "backup", "mastertrade", "--format", "plain", "--compression", "gzip"],
                       env=env, check=True)
        step("pgsafe list")
        subprocess.run([pgsafe, "list"], env=env, check=True)
        step("pgsafe verify")
        subprocess.run([pgsafe, "verify"], env=env, check=True)
        step("pgsafe restore --latest --database mastertrade mastertrade_test")
        subprocess.run([pgsafe, "restore", "--latest", "--database", "mastertrade", "mastertrade_test"],
                       env=env, check=True)
        step("done: every restore above was validated table by table against the backup's row counts")
    finally:
        cluster.destroy()
        shutil.rmtree(backup_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
