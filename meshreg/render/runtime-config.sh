#!/bin/sh
# meshreg runtime config: keeps the container runtime's configuration for the node proxy's ports in place on a node,
# and removes exactly what it wrote when it stops for good. POSIX sh (busybox ash, dash); no bashisms.
#
# Usage: runtime-config.sh run|sync|check|remove|purge
#   run     sync now and every MESHREG_INTERVAL seconds; on SIGTERM remove what it wrote, unless a newer pod of the
#           same instance has taken the directory over in the meantime (a rolling update starts the new pod first)
#   sync    one pass, taking the directory over: write missing or changed files, remove files this instance wrote
#           that are no longer wanted (a registry port that went away)
#   check   exit 0 when this pod owns the directory and every wanted file is in place (the readiness probe)
#   remove  remove every file and directory this pod wrote, and the marker; nothing if another pod owns them
#   purge   the same, whoever owns them (by hand, on a node that was down when meshreg was removed)
#
# Environment:
#   MESHREG_TARGET    the runtime's directory on the node (a hostPath mount), e.g. /etc/containerd/certs.d
#   MESHREG_SOURCE    the wanted files (a ConfigMap mount), laid out as they go under MESHREG_TARGET
#   MESHREG_FILES     the wanted files: paths relative to both directories, separated by spaces
#   MESHREG_MARKER    the marker's file name in MESHREG_TARGET: the owner and every file and directory it wrote
#   MESHREG_OWNER     who writes: the pod's UID
#   MESHREG_INTERVAL  seconds between passes in `run` (default 60)
#
# A file that exists but is not in the marker belongs to someone else: it is left alone and reported (and the pod
# is not ready), unless it already has the wanted content. Writes go to a temporary file that is renamed into
# place, so a runtime never reads half a file; an unchanged file is not rewritten.

set -u
umask 022

TARGET=${MESHREG_TARGET:?MESHREG_TARGET is not set}
SOURCE=${MESHREG_SOURCE:?MESHREG_SOURCE is not set}
FILES=${MESHREG_FILES:?MESHREG_FILES is not set}
OWNER=${MESHREG_OWNER:?MESHREG_OWNER is not set}
MARKER="$TARGET/${MESHREG_MARKER:?MESHREG_MARKER is not set}"
LOCK="$MARKER.lock"
INTERVAL=${MESHREG_INTERVAL:-60}
set -f  # the lists below are split on spaces, never globbed

log() { printf '%s runtime-config: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() { log "error: $*"; exit 2; }
has() { case " $1 " in *" $2 "*) return 0 ;; esac; return 1; }

for f in $FILES; do
    case "/$f/" in //* | */../* | */./*) die "not a relative path below $TARGET: $f" ;; esac
done
[ -d "$TARGET" ] || die "$TARGET is not a directory"

# An mkdir lock: a pod of the next rollout may run beside this one for a moment.
lock() {
    waited=0
    until mkdir "$LOCK" 2>/dev/null; do
        [ -d "$LOCK" ] || die "cannot create $LOCK (is $TARGET writable?)"
        waited=$((waited + 1))
        if [ "$waited" -gt 10 ]; then  # a pass takes milliseconds: the holder died holding it
            log "taking over $LOCK, held for more than 10 s"
            rmdir "$LOCK" 2>/dev/null
            waited=0
        fi
        sleep 1
    done
}
locked() { lock; "$@"; rc=$?; rmdir "$LOCK" 2>/dev/null; return $rc; }

read_marker() {
    OWNED_BY=; OWNED_FILES=; OWNED_DIRS=
    [ -f "$MARKER" ] || return 0
    while read -r kind path; do
        case "$kind" in
            owner) OWNED_BY=$path ;;
            file) OWNED_FILES="$OWNED_FILES $path" ;;
            dir) OWNED_DIRS="$OWNED_DIRS $path" ;;
        esac
    done < "$MARKER"
}

# put SOURCE DEST: write DEST through a temporary file in its directory, then rename it into place.
put() {
    tmp="${2%/*}/.meshreg-tmp.$$"
    if cat "$1" > "$tmp" && chmod 0644 "$tmp" && mv -f "$tmp" "$2"; then
        return 0
    fi
    rm -f "$tmp"
    return 1
}

write_marker() {  # write_marker FILES DIRS
    tmp="$TARGET/.meshreg-tmp.$$"
    {
        echo "# Written by meshreg's runtime config: the files and directories it wrote here and removes when it stops."
        echo "owner $OWNER"
        for d in $2; do echo "dir $d"; done
        for f in $1; do echo "file $f"; done
    } > "$tmp" || { rm -f "$tmp"; log "cannot write $MARKER"; return 1; }
    if cmp -s "$tmp" "$MARKER"; then rm -f "$tmp"; else mv -f "$tmp" "$MARKER"; fi
}

# place FILE: make sure TARGET/FILE has the wanted content; adds to $files/$dirs what this instance now owns.
place() {
    f=$1
    d=${f%/*}
    [ "$d" = "$f" ] && d=
    if [ -n "$d" ] && [ ! -d "$TARGET/$d" ]; then
        mkdir "$TARGET/$d" || { log "cannot create $TARGET/$d"; return 1; }
        dirs="$dirs $d"
    elif [ -n "$d" ] && has "$OWNED_DIRS" "$d"; then
        dirs="$dirs $d"
    fi
    if cmp -s "$SOURCE/$f" "$TARGET/$f"; then
        files="$files $f"
        return 0
    fi
    if [ -e "$TARGET/$f" ] && ! has "$OWNED_FILES" "$f"; then
        log "left alone: $TARGET/$f exists and was not written by meshreg; remove it or disable this runtime"
        return 1
    fi
    if put "$SOURCE/$f" "$TARGET/$f"; then
        log "wrote $TARGET/$f"
        files="$files $f"
        return 0
    fi
    log "cannot write $TARGET/$f"
    has "$OWNED_FILES" "$f" && files="$files $f"
    return 1
}

# pass takeover|keep: 0 done, 1 some file could not be placed, 3 a newer pod owns the directory (keep only).
pass() {
    read_marker
    if [ "$1" = keep ] && [ -n "$OWNED_BY" ] && [ "$OWNED_BY" != "$OWNER" ]; then
        return 3
    fi
    files=; dirs=; failed=0
    for f in $FILES; do
        place "$f" || failed=1
    done
    for f in $OWNED_FILES; do
        has "$files" "$f" && continue
        rm -f "$TARGET/$f" && log "removed $TARGET/$f (no longer wanted)"
    done
    for d in $OWNED_DIRS; do
        has "$dirs" "$d" && continue
        rmdir "$TARGET/$d" 2>/dev/null || dirs="$dirs $d"  # kept (and retried) while something else is inside
    done
    write_marker "$files" "$dirs" || failed=1
    return $failed
}

remove() {  # remove owner|any
    read_marker
    if [ -z "$OWNED_BY" ]; then
        log "nothing to remove in $TARGET"
        return 0
    fi
    if [ "$1" = owner ] && [ "$OWNED_BY" != "$OWNER" ]; then
        log "left in place: another pod ($OWNED_BY) owns what is written in $TARGET"
        return 0
    fi
    for f in $OWNED_FILES; do
        rm -f "$TARGET/$f" && log "removed $TARGET/$f"
    done
    for d in $OWNED_DIRS; do
        rmdir "$TARGET/$d" 2>/dev/null || log "left $TARGET/$d: something else is inside"
    done
    rm -f "$MARKER"
}

check() {
    read_marker
    if [ "$OWNED_BY" != "$OWNER" ]; then
        echo "this pod does not own $TARGET (owner: ${OWNED_BY:-none})"
        return 1
    fi
    for f in $FILES; do
        if ! has "$OWNED_FILES" "$f" || ! cmp -s "$SOURCE/$f" "$TARGET/$f"; then
            echo "$TARGET/$f is not in place (see the container's log)"
            return 1
        fi
    done
}

run() {
    stop=0
    trap 'stop=1' TERM INT
    locked pass takeover
    owner=1
    while [ "$stop" = 0 ]; do
        sleep "$INTERVAL" &
        wait $!
        kill $! 2>/dev/null
        [ "$stop" = 0 ] && [ "$owner" = 1 ] || continue
        locked pass keep
        if [ $? -eq 3 ]; then
            log "a newer pod owns $TARGET now; leaving it to that pod"
            owner=0
        fi
    done
    [ "$owner" = 1 ] && locked remove owner
    exit 0
}

case "${1:-}" in
    run) run ;;
    sync) locked pass takeover ;;
    check) check ;;
    remove) locked remove owner ;;
    purge) locked remove any ;;
    *) echo "usage: $0 run|sync|check|remove|purge (see the comment at its top)" >&2; exit 2 ;;
esac
