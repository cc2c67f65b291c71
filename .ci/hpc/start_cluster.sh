#!/usr/bin/env bash
# Start a one-node Slurm cluster inside the HPC test container (run as root there, by
# .ci/hpc_smoke.sh): munge -> MariaDB -> slurmdbd (accounting, so sacct works) -> slurmctld + slurmd.
# The node describes itself (slurmd -C), so it has this machine's CPUs and memory.
set -euo pipefail
log() { echo "[hpc] cluster: $*"; }
fail() { echo "[hpc] cluster: ERROR: $*" >&2; tail -n 20 "${2:-/dev/null}" >&2 || true; exit 1; }
wait_for() {  # wait_for SECONDS LOG COMMAND...: poll until COMMAND succeeds
  local limit=$1 logfile=$2; shift 2
  for _ in $(seq "$limit"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  fail "timed out waiting for: $*" "$logfile"
}
host=$(hostname)
mkdir -p /var/log/slurm /var/spool/slurmctld /var/spool/slurmd /run/munge /run/mysqld
chown slurm: /var/log/slurm /var/spool/slurmctld
chown munge: /run/munge
chown mysql: /run/mysqld

# munge: a fresh key per cluster
rm -f /etc/munge/munge.key
mungekey --create --keyfile=/etc/munge/munge.key
chown munge: /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
runuser -u munge -- munged
wait_for 10 /var/log/munge/munged.log sh -c 'munge -n | unmunge'

# MariaDB for slurmdbd (the Debian package initialised the data folder at install time), with the
# InnoDB settings slurmdbd asks for. The database is made here: when slurmdbd makes it itself, its
# first query fails (client error 5027) and it stops.
runuser -u mysql -- mariadbd --datadir=/var/lib/mysql --socket=/run/mysqld/mysqld.sock \
  --skip-networking --innodb-snapshot-isolation=OFF --innodb-lock-wait-timeout=900 \
  >/var/log/slurm/mariadb.log 2>&1 &
wait_for 60 /var/log/slurm/mariadb.log mariadb -e 'SELECT 1'
mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db; CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm-ci';
            GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"

# linuxproc process tracking and no task plugin: nothing here needs cgroups
cat >/etc/slurm/slurm.conf <<CONF
ClusterName=ci
SlurmctldHost=$host
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
MpiDefault=none
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
$(slurmd -C | head -n 1) State=UNKNOWN
PartitionName=ci Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
cat >/etc/slurm/slurmdbd.conf <<CONF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurm-ci
StorageLoc=slurm_acct_db
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurmdbd.pid
CONF
chown slurm: /etc/slurm/slurmdbd.conf && chmod 0600 /etc/slurm/slurmdbd.conf
slurmdbd
wait_for 60 /var/log/slurm/slurmdbd.log sacctmgr -n list cluster

sacctmgr -i add cluster ci >/dev/null
slurmctld
wait_for 60 /var/log/slurm/slurmctld.log scontrol ping
slurmd
wait_for 60 /var/log/slurm/slurmd.log sh -c "sinfo -h -N -o '%t' | grep -qx idle"
log "up: $(sinfo -h -N -o '%N %c CPUs %m MB %t')"
