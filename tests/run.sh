#!/bin/sh
# Runs each test program or script given, prints each suite's result and the
# total; the last line is "N passed, N failed, N skipped" (a skip is never a
# pass). A suite that crashes or prints no count counts as one failure.
passed=0
failed=0
skipped=0
log=$(mktemp)
for t in "$@"; do
	name=${t#"$BUILD"/}
	case "$t" in
	*.sh) sh "$t" >"$log" 2>&1 ;;
	*) "$t" >"$log" 2>&1 ;;
	esac
	rc=$?
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	s=0
	if [ -n "$line" ]; then
		p=${line%% passed*}
		f=${line#*passed, }
		f=${f%% failed*}
		case "$line" in
		*skipped*)
			s=${line#*failed, }
			s=${s%% skipped*}
			;;
		esac
	else
		p=0
		f=0
	fi
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + s))
	if [ "$f" -ne 0 ]; then
		echo "FAIL $name ($p passed, $f failed, $s skipped, exit $rc)"
		sed 's/^/    /' "$log" | tail -n 40
	elif [ "$s" -ne 0 ]; then
		echo "ok   $name ($p passed, $s skipped)"
		grep -i 'skip' "$log" | head -n 5 | sed 's/^/    /'
	else
		echo "ok   $name ($p passed)"
	fi
done
rm -f "$log"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
