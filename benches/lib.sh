# Shell helpers the bench scripts share (sourced, not run).

# wait_line FILE PATTERN TIMEOUT_S [PID]: prints the first line of FILE
# matching PATTERN, polling every 0.1 s for at most TIMEOUT_S seconds; with
# PID, gives up as soon as that process has exited (printing FILE and
# FILE.err, where its output went).
wait_line() {
    local i
    for i in $(seq 1 $(($3 * 10))); do
        if grep -m1 -- "$2" "$1" 2>/dev/null; then return 0; fi
        if [[ -n "${4:-}" ]] && ! kill -0 "$4" 2>/dev/null; then
            cat "$1" "$1.err" >&2 2>/dev/null
            return 1
        fi
        sleep 0.1
    done
    return 1
}
