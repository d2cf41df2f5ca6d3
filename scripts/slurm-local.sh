#!/usr/bin/env bash
# A single-node SLURM cluster with accounting (slurmdbd + MariaDB), everything on 127.0.0.1.
# Usage: scripts/slurm-local.sh install|start|stop|status
# State (configs, databases, logs, pid files) lives under ${SLURM_LOCAL_DIR:-/tmp/slurm-local}.
# Run as root (Debian 12, slurm-wlm 22.05). Stop uses pid files only, never process names.
set -euo pipefail

DIR="${SLURM_LOCAL_DIR:-/tmp/slurm-local}"
CLUSTER="${SLURM_LOCAL_CLUSTER:-local}"
HOST="$(hostname -s)"
CONF_DIR=/etc/slurm
DB_SOCK="$DIR/run/mysqld.sock"
DB_PASS_FILE="$DIR/db.pass"

log() { echo "slurm-local: $*" >&2; }
die() { log "error: $*"; exit 1; }

need_root() { [ "$(id -u)" -eq 0 ] || die "must run as root (it starts system daemons)"; }

cmd_install() {
  need_root
  local missing=()
  command -v slurmctld >/dev/null || missing+=(slurm-wlm)
  command -v slurmdbd >/dev/null || missing+=(slurmdbd)
  command -v mariadbd >/dev/null || missing+=(mariadb-server)
  if [ ${#missing[@]} -eq 0 ]; then log "already installed"; return 0; fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d stops Debian from auto-starting the services with their default configs
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" munge >/dev/null
  rm -f /usr/sbin/policy-rc.d
}

alive() {  # alive PIDFILE: the pid in the file is a running process
  [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  local i
  for ((i = 0; i < limit * 4; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  die "timed out after ${limit}s waiting for $what (logs in $DIR/log)"
}

start_munge() {
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
  fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- munged
    wait_for 10 munged sh -c 'munge -n | unmunge'
  fi
}

db_pass() {
  [ -s "$DB_PASS_FILE" ] || (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$DB_PASS_FILE")
  cat "$DB_PASS_FILE"
}

start_mariadb() {
  local datadir="$DIR/mysql"
  mkdir -p "$DIR/run"; chown mysql:mysql "$DIR/run"
  if [ ! -d "$datadir/mysql" ]; then
    mkdir -p "$datadir"; chown mysql:mysql "$datadir"
    mariadb-install-db --user=mysql --datadir="$datadir" --auth-root-authentication-method=socket \
      >"$DIR/log/mariadb-install.log" 2>&1
  fi
  if ! alive "$DIR/run/mariadb.pid"; then
    runuser -u mysql -- mariadbd --datadir="$datadir" --socket="$DB_SOCK" --bind-address=127.0.0.1 \
      --port=3306 --pid-file="$DIR/run/mariadb.pid" --log-error="$DIR/log/mariadb.log" \
      --innodb-buffer-pool-size=64M --skip-name-resolve >/dev/null 2>&1 &
    wait_for 30 mariadb mariadb --socket="$DB_SOCK" -e 'select 1'
  fi
  local pass; pass="$(db_pass)"
  mariadb --socket="$DB_SOCK" <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL
}

write_configs() {
  mkdir -p "$CONF_DIR" "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/run"
  local cpus mem_mb
  cpus="$(nproc)"
  # RealMemory: 80% of physical memory, in MB; jobs default to DefMemPerCPU so they never ask for it all
  mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) * 8 / 10 / 1024 ))
  local defmem=$(( mem_mb / cpus / 4 ))
  [ "$defmem" -gt 1024 ] && defmem=1024
  cat > "$CONF_DIR/slurm.conf" <<CONF
# written by scripts/slurm-local.sh
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$defmem
ReturnToService=2
MpiDefault=none
SchedulerParameters=defer_batch
SchedulerType=sched/backfill
MinJobAge=300
KillWait=10
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
  # the scheduler config cannot carry a password in world-readable slurm.conf: slurmdbd.conf is 0600
  (umask 077; cat > "$CONF_DIR/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
StorageType=accounting_storage/mysql
# TCP on loopback: 'localhost' would make the client look for the default socket path
StorageHost=127.0.0.1
StoragePort=3306
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=$(db_pass)
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
CONF
)
  chmod 0644 "$CONF_DIR/slurm.conf"
}

node_idle() { sinfo -h -N -o '%t' 2>/dev/null | grep -qx 'idle\|mix\|alloc'; }

is_running() {
  alive "$DIR/run/slurmctld.pid" && alive "$DIR/run/slurmd.pid" && alive "$DIR/run/slurmdbd.pid" \
    && alive "$DIR/run/mariadb.pid"
}

cmd_start() {
  need_root
  command -v slurmctld >/dev/null || die "slurm is not installed: run '$0 install' first"
  mkdir -p "$DIR/log" "$DIR/run"
  if is_running && node_idle; then log "already running (state in $DIR)"; return 0; fi
  start_munge
  start_mariadb
  write_configs
  if ! alive "$DIR/run/slurmdbd.pid"; then
    slurmdbd
    wait_for 30 slurmdbd sh -c "sacctmgr -n list cluster >/dev/null"
  fi
  sacctmgr -i -Q add cluster "$CLUSTER" >/dev/null 2>&1 || true
  sacctmgr -n list cluster format=cluster | grep -qw "$CLUSTER" || die "cluster $CLUSTER not in accounting"
  alive "$DIR/run/slurmctld.pid" || slurmctld
  alive "$DIR/run/slurmd.pid" || slurmd
  wait_for 60 "node idle in sinfo" node_idle
  wait_for 30 "sacct with accounting" sh -c "! sacct -n -X 2>&1 | grep -q 'accounting storage is disabled'"
  log "up: node $HOST ($(nproc) CPUs) idle, accounting on, state in $DIR"
}

stop_pidfile() {  # stop_pidfile NAME FILE
  local name=$1 file=$2 i
  if alive "$file"; then
    local pid; pid="$(cat "$file")"
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 60; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && { log "$name ($pid) did not stop, killing"; kill -9 "$pid" 2>/dev/null || true; }
    log "stopped $name ($pid)"
  fi
  rm -f "$file"
}

cmd_stop() {
  need_root
  stop_pidfile slurmd "$DIR/run/slurmd.pid"
  stop_pidfile slurmctld "$DIR/run/slurmctld.pid"
  stop_pidfile slurmdbd "$DIR/run/slurmdbd.pid"
  stop_pidfile mariadb "$DIR/run/mariadb.pid"
  # munged is left running: it is a system service other tools may use, and its pid file is its own
}

cmd_status() {
  local rc=0 name
  for name in mariadb slurmdbd slurmctld slurmd; do
    if alive "$DIR/run/$name.pid"; then echo "$name: running (pid $(cat "$DIR/run/$name.pid"))"
    else echo "$name: stopped"; rc=1; fi
  done
  if [ $rc -eq 0 ]; then sinfo -N -o '%N %t %c %m' || rc=1; fi
  return $rc
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
