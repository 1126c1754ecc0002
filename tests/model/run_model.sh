#!/usr/bin/env bash
# Runs one spin model check (tests/model/CMakeLists.txt registers each as a
# CTest test with LABELS model):
#
#   run_model.sh MODEL.pml MODE EXPECT WORKDIR [-DNAME[=VALUE] ...]
#
# MODE    safety: assertions and invalid end states (pan -DSAFETY);
#         np:     non-progress cycles under weak fairness (pan -DNP, -l -f).
# EXPECT  pass: spin must report "errors: 0" after a complete exhaustive
#               search (a search cut short by the depth limit fails);
#         fail: spin must find a counterexample ("errors: 1"); its trail is
#               replayed and printed, so the log shows what the checker bit on.
# The -D options go to spin's preprocessor (mutations, bounds).
#
# Prints the pan statistics (states stored, transitions, memory, time).
set -euo pipefail

if [ $# -lt 4 ]; then
	echo "usage: $0 MODEL.pml safety|np pass|fail WORKDIR [-DNAME ...]" >&2
	exit 2
fi
model=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
mode=$2
expect=$3
work=$4
shift 4
defs=("$@")

spin=${SPIN:-spin}
cc=${CC:-cc}
command -v "$spin" >/dev/null || { echo "run_model: spin not found" >&2; exit 2; }

rm -rf "$work"
mkdir -p "$work"
cd "$work"
cp "$model" model.pml
# The models' shared parts (#include "mpsc.pml").
for inc in "$(dirname "$model")"/*.pml; do
	[ "$inc" = "$model" ] || cp "$inc" .
done

# -m: search depth; a pass needs the whole state space within it (checked
# below). Exhaustive search with state compression (COLLAPSE), no
# bitstate hashing: every reachable state is visited.
depth=${MODEL_DEPTH:-2000000}
case $mode in
safety)
	pan_cflags=(-DSAFETY)
	pan_run=()
	;;
np)
	pan_cflags=(-DNP -DNFAIR=16)
	pan_run=(-l -f)
	;;
*)
	echo "run_model: unknown mode $mode" >&2
	exit 2
	;;
esac

if ! "$spin" "${defs[@]}" -a model.pml >spin.log 2>&1 || grep -q 'Error' spin.log || [ ! -f pan.c ]; then
	cat spin.log >&2
	exit 1
fi
"$cc" -O2 -w -DCOLLAPSE -DMEMLIM=4096 "${pan_cflags[@]}" -o pan pan.c
start=$(date +%s.%N)
./pan -m"$depth" -n "${pan_run[@]}" >pan.log 2>&1 || true
end=$(date +%s.%N)

grep -E 'Full statespace|State-vector|states, stored|transitions \(|total actual memory|errors:|elapsed|max search depth too small|pan:' pan.log || true
printf 'run_model: %s %s %s, %.1f s wall\n' "$(basename "$model")" "$mode" "${defs[*]:-(no options)}" \
	"$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')"

errors=$(sed -nE 's/.*errors: ([0-9]+).*/\1/p' pan.log | tail -1)
if [ -z "$errors" ]; then
	echo "run_model: pan reported no result" >&2
	cat pan.log >&2
	exit 1
fi

if [ "$expect" = pass ]; then
	if [ "$errors" != 0 ]; then
		echo "run_model: FAIL: expected no error, spin found one; trail:" >&2
		grep -E '^pan:[0-9]+:' pan.log >&2 || true
		"$spin" "${defs[@]}" -t -p -k model.pml.trail model.pml 2>&1 |
			grep -v "^$(printf '\t\t')" | tail -60 >&2 || true
		exit 1
	fi
	if grep -q 'max search depth too small' pan.log; then
		echo "run_model: FAIL: the search was cut short by the depth limit (-m$depth)" >&2
		exit 1
	fi
	if grep -q 'out of memory\|memory limit' pan.log; then
		echo "run_model: FAIL: pan ran out of memory: the search is incomplete" >&2
		exit 1
	fi
	echo "run_model: PASS: exhaustive, no error"
else
	if [ "$errors" = 0 ]; then
		echo "run_model: FAIL: expected a counterexample (the mutation should be caught), spin found none" >&2
		exit 1
	fi
	echo "run_model: PASS: spin found the expected counterexample (errors: $errors):"
	grep -E '^pan:[0-9]+:|^pan: ' pan.log | head -5 || true
	echo "run_model: the trail's last steps (line numbers are MODEL.pml's):"
	"$spin" "${defs[@]}" -t -p -k model.pml.trail model.pml 2>&1 | grep -v "^$(printf '\t\t')" |
		tail -40 || true
fi
