# Helpers shared by the bench scripts; source it from a script in this directory.

now() { date +%s.%N; }

# GB/s (10^9) of reading the given files in parallel with dd bs=1M, one pass each.
dd_rate() {
    local start end total=0 f
    for f in "$@"; do total=$((total + $(stat -c %s "$f"))); done
    start=$(now)
    for f in "$@"; do dd if="$f" of=/dev/null bs=1M status=none & done
    wait
    end=$(now)
    python3 -c "print(f'{$total / ($end - $start) / 1e9:.2f}')"
}
