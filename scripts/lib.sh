# Shared helpers for the install/start scripts. Source it: `. "$(dirname "$0")/lib.sh"`.
# Conventions:
#   scripts/install-<component>.sh  idempotent install (fast no-op when already installed)
#   scripts/start-<component>.sh    start the server in the background on 127.0.0.1, wait until it
#                                   really answers, then write $FB_TEST_STATE/<component>.env
#                                   (KEY=value lines, e.g. FB_TEST_PG_URL=...) that tests read.
set -euo pipefail
export FB_TEST_STATE="${FB_TEST_STATE:-/tmp/factorybench-test}"
mkdir -p "$FB_TEST_STATE"
export DEBIAN_FRONTEND=noninteractive

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }

# apt_install PKG... : installs missing Debian packages; serialised with a lock, `apt-get update` once.
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  (
    flock 9
    if [ ! -e "$FB_TEST_STATE/.apt-updated" ]; then
      apt-get update -qq && touch "$FB_TEST_STATE/.apt-updated"
    fi
    log "apt-get install ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  ) 9>/tmp/factorybench-apt.lock
}

# wait_for DESCRIPTION TIMEOUT_S COMMAND... : poll COMMAND every 0.5 s until it succeeds.
wait_for() {
  local what=$1 budget=$2; shift 2
  local deadline=$(( $(date +%s) + budget ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then log "timed out after ${budget}s waiting for $what"; return 1; fi
    sleep 0.5
  done
}

# write_env COMPONENT KEY=VALUE... : the file tests read (atomically replaced).
write_env() {
  local comp=$1; shift
  printf '%s\n' "$@" > "$FB_TEST_STATE/$comp.env.tmp"
  mv "$FB_TEST_STATE/$comp.env.tmp" "$FB_TEST_STATE/$comp.env"
}
