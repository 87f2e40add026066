#!/usr/bin/env bash
# A FUSE network filesystem served by a test node over its own address: sshd in the network
# namespace of the first SLURM node (scripts/start-slurm.sh) exports $FB_TEST_STATE/sshfs/export,
# mounted with sshfs at $FB_TEST_STATE/sshfs/mnt. Every node (network namespaces of one host)
# and the login side see that one mount, as compute nodes see a site's NFS or Lustre. Rerunning
# it while the mount is up is a no-op; it writes $FB_TEST_STATE/sshfs.env.
. "$(dirname "$0")/lib.sh"
wait_for "slurm.env (start-slurm.sh)" 600 test -e "$FB_TEST_STATE/slurm.env"
# shellcheck source=/dev/null
. "$FB_TEST_STATE/slurm.env"
ns="${FB_TEST_SLURM_NODES%%,*}"
addr="${FB_TEST_SLURM_NODE_ADDRS%%,*}"
d="$FB_TEST_STATE/sshfs"
# A mount left by an sshfs whose server went away (the node namespaces were recreated) answers
# "Transport endpoint is not connected" to everything: lazily unmount it and mount afresh.
if ! stat "$d/mnt" >/dev/null 2>&1; then
  fusermount -uz "$d/mnt" 2>/dev/null || umount -l "$d/mnt" 2>/dev/null || true
fi
mkdir -p "$d/export" "$d/mnt" /run/sshd
if ! mountpoint -q "$d/mnt"; then
  [ -e "$d/hostkey" ] || ssh-keygen -q -t ed25519 -N '' -f "$d/hostkey"
  [ -e "$d/userkey" ] || ssh-keygen -q -t ed25519 -N '' -f "$d/userkey"
  cp "$d/userkey.pub" "$d/authorized_keys"
  chmod 600 "$d/authorized_keys"
  cat > "$d/sshd_config" <<CONF
Port 2222
ListenAddress $addr
HostKey $d/hostkey
AuthorizedKeysFile $d/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
StrictModes no
PidFile $d/sshd.pid
Subsystem sftp internal-sftp
CONF
  if ! { [ -e "$d/sshd.pid" ] && kill -0 "$(cat "$d/sshd.pid")" 2>/dev/null; }; then
    nsenter --net="/run/netns/$ns" /usr/sbin/sshd -f "$d/sshd_config"
  fi
  wait_for "sshd on $addr:2222" 30 bash -c "(: </dev/tcp/$addr/2222) 2>/dev/null"
  sshfs -p 2222 -o "IdentityFile=$d/userkey,StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,allow_other" \
    "root@$addr:$d/export" "$d/mnt"
fi
stat -f -c %T "$d/mnt"
write_env sshfs "FB_TEST_SSHFS_DIR=$d/mnt" "FB_TEST_SSHFS_SERVER=$ns:$addr"
