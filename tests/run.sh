#!/bin/sh
# Runs each test program or script given, prints each suite's result and the
# total; the last line is "N passed, N failed". A suite that crashes or prints
# no count counts as one failure.
passed=0
failed=0
log=$(mktemp)
for t in "$@"; do
	name=${t#"$BUILD"/}
	case "$t" in
	*.sh) sh "$t" >"$log" 2>&1 ;;
	*) "$t" >"$log" 2>&1 ;;
	esac
	rc=$?
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	if [ -n "$line" ]; then
		p=${line%% passed*}
		f=${line#*passed, }
		f=${f%% failed*}
	else
		p=0
		f=0
	fi
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$f" -ne 0 ]; then
		echo "FAIL $name ($p passed, $f failed, exit $rc)"
		sed 's/^/    /' "$log" | tail -n 40
	else
		echo "ok   $name ($p passed)"
	fi
done
rm -f "$log"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
