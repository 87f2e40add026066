# shellcheck shell=bash disable=SC2034
# Names, paths, ports and addresses of the multi-node test cluster, shared by
# scripts/start-slurm.sh and scripts/stop-slurm.sh (source it after lib.sh).
#
# Defaults are THE test cluster at the standard locations (/etc/slurm, ports 6817-6819). Every
# value can be overridden so that a second cluster runs beside it without touching it, e.g.
#   FB_SLURM_TAG=fb FB_SLURM_PORT_BASE=6917 FB_SLURM_NET=10.250.1 FB_SLURM_NODE_PREFIX=fbx \
#   FB_TEST_STATE=/tmp/fb-cluster-test scripts/start-slurm.sh
# (then point clients at it with SLURM_CONF=/etc/slurm-fb/slurm.conf).

# Tag appended to directories, the database and the bridge ("" = standard locations).
FB_SLURM_TAG=${FB_SLURM_TAG:-}
sfx=${FB_SLURM_TAG:+-$FB_SLURM_TAG}
SLURM_ETC=/etc/slurm$sfx
export SLURM_CONF=$SLURM_ETC/slurm.conf
PORT_BASE=${FB_SLURM_PORT_BASE:-6817}
CTLD_PORT=$PORT_BASE
SLURMD_PORT=$((PORT_BASE + 1))
DBD_PORT=$((PORT_BASE + 2))
CTLD_STATE=/var/spool/slurmctld$sfx
SLURMD_SPOOL=/var/spool/slurmd$sfx
SLURM_LOGDIR=/var/log/slurm$sfx
SLURM_RUNDIR=/run/slurm$sfx
DB_NAME=slurm_acct_db${FB_SLURM_TAG:+_$FB_SLURM_TAG}
CLUSTER=factorybench

# Compute nodes: NODE_PREFIX1..N, each in its own network namespace (same name) and UTS namespace
# (hostname = node name), with address NET.(10+i) on a bridge whose host side NET.1 is the
# controller's (slurmctld, slurmdbd) address. The last GPU_NODES nodes carry GRES gpu.
NODES=${FB_SLURM_NODES:-3}
GPU_NODES=${FB_SLURM_GPU_NODES:-1}
GPUS_PER_NODE=${FB_SLURM_GPUS_PER_NODE:-2}
NODE_PREFIX=${FB_SLURM_NODE_PREFIX:-fbn}
NET=${FB_SLURM_NET:-10.250.0}
CTL_ADDR=$NET.1
BRIDGE=${NODE_PREFIX}br$sfx
node_name() { echo "$NODE_PREFIX$1"; }
node_addr() { echo "$NET.$((10 + $1))"; }
node_veth() { echo "${NODE_PREFIX}$1h$sfx"; } # host side of node i's veth pair (<= 15 chars)

CPU_PARTITION=cpu
GPU_PARTITION=gpu
ACCOUNT=fbtest
# An account that exists but root is not associated with: jobs under it are refused.
BAD_ACCOUNT=fbother
QOS_DEFAULT=normal
QOS_SHORT=short
# A QOS that exists but root may not use.
BAD_QOS=fbdenied
# 1: job_submit/lua refuses jobs that name no account (as on sites where -A is mandatory).
REQUIRE_ACCOUNT=${FB_SLURM_REQUIRE_ACCOUNT:-1}

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
