# Shell helpers for tests that need a real fedrec-coordinator on loopback.
# Source it, then:
#   coord_start BIN DIR [flags...]   starts BIN with a catalog of P001..P012,
#                                    its database in DIR, listening on an
#                                    ephemeral port of 127.0.0.1 (tcp://
#                                    unless a --listen flag is given); sets
#                                    COORD_URL, COORD_PID, COORD_LOG
#   coord_stop                       SIGTERM, and waits for a clean exit
# The port is read back from the coordinator's "listening on" log line.
coord_start() {
    local bin=$1 dir=$2
    shift 2
    mkdir -p "$dir"
    {
        echo "code,description"
        for i in 01 02 03 04 05 06 07 08 09 10 11 12; do echo "P0$i,product $i"; done
    } >"$dir/catalog.csv"
    local listen="tcp://127.0.0.1:0"
    for a in "$@"; do [ "$a" = "--listen" ] && listen=""; done
    COORD_LOG=$dir/coordinator.log
    # The log exists before the loop reads it: the background job opens it
    # only once it runs, and a sed on a missing file fails the caller (set -e).
    : >"$COORD_LOG"
    "$bin" --db "$dir/state.sqlite" --catalog "$dir/catalog.csv" --factors 4 --seed 7 \
        ${listen:+--listen "$listen"} "$@" >"$COORD_LOG" 2>&1 &
    COORD_PID=$!
    COORD_URL=""
    for _ in $(seq 1 200); do
        COORD_URL=$(sed -nE 's/.*listening on ([a-z+]+:\/\/127\.0\.0\.1):0 \(port ([0-9]+)\).*/\1:\2/p' \
            "$COORD_LOG" | head -1)
        [ -n "$COORD_URL" ] && return 0
        kill -0 "$COORD_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "coordinator did not start:" >&2
    cat "$COORD_LOG" >&2
    return 1
}

coord_stop() {
    [ -n "${COORD_PID:-}" ] || return 0
    kill -TERM "$COORD_PID" 2>/dev/null || true
    wait "$COORD_PID" 2>/dev/null || true
    COORD_PID=""
}
