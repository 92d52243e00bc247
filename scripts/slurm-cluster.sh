#!/usr/bin/env bash
# A real, single-node Slurm cluster on loopback for the integration tests and CI
# (snakemake --profile profiles/slurm, i.e. snakemake-executor-plugin-slurm).
#
#   bash scripts/slurm-cluster.sh install   # Debian packages (idempotent; instant when present)
#   bash scripts/slurm-cluster.sh start     # munged, MariaDB, slurmdbd, slurmctld, slurmd
#   bash scripts/slurm-cluster.sh status    # exit 0 when the cluster is up and usable
#   bash scripts/slurm-cluster.sh stop      # cancel jobs, stop every daemon, remove our /etc link
#   bash scripts/slurm-cluster.sh restart   # stop + start
#   bash scripts/slurm-cluster.sh packages  # print the Debian package list
#
# Runs as root (Debian 12: Slurm 22.05, MariaDB 10.11, munge 0.5.15). `start`
# is idempotent: when the cluster under $SLURM_BASE is already up and healthy
# it does nothing (use `restart` to apply new settings); otherwise it stops
# whatever is left, wipes $SLURM_BASE and starts from scratch.
#
# Settings (environment):
#   SLURM_BASE=/tmp/fau-slurm   all state: configs, logs, pid files, spool, MariaDB datadir
#   NODE_CPUS=$(nproc)          CPUs the node advertises (must not exceed the real count)
#   NODE_MEM=min(RAM-1024,8000) MB the node advertises (must not exceed the real memory,
#                               or slurmd registers the node as invalid)
#   FAKE_GPUS=1                 N>0: advertise N fake GPUs (gres gpu:fake:N backed by dummy
#                               char devices) so `gpu: 1`, `gpu_model`, `gres: gpu:1` requests
#                               are accepted and CUDA_VISIBLE_DEVICES is set in jobs; 0: none
#   JOB_USER=${SUDO_USER:-root} user that submits (gets the Slurm account 'fau'; root always does)
#   DB_PORT=16819               MariaDB TCP port on 127.0.0.1 (not 3306: avoids a system MariaDB)
#   CTLD_PORT=6817 SLURMD_PORT=6818 DBD_PORT=6819
#   START_TIMEOUT=90            seconds to wait for each daemon
#
# Facts this script relies on (each cost hours to find):
#   * The slurm plugin polls job status with `sacct` whenever the binary exists;
#     without slurmdbd sacct fails and Snakemake waits forever, silently. Hence
#     slurmdbd + MariaDB, and `start` only returns once sacct answers.
#   * The jobstep plugin strips SLURM_* (SLURM_CONF included) before calling srun
#     inside a job, so slurm.conf must be reachable at /etc/slurm/slurm.conf: we
#     symlink it there (and refuse to replace a file that is not our link).
#   * munged refuses a socket directory that is not world-executable (755).
#   * sacct/sacctmgr talking to slurmdbd ignore AuthInfo and use the default munge
#     socket unless AccountingStoragePass names our socket.
#   * slurmd drops GPUs without a device file ("Removing file-less GPU"): each fake
#     GPU gets its own /dev/null-like char device.
set -euo pipefail

ACTION=${1:-}
B=${SLURM_BASE:-/tmp/fau-slurm}
B=${B%/}
JOB_USER=${JOB_USER:-${SUDO_USER:-root}}
FAKE_GPUS=${FAKE_GPUS:-1}
DB_PORT=${DB_PORT:-16819}
CTLD_PORT=${CTLD_PORT:-6817}
SLURMD_PORT=${SLURMD_PORT:-6818}
DBD_PORT=${DBD_PORT:-6819}
START_TIMEOUT=${START_TIMEOUT:-90}
CLUSTER=fau
ACCOUNT=fau
DBPASS=fau-slurm-ci        # loopback-only throwaway database
ETC_LINK=/etc/slurm/slurm.conf
PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)
DAEMONS_STOP_ORDER=(slurmd slurmctld slurmdbd mysqld munged)

export SLURM_CONF=$B/etc/slurm.conf

log() { printf '[slurm-cluster %3ds] %s\n' "$SECONDS" "$*" >&2; }
die() {
  log "ERROR: $*"
  if [ "${SHOW_LOGS:-0}" = 1 ] && [ -d "$B/log" ]; then   # set once start has begun
    for f in "$B"/log/*.log; do
      [ -s "$f" ] && [ "${f##*/}" != mariadb-install.log ] || continue
      log "---- last lines of $f ----"
      tail -n 12 "$f" >&2 || true
    done
    log "all logs: $B/log/"
  fi
  exit 1
}

need_root() { [ "$(id -u)" = 0 ] || die "must run as root (try: sudo bash $0 $ACTION)"; }

default_node_cpus() { nproc; }
default_node_mem() {  # MB: min(real - 1024, 8000), at least 500
  local real
  real=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 ))
  local m=$(( real - 1024 )); [ $m -gt 8000 ] && m=8000; [ $m -lt 500 ] && m=500
  echo $m
}
NODE_CPUS=${NODE_CPUS:-$(default_node_cpus)}
NODE_MEM=${NODE_MEM:-$(default_node_mem)}

# wait_for <seconds> <description> <command...>: retry until the command succeeds
wait_for() {
  local limit=$1 what=$2; shift 2
  local end=$((SECONDS + limit))
  while [ $SECONDS -lt $end ]; do
    if declare -F "$1" >/dev/null; then      # our check functions time out on their own
      "$@" >/dev/null 2>&1 && return 0
    else
      timeout 10 "$@" >/dev/null 2>&1 && return 0
    fi
    sleep 0.25
  done
  local extra=""
  case "$what" in node*)   # say why the node is not usable (e.g. more CPUs/memory than real)
    extra=" (node: $(timeout 5 sinfo -h -n localhost -o '%T, reason: %E' 2>/dev/null || echo '?'))" ;;
  esac
  die "timed out after ${limit}s waiting for $what$extra"
}

# ---------------------------------------------------------------- install
missing_packages() {
  local p st
  for p in "${PACKAGES[@]}"; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$st" = "install ok installed" ] || echo "$p"
  done
}

install_pkgs() {
  need_root
  local missing
  missing=$(missing_packages)
  if [ -z "$missing" ]; then
    log "all packages present: ${PACKAGES[*]}"
    return 0
  fi
  log "installing: $(echo $missing)"
  export DEBIAN_FRONTEND=noninteractive
  # Keep the packages' maintainer scripts from starting system-wide daemons
  # (munge, mariadb, slurm*) during the install: we run our own instances.
  # (Docker images often ship such a policy-rc.d already; then it is left alone.)
  local policy=/usr/sbin/policy-rc.d ours=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; ours=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  # update the package lists only when they are missing or older than a day
  if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
    apt-get update -q || die "apt-get update failed"
  fi
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends $missing \
    || { apt-get update -q && apt-get install -y -q --no-install-recommends $missing; } \
    || die "apt-get install failed"
  if [ $ours = 1 ]; then rm -f "$policy"; trap - EXIT; fi
  missing=$(missing_packages)
  [ -z "$missing" ] || die "still missing after install: $missing"
  log "installed; slurm $(slurmctld -V 2>/dev/null | awk '{print $2}')"
}

# ---------------------------------------------------------------- helpers
pidfile() { echo "$B/run/$1.pid"; }

# alive <pid>: the process exists and is not a zombie (an exited daemon stays a
# zombie until PID 1 reaps it, which in containers can take seconds)
alive() {
  local st
  st=$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# running <daemon>: pid file exists and names a live process of that program
running() {
  local f pid comm
  f=$(pidfile "$1"); [ -s "$f" ] || return 1
  pid=$(tr -dc '0-9' < "$f"); [ -n "$pid" ] || return 1
  alive "$pid" || return 1
  comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
  case "$1:$comm" in
    mysqld:mariadbd|mysqld:mysqld|"$1:$1") return 0 ;;
    *) return 1 ;;
  esac
}

stop_daemon() {  # stop_daemon <name>: TERM, wait up to 15 s, then KILL
  local name=$1 f pid
  f=$(pidfile "$name")
  if running "$name"; then
    pid=$(tr -dc '0-9' < "$f")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then
      log "$name ($pid) ignored SIGTERM, killing"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
    fi
    log "stopped $name ($pid)"
  fi
  rm -f "$f"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ctld_ok() { timeout 10 scontrol ping 2>/dev/null | grep -q 'UP'; }
node_idle() { timeout 10 sinfo -h -n localhost -o %T 2>/dev/null | grep -Eqx 'idle|mixed|allocated'; }
sacct_ok() { timeout 10 sacct -n -X -S now-1hours -o JobID >/dev/null 2>&1; }

healthy() {
  local d
  for d in munged mysqld slurmdbd slurmctld slurmd; do running "$d" || return 1; done
  [ "$(readlink "$ETC_LINK" 2>/dev/null)" = "$B/etc/slurm.conf" ] || return 1
  ctld_ok && node_idle && sacct_ok
}

# ---------------------------------------------------------------- stop
stop() {
  need_root
  local d any=0
  for d in "${DAEMONS_STOP_ORDER[@]}"; do running "$d" && any=1; done
  # Cancel jobs first, so no slurmstepd or job process outlives slurmd.
  if running slurmctld && [ -e "$SLURM_CONF" ]; then
    local jobs
    jobs=$(timeout 10 squeue -h -o %A 2>/dev/null || true)
    if [ -n "$jobs" ]; then
      log "cancelling jobs: $(echo $jobs)"
      # shellcheck disable=SC2086
      timeout 10 scancel $jobs 2>/dev/null || true
      for _ in $(seq 1 40); do
        [ -z "$(timeout 5 squeue -h -o %A 2>/dev/null)" ] && break; sleep 0.25
      done
    fi
  fi
  for d in "${DAEMONS_STOP_ORDER[@]}"; do stop_daemon "$d"; done
  if [ "$(readlink "$ETC_LINK" 2>/dev/null)" = "$B/etc/slurm.conf" ]; then
    rm -f "$ETC_LINK"
    log "removed $ETC_LINK (our symlink)"
  fi
  [ $any = 1 ] && log "cluster stopped (state kept in $B until the next start)" \
               || log "cluster was not running"
}

# ---------------------------------------------------------------- start
preflight() {
  need_root
  case "$B" in
    /|/etc|/etc/*|/usr|/usr/*|/var|/home|/root|/bin*|/sbin*|/lib*|/boot*|/proc*|/sys*|/dev*)
      die "refusing SLURM_BASE=$B" ;;
    /*) ;;
    *) die "SLURM_BASE must be an absolute path (got '$B')" ;;
  esac
  local missing
  missing=$(missing_packages)
  [ -z "$missing" ] || die "missing packages: $(echo $missing) (run: bash $0 install)"
  [[ "$NODE_CPUS" =~ ^[1-9][0-9]*$ ]] || die "NODE_CPUS must be a positive integer (got '$NODE_CPUS')"
  [ "$NODE_CPUS" -le "$(nproc --all)" ] || die "NODE_CPUS=$NODE_CPUS exceeds the real CPU count ($(nproc --all))"
  [[ "$NODE_MEM" =~ ^[1-9][0-9]*$ ]] || die "NODE_MEM must be a positive integer in MB (got '$NODE_MEM')"
  [[ "$FAKE_GPUS" =~ ^[0-9]+$ ]] || die "FAKE_GPUS must be a non-negative integer (got '$FAKE_GPUS')"
  local real_mem; real_mem=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 ))
  [ "$NODE_MEM" -le "$real_mem" ] || die "NODE_MEM=$NODE_MEM exceeds the real memory ($real_mem MB)"
  id "$JOB_USER" >/dev/null 2>&1 || die "JOB_USER=$JOB_USER does not exist"
  if [ -e "$ETC_LINK" ] || [ -L "$ETC_LINK" ]; then
    local target; target=$(readlink "$ETC_LINK" 2>/dev/null || true)
    [ "$target" = "$B/etc/slurm.conf" ] || die "$ETC_LINK exists and is not our symlink (-> ${target:-a regular file}); move it away first"
  fi
  return 0
}

check_ports() {  # after our own daemons are stopped: nobody else may hold our ports
  local p
  for p in "$DB_PORT" "$CTLD_PORT" "$SLURMD_PORT" "$DBD_PORT"; do
    port_busy "$p" && die "port $p on 127.0.0.1 is in use by another program (stop it or set DB_PORT/CTLD_PORT/SLURMD_PORT/DBD_PORT)"
  done
  return 0
}

write_configs() {
  cat > "$B/etc/slurm.conf" <<EOF
# Generated by scripts/slurm-cluster.sh: single-node test cluster on loopback.
ClusterName=$CLUSTER
SlurmctldHost=localhost
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$B/munge/munge.socket
StateSaveLocation=$B/spool/ctld
SlurmdSpoolDir=$B/spool/d
SlurmctldPidFile=$B/run/slurmctld.pid
SlurmdPidFile=$B/run/slurmd.pid
SlurmctldLogFile=$B/log/slurmctld.log
SlurmdLogFile=$B/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
# keep finished jobs visible to squeue for a while (plugin status fallback)
MinJobAge=300
DefMemPerCPU=500
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
# clients talking to slurmdbd ignore AuthInfo and use the default munge socket
# unless AccountingStoragePass names the socket:
AccountingStoragePass=$B/munge/munge.socket
# store sbatch --comment (the slurm plugin puts rule_<name> there): sacct -o Comment
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
MailProg=/bin/true
EOF
  local gres=""
  if [ "$FAKE_GPUS" -gt 0 ]; then
    gres=" Gres=gpu:fake:$FAKE_GPUS"
    # GresTypes: GPUs exist; AccountingStorageTRES: sacct -o AllocTRES shows gres/gpu=N
    printf 'GresTypes=gpu\nAccountingStorageTRES=gres/gpu\n' >> "$B/etc/slurm.conf"
    mkdir -p "$B/fakedev"
    local i
    for i in $(seq 0 $((FAKE_GPUS - 1))); do mknod -m 666 "$B/fakedev/gpu$i" c 1 3; done
    echo "NodeName=localhost Name=gpu Type=fake File=$B/fakedev/gpu[0-$((FAKE_GPUS - 1))]" > "$B/etc/gres.conf"
    chmod 644 "$B/etc/gres.conf"
  fi
  cat >> "$B/etc/slurm.conf" <<EOF
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$NODE_CPUS RealMemory=$NODE_MEM$gres State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  chmod 644 "$B/etc/slurm.conf"

  cat > "$B/etc/slurmdbd.conf" <<EOF
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$B/munge/munge.socket
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DBPASS
StorageLoc=slurm_acct_db
LogFile=$B/log/slurmdbd.log
PidFile=$B/run/slurmdbd.pid
EOF
  chmod 600 "$B/etc/slurmdbd.conf"
}

start() {
  preflight
  if healthy; then
    log "already running and healthy (SLURM_BASE=$B); use 'restart' to apply new settings"
    status_summary
    return 0
  fi
  local t0=$SECONDS
  stop >/dev/null 2>&1 || true
  check_ports
  rm -rf "$B"
  SHOW_LOGS=1
  mkdir -p "$B"/{etc,munge,log,run,spool/ctld,spool/d,mysql}
  chmod 755 "$B" "$B"/etc "$B"/munge "$B"/run "$B"/log   # munged wants o+x on its socket dir
  # on any failure (die or set -e): stop what was started, keep the logs
  START_OK=0
  trap '[ "$START_OK" = 1 ] || { log "start failed; stopping what was started (logs stay in $B/log/)"; stop >/dev/null 2>&1 || true; }' EXIT

  # --- munge: own key and socket; Slurm finds it through AuthInfo ---
  mungekey -c -k "$B/munge/munge.key" >/dev/null 2>&1 \
    || dd if=/dev/urandom of="$B/munge/munge.key" bs=1024 count=1 status=none
  chmod 600 "$B/munge/munge.key"
  munged --key-file="$B/munge/munge.key" --socket="$B/munge/munge.socket" \
         --pid-file="$B/run/munged.pid" --seed-file="$B/munge/munged.seed" \
         --log-file="$B/log/munged.log" || die "munged failed to start"
  wait_for "$START_TIMEOUT" munged munge -S "$B/munge/munge.socket" -n
  log "munged up"

  write_configs
  mkdir -p /etc/slurm
  ln -sfn "$B/etc/slurm.conf" "$ETC_LINK"

  # --- MariaDB: private datadir, TCP on 127.0.0.1:$DB_PORT only ---
  mariadb-install-db --no-defaults --datadir="$B/mysql" --user=root --skip-test-db \
    --auth-root-authentication-method=socket > "$B/log/mariadb-install.log" 2>&1 \
    || die "mariadb-install-db failed (see $B/log/mariadb-install.log)"
  # setsid: detach from our session, so a caller's process group cannot take it down
  setsid mariadbd --no-defaults --user=root --datadir="$B/mysql" \
    --socket="$B/run/mysqld.sock" --pid-file="$B/run/mysqld.pid" \
    --bind-address=127.0.0.1 --port="$DB_PORT" --skip-name-resolve \
    --innodb-buffer-pool-size=64M --innodb-log-file-size=16M --innodb-lock-wait-timeout=900 \
    --log-error="$B/log/mariadb.log" </dev/null >/dev/null 2>&1 &
  wait_for "$START_TIMEOUT" MariaDB mariadb-admin --socket="$B/run/mysqld.sock" ping
  log "MariaDB up"
  mariadb --socket="$B/run/mysqld.sock" -e "
    CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DBPASS';
    CREATE USER 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';" \
    || die "could not create the slurm database user"

  # --- slurmdbd (reads slurmdbd.conf next to \$SLURM_CONF) ---
  slurmdbd || die "slurmdbd failed to start"
  wait_for "$START_TIMEOUT" slurmdbd sacctmgr -n list cluster
  log "slurmdbd up"
  sacctmgr -i add cluster "$CLUSTER" >/dev/null
  sacctmgr -i add account "$ACCOUNT" Description=fau-pipeline Organization=fau >/dev/null
  sacctmgr -i add user root DefaultAccount="$ACCOUNT" >/dev/null
  [ "$JOB_USER" = root ] || sacctmgr -i add user "$JOB_USER" DefaultAccount="$ACCOUNT" >/dev/null

  # --- controller + compute daemon ---
  slurmctld || die "slurmctld failed to start"
  wait_for "$START_TIMEOUT" slurmctld ctld_ok
  log "slurmctld up"
  slurmd -N localhost || die "slurmd failed to start"   # node name 'localhost' whatever the hostname
  wait_for "$START_TIMEOUT" "node 'localhost' to become idle" node_idle
  log "node up"
  wait_for "$START_TIMEOUT" "sacct to answer (slurmdbd accounting)" sacct_ok
  START_OK=1
  log "cluster up in $((SECONDS - t0)) s: ${NODE_CPUS} CPUs, ${NODE_MEM} MB, ${FAKE_GPUS} fake GPU(s), partition 'debug'"
  status_summary
}

status_summary() {
  sinfo -N -o '%N %P %T %c %m %G' 2>/dev/null || true
  log "config: $ETC_LINK -> $SLURM_CONF; logs: $B/log/"
}

status() {
  local d rc=0
  for d in munged mysqld slurmdbd slurmctld slurmd; do
    if running "$d"; then
      echo "$d: running (pid $(tr -dc '0-9' < "$(pidfile "$d")"))"
    else
      echo "$d: not running"; rc=3
    fi
  done
  if [ $rc = 0 ]; then
    if ctld_ok && node_idle && sacct_ok; then
      sinfo -N -o '%N %P %T %c %m %G'
      echo "cluster: usable (sbatch/squeue/sacct); config $SLURM_CONF; logs $B/log/"
    else
      echo "cluster: daemons up but not usable yet (node state: $(sinfo -h -n localhost -o %T 2>/dev/null || echo '?')); logs $B/log/"
      rc=3
    fi
  else
    echo "cluster: not running (SLURM_BASE=$B)"
  fi
  return $rc
}

case "$ACTION" in
  install) install_pkgs ;;
  start)   start ;;
  stop)    stop ;;
  restart) stop; start ;;
  status)  status ;;
  packages) echo "${PACKAGES[*]}" ;;   # for scripts/ci-system-deps.sh
  *) echo "usage: $0 install|start|stop|restart|status|packages   (settings: see the header of $0)" >&2; exit 2 ;;
esac
