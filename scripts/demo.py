"""Drive the demo: a throwaway PostgreSQL with sample data, the demo playbook, the host command."""

import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))

from pgcluster import free_port, make_scratch_dir, new_cluster  # noqa: E402

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


def playbook(name, env, extra_vars):
    import json

    argv = ["ansible-playbook", "-i", "localhost,", os.path.join(ROOT, "playbooks", name), "-e", json.dumps(extra_vars)]
    subprocess.run(argv, env=env, check=True)


def main():
    step("starting a throwaway PostgreSQL 15 with sample data")
    cluster = new_cluster()
    work = make_scratch_dir("pgsafe-demo-")
    backup_dir = os.path.join(work, "backups")
    prefix = os.path.join(work, "prefix")
    try:
        cluster.create_database("mastertrade")
        cluster.psql(SAMPLE, "mastertrade")
        print("cluster on port %d, socket %s; backups in %s" % (cluster.port, cluster.socket_dir, backup_dir))
        env = cluster.env
        env["ANSIBLE_NOCOLOR"] = env.get("ANSIBLE_NOCOLOR", "1")
        env["ANSIBLE_DISPLAY_SKIPPED_HOSTS"] = "false"
        pgsafe = os.path.join(prefix, "bin", "pgsafe")
        # The embedded default: this machine over a local connection, the throwaway cluster, and
        # everything installed under a scratch prefix instead of /usr/local and /etc/cron.d.
        site_vars = {
            "pgsafe_hosts": "localhost",
            "ansible_connection": "local",
            "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_become_method": "su",
            "pgsafe_backup_dir": backup_dir,
            "pgsafe_databases": ["mastertrade"],
            "pgsafe_login_host": cluster.socket_dir,
            "pgsafe_login_port": str(cluster.port),
            "pgsafe_login_user": cluster.user,
            "pgsafe_command": pgsafe,
            "backup_schedule_install_prefix": prefix,
            "backup_schedule_install_packages": False,
            "backup_schedule_manage_cron": False,
            "monitoring_manage_cron": False,
            "wal_archiving_restart_method": "pg_ctl",
            "wal_archiving_data_directory": cluster.data_dir,
            "restore_drill_pitr_port": free_port(),
        }
        step(
            "ansible-playbook playbooks/site.yml: host command, archiving (restart only because it is needed), "
            "monitoring"
        )
        playbook("site.yml", env, site_vars)
        step("site.yml again: nothing left to change")
        playbook("site.yml", env, site_vars)

        as_postgres = [
            "runuser",
            "-u",
            cluster.user,
            "--",
            pgsafe,
            "--backup-dir",
            backup_dir,
            "--host",
            cluster.socket_dir,
            "--port",
            str(cluster.port),
        ]
        step("what cron runs at 02:00 and at :05: pgsafe backup mastertrade; pgsafe base-backup")
        subprocess.run(as_postgres + ["backup", "mastertrade"], check=True)
        subprocess.run(as_postgres + ["base-backup"], check=True)
        step("pgsafe list")
        subprocess.run(as_postgres + ["list"], check=True)
        step("pgsafe verify")
        subprocess.run(as_postgres + ["verify"], check=True)
        step("pgsafe health (what cron runs every 15 minutes)")
        subprocess.run(
            as_postgres + ["health", "--min-disk-space-gb", "0", "--max-disk-usage-percent", "100"], check=True
        )
        step("ansible-playbook playbooks/restore.yml -e target_db=mastertrade_restored -e database=mastertrade")
        playbook("restore.yml", env, dict(site_vars, target_db="mastertrade_restored", database="mastertrade"))
        step("ansible-playbook playbooks/drill.yml: logical drill and a PITR drill on a spare port")
        playbook("drill.yml", env, site_vars)
        step("done: every restore above was validated table by table against the backup's row counts")
    finally:
        cluster.destroy()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
