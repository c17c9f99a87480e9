#!/bin/sh
# Dynamically linked Debian programs (their own ld.so and libraries run in
# the VM): identical output to native runs.
. "$(dirname "$0")/lib.sh"
DIR=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$TMP/work/tree/sub"
cd "$TMP/work"
printf 'hello\n' >tree/a.txt
printf 'some longer content\n%.0s' 1 2 3 4 5 >tree/b.txt
printf '#!/bin/sh\n' >tree/run.sh
chmod 755 tree/run.sh
chmod 600 tree/a.txt
ln -s a.txt tree/link
touch -h -d '2020-01-02 03:04:05' tree/a.txt tree/b.txt tree/run.sh tree/link tree/sub tree
i=0
while [ $i -lt 2000 ]; do
	echo "row$((i * 7 % 2000)) $((i * 7919 % 10007)) $i"
	i=$((i + 1))
done >rows.txt
head -c 2000000 /usr/bin/perl >big.bin

same "ls -la" /bin/ls -la --time-style=long-iso tree
same "ls -lR" /bin/ls -lR --time-style=+%s tree
same "sort -k2n" /usr/bin/sort -k2n rows.txt
same "sort -r" /usr/bin/sort -r rows.txt
same "sha256sum" /usr/bin/sha256sum rows.txt big.bin
export TZ=UTC
same "date -d" /bin/date -d '2024-02-29 13:45:10' '+%A %j %s %Y-%m-%d %H:%M:%S %Z'
same "gzip -6" /bin/sh -c '/bin/gzip -6 -c big.bin | /usr/bin/sha256sum'
same "gzip round trip" /bin/sh -c '/bin/gzip -c rows.txt | /bin/gzip -dc | /usr/bin/cmp - rows.txt && echo same'
same "perl -e" /usr/bin/perl -e 'my %h; $h{$_ % 7}++ for 1..1000; print join(",", map {"$_=$h{$_}"} sort keys %h), "\n"; printf "%.10f %s\n", atan2(1,1)*4, scalar reverse("corral"); my @s = sort { $b <=> $a } map { $_ * 37 % 101 } 1..20; print "@s\n"; print join("|", split /,/, "a,b,,c"), "\n"; exit 7'
same "perl regex+sprintf" /usr/bin/perl -ne 'print "$1:$2\n" if /^row(\d+)1 (\d+)/' rows.txt
same "python3 script" /usr/bin/python3 "$DIR/pyscript.py"
report
