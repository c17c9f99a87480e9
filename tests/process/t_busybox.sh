#!/bin/sh
# Debian's static busybox run natively and as a process VM: shell scripts
# and text tools must give byte-identical output and exit status.
. "$(dirname "$0")/lib.sh"
BB=/bin/busybox
if [ ! -x $BB ]; then
	echo "busybox-static not installed (/bin/busybox)"
	echo "0 passed, 1 failed"
	exit 1
fi
mkdir -p "$TMP/work/d/e"
cd "$TMP/work"
i=0
while [ $i -lt 400 ]; do
	echo "line $i $((i * 7919 % 1000)) word$((i % 13)) $((i % 5))"
	i=$((i + 1))
done >data.txt
printf 'alpha\nbeta\ngamma\nbeta\nalpha\nalpha\n' >words.txt
echo nested >d/e/f.txt
echo top >d/g.txt
head -c 300000 $BB >bin.dat

cat >script.sh <<'EOS'
fib() { if [ $1 -le 1 ]; then echo $1; else echo $(( $(fib $(($1 - 1))) + $(fib $(($1 - 2))) )); fi; }
echo "fib 12 = $(fib 12)"
n=0; total=0
while [ $n -lt 50 ]; do total=$((total + n * n)); n=$((n + 1)); done
echo "sum of squares: $total"
for w in one two three; do case $w in t*) echo "t-word $w";; *) echo "other $w";; esac; done
cat <<EOT | tr a-z A-Z
here-doc with $total and $(echo subst)
EOT
(cd d && echo "in subshell: $(pwd | sed 's,.*/,,')"; exit 4); echo "subshell status $?"
x=$(echo abc | sed 's/b/B/'); echo "x=$x ${#x} ${x%C*}"
set -- a b c; echo "$# args: $*"
printf '%05d|%-6s|%x\n' 42 ab 255
echo "expr: $(expr 6 \* 7) $(expr length hello)"
false || echo "false failed as expected"
ls nonexistent 2>/dev/null; echo "ls status $?"
trap 'echo trapped EXIT' EXIT
sleep 0 &
wait $!; echo "bg status $?"
exit 3
EOS

same "sh script" $BB sh script.sh
same "sh -c pipes" $BB sh -c 'seq 1 200 | grep -E "^(1|2)[0-9]$" | wc -l; echo a:b:c | cut -d: -f2'
same "awk" $BB awk '{ s += $3; c[$4]++ } END { printf "%d %d\n", s, NR; for (k = 0; k < 13; k++) printf "%s=%d ", "word" k, c["word" k]; print "" }' data.txt
same "sed" $BB sed -n -e 's/line \([0-9]*\) .*word1 .*/L\1/p' data.txt
same "sort" $BB sort -k3,3n -k2,2 data.txt
same "sort -u -r" $BB sort -u -r words.txt
same "grep -E" $BB grep -E -c 'word(1|3) [24]$' data.txt
same "cut" $BB cut -d' ' -f2,4 data.txt
same "tr" $BB tr 'a-z' 'n-za-m' --in data.txt
same "uniq -c" $BB sh -c 'sort words.txt | uniq -c'
same "sha256sum" $BB sha256sum data.txt bin.dat
same "md5sum" $BB md5sum data.txt bin.dat
same "gzip round trip" $BB sh -c 'gzip -c bin.dat >b.gz && gunzip -c b.gz | md5sum && wc -c <b.gz'
same "tar" $BB sh -c 'tar cf t.tar d && mkdir -p x && tar xf t.tar -C x && find x | sort && cat x/d/e/f.txt'
same "find" $BB find d -type f -name '*.txt'
same "dd" $BB sh -c 'dd if=bin.dat bs=4096 skip=3 count=5 2>/dev/null | md5sum'
same "printf" $BB printf '%s=%d %5.2f %c\n' pi 3 3.14159 x
same "expr" $BB expr 123 \* 45 + 6
same "exit status" $BB sh -c 'exit 42'
same "stderr" $BB sh -c 'echo out; echo err >&2; ls /nonexistent-corral-path'
report
