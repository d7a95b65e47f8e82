# Sourced by scripts/test and scripts/demo (not run on its own).

# Run "$@" and print the elapsed time on stderr every 15 s while it runs, so
# a long quiet step (pip resolving and downloading, go building) does not
# look hung. Returns the command's exit status.
with_elapsed() {
  local start=$SECONDS next=15 pid
  "$@" &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if (( SECONDS - start >= next )); then
      echo "    ... still running ($((SECONDS - start))s)" >&2
      next=$((next + 15))
    fi
  done
  wait "$pid"
}

# Whether python3 is "externally managed" (PEP 668, e.g. Debian's own
# Python): pip refuses to install into it, so a virtualenv is needed.
externally_managed() {
  "$1" -c 'import pathlib, sys, sysconfig
marker = pathlib.Path(sysconfig.get_path("stdlib")) / "EXTERNALLY-MANAGED"
sys.exit(0 if sys.prefix == sys.base_prefix and marker.exists() else 1)'
}

# ensure_venv PYTHON DIR: create the virtualenv DIR with PYTHON unless it
# exists. Debian and Ubuntu ship venv's pip bootstrap (ensurepip) in the
# python3-venv package: as root it is installed with apt-get, otherwise the
# command to run is printed and this fails.
ensure_venv() {
  local python=$1 venv=$2
  [ -x "$venv/bin/python" ] && return 0
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "hitlgate needs Python 3.11 or newer; $python is $("$python" -V 2>&1)" >&2
    return 1
  }
  if ! "$python" -c 'import ensurepip' >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "==> installing python3-venv with apt-get (Debian ships venv's pip bootstrap separately)"
      export DEBIAN_FRONTEND=noninteractive
      apt-get install -y --no-install-recommends python3-venv >&2 || {
        apt-get update >&2 && apt-get install -y --no-install-recommends python3-venv >&2
      }
    else
      echo "$python cannot create a virtualenv: its ensurepip module is missing." >&2
      echo "On Debian or Ubuntu: sudo apt-get install python3-venv   then run this again." >&2
      return 1
    fi
  fi
  echo "==> creating the virtualenv $venv ($python -m venv)"
  "$python" -m venv "$venv"
}
