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
