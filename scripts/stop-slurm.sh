#!/usr/bin/env bash
# Stop the test cluster that scripts/start-slurm.sh started and remove what it created on the
# host: slurmd/slurmctld/slurmdbd, every process left in the node namespaces (job steps), the
# node namespaces, the bridge and veth links, and the nodes' /etc/hosts lines. Configuration,
# state (jobs, accounting database) and logs stay, so a later start-slurm.sh resumes; pass
# --purge to remove them too (and this cluster's database). MariaDB is stopped once no slurmdbd
# is left on the machine (a second cluster started with other FB_SLURM_* values may share it);
# munged is left running (other SLURM installations use it). Idempotent: stopping a stopped
# cluster is a no-op. Takes the same variables as start-slurm.sh.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/slurm-vars.sh"
purge=0
[ "${1:-}" = --purge ] && purge=1

stop_pid() {
  local f=$1 pid
  pid_alive "$f" || { rm -f "$f"; return 0; }
  pid=$(cat "$f")
  log "stopping $(basename "$f" .pid) ($pid)"
  kill "$pid" 2>/dev/null || true
  wait_for "$(basename "$f" .pid) to stop" 30 bash -c "! kill -0 $pid 2>/dev/null" || kill -9 "$pid" 2>/dev/null || true
  rm -f "$f"
}
# Jobs of this cluster end first (their processes go with the nodes anyway), so that a later
# start does not find them RUNNING in slurmctld's saved state.
if pid_alive "$SLURM_RUNDIR/slurmctld.pid"; then
  jobs=$(squeue -h -o %A 2>/dev/null | sort -u || true)
  if [ -n "$jobs" ]; then
    log "cancelling $(echo "$jobs" | wc -w) job(s)"
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null || true
    wait_for "jobs to leave the nodes" 20 bash -c '[ -z "$(squeue -h -t R,CG -o %A)" ]' || true
  fi
fi
for f in "$SLURM_RUNDIR"/slurmd-*.pid; do [ -e "$f" ] && stop_pid "$f"; done
stop_pid "$SLURM_RUNDIR/slurmctld.pid"
stop_pid "$SLURM_RUNDIR/slurmdbd.pid"

for i in $(seq 1 "$NODES"); do
  ns=$(node_name "$i")
  if [ -e "/run/netns/$ns" ]; then
    # Job steps still running on the node (slurmstepd and their children) end with it.
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    if [ -n "$pids" ]; then
      log "killing $(echo "$pids" | wc -w) process(es) left on $ns"
      # shellcheck disable=SC2086
      kill -9 $pids 2>/dev/null || true
    fi
    ip netns del "$ns"
  fi
  # Deleting the namespace deletes its veth end, and with it the host end.
  ip link del "$(node_veth "$i")" 2>/dev/null || true
done
ip link del "$BRIDGE" 2>/dev/null || true

hosts_mark="# factorybench test cluster ${FB_SLURM_TAG:-default}"
if grep -qF "$hosts_mark" /etc/hosts; then
  hosts_new=$(grep -vF "$hosts_mark" /etc/hosts || true)
  printf '%s\n' "$hosts_new" > /etc/hosts
fi

if [ $purge -eq 1 ]; then
  log "purging configuration, state, logs and database $DB_NAME"
  if mariadb -uroot -e 'SELECT 1' >/dev/null 2>&1; then
    mariadb -uroot -e "DROP DATABASE IF EXISTS \`$DB_NAME\`"
  fi
  rm -rf "$SLURM_ETC" "$CTLD_STATE" "$SLURMD_SPOOL" "$SLURM_LOGDIR" "$SLURM_RUNDIR"
  rm -f "$FB_TEST_STATE/slurm.env"
fi
if ! pgrep -x slurmdbd >/dev/null && [ -s /run/mysqld/mysqld.pid ]; then
  stop_pid /run/mysqld/mysqld.pid
fi
log "slurm cluster stopped"
