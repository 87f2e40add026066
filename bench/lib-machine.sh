# shellcheck shell=bash
# The machine's own figure beside every round (sourced): how much CPU time the hypervisor took
# from this VM while a tool ran ("steal", /proc/stat). A round in which one side lost CPU to
# the host and the other did not compares machines, not tools; the scripts print it per run so
# that a reader can tell a quiet round from a noisy one. It cannot see every kind of noise (a
# neighbour sharing caches or memory bandwidth steals no time), only the one the host reports.

# cpu_mark: "steal total" jiffies of all CPUs now (user..steal; guest is inside user).
cpu_mark() { awk '/^cpu / { t = 0; for (i = 2; i <= 9; i++) t += $i; print $9, t; exit }' /proc/stat; }

# steal_since "MARK": the share of CPU time (%, one decimal) the host took since MARK.
steal_since() {
  cpu_mark | awk -v m="$1" 'BEGIN { split(m, a, " ") }
    { d = $2 - a[2]; printf "%.1f\n", (d > 0 ? 100 * ($1 - a[1]) / d : 0) }'
}
