#!/bin/sh
# The gc Job's garbage-collect container (registry image): runs distribution's garbage-collect when the
# coordinator container says so, through files in a shared emptyDir:
#   go    written by the coordinator once no registry pod accepts writes: flags for the planning (dry) run
#   plan  written here: the output of `registry garbage-collect --dry-run` (what would go)
#   run   written by the coordinator: flags for the real run, or "skip"
#   done  written here: the exit code of the real run (its output is in gc.out)
#   abort written by the coordinator when it gives up: exit at once
set -u
shared="${MESHREG_GC_SHARED:-/run/meshreg-gc}"
config="${MESHREG_GC_REGISTRY_CONFIG:-/etc/docker/registry/config.yml}"

wait_for() {
  while [ ! -f "$shared/$1" ]; do
    if [ -f "$shared/abort" ]; then echo "gc: the coordinator stopped; nothing collected"; exit 0; fi
    sleep 1
  done
}

wait_for go
# shellcheck disable=SC2046 # the flags are words
registry garbage-collect --dry-run $(cat "$shared/go") "$config" > "$shared/plan.out" 2> "$shared/plan.err"
echo $? > "$shared/plan.tmp" && mv "$shared/plan.tmp" "$shared/plan"
cat "$shared/plan.out"

wait_for run
flags="$(cat "$shared/run")"
if [ "$flags" = "skip" ]; then
  : > "$shared/gc.out"
  status=0
else
  # shellcheck disable=SC2086
  registry garbage-collect $flags "$config" > "$shared/gc.out" 2>&1
  status=$?
  cat "$shared/gc.out"
fi
echo "$status" > "$shared/done.tmp" && mv "$shared/done.tmp" "$shared/done"
exit "$status"
