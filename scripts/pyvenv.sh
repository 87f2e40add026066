# pyvenv_install NAME PIP_SPEC... : a Python venv under /opt/factorybench/NAME with the packages
# (idempotent: skipped when the marker for the same spec exists). Sourced after lib.sh.
pyvenv_install() {
  local name=$1; shift
  local venv=/opt/factorybench/$name marker="/opt/factorybench/$name/.installed"
  if [ -e "$marker" ] && [ "$(cat "$marker")" = "$*" ]; then log "$name venv up to date"; return 0; fi
  local py
  py=$(command -v python3.11 || command -v python3 || true)
  if [ -z "$py" ] || ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    apt_install python3 python3-venv python3-pip
    py=/usr/bin/python3
  fi
  mkdir -p /opt/factorybench
  rm -rf "$venv"
  "$py" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check --upgrade pip >/dev/null
  "$venv/bin/pip" install -q --disable-pip-version-check "$@"
  printf '%s' "$*" > "$marker"
}
