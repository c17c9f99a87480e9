#!/bin/sh
# Kubernetes' path into corral-runc: containerd's CRI plugin, configured as
# docs/oci.md's "Kubernetes" section says (runtime handler "corral": the runc
# shim with BinaryName = corral-runc, beside the stock "runc"), driven over
# gRPC with the kubelet's calls (tests/oci/cri/cri.py on a trimmed copy of
# the CRI proto, compiled at test time). For each handler: a host-network
# pod whose sandbox is a locally imported pause image, a container that
# prints and exits with a status (its CRI log and exit code), a container
# stopped with SIGTERM; the results match between the two handlers, and the
# "corral" pod's processes are corral-runc's, in the state root its shim
# was configured with. The test's containerd is its own (config, socket,
# state and images in its temporary directory). Skipped without containerd,
# podman, runc or Python's grpc.
. "$(dirname "$0")/lib.sh"
N=12
need_root $N
need_static $N || { report; exit $?; }
for c in containerd containerd-shim-runc-v2 ctr podman runc; do
	if ! command -v $c >/dev/null 2>&1; then
		skip $N "$c is not installed (tools/setup.sh installs it)"
		report
		exit $?
	fi
done
# Debian's python3-grpcio and python3-grpc-tools are for Debian's python3
PY=
for p in /usr/bin/python3 python3; do
	if "$p" -c 'import grpc, grpc_tools.protoc' >/dev/null 2>&1; then
		PY=$p
		break
	fi
done
if [ -z "$PY" ]; then
	skip $N "no python3 with grpc and grpc_tools (python3-grpcio, python3-grpc-tools; tools/setup.sh installs them)"
	report
	exit $?
fi
mkdir -p "$TMP/pb"
if ! "$PY" -m grpc_tools.protoc -I"$HERE/cri" --python_out="$TMP/pb" --grpc_python_out="$TMP/pb" \
	"$HERE/cri/api.proto" 2>"$TMP/e"; then
	bad "the CRI proto does not compile: $(head -c 300 "$TMP/e")"
	report
	exit $?
fi
D=$TMP/ctrd
mkdir -p "$D/cni" "$D/logs-runc" "$D/logs-corral"
CG=corral-cri-$$
cri() { PYTHONPATH=$TMP/pb timeout 200 "$PY" "$HERE/cri/cri.py" "$D/sock" "$@"; }

# The configuration is docs/oci.md's own (its config.toml block, the
# handlers "runc" and "corral"), with the built corral-runc and a Root in TMP;
# around it the test's own containerd (state, sockets, CNI directories in
# TMP, the local pause image) and runc's shim root in TMP too.
sed -n '/^# \/etc\/containerd\/config.toml/,/^```$/p' "$HERE/../../docs/oci.md" | sed '$d' |
	sed "s|\"/usr/local/bin/corral-runc\"|\"$RUNC\"|; s|\"/run/containerd/corral\"|\"$D/corral-root\"|" >"$D/doc.toml"
if ! grep -q "BinaryName = \"$RUNC\"" "$D/doc.toml" || ! grep -q "Root = \"$D/corral-root\"" "$D/doc.toml"; then
	bad "docs/oci.md has no containerd configuration with BinaryName and Root for corral-runc"
	report
	exit $?
fi
{
	echo "root = \"$D/root\""
	echo "state = \"$D/state\""
	cat "$D/doc.toml"
	cat <<EOC
[grpc]
  address = "$D/sock"
[ttrpc]
  address = "$D/sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/corral-pause:test"
  stream_server_port = "0"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$D/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
    BinaryName = "$(command -v runc)"
    Root = "$D/runc-root"
EOC
} >"$D/config.toml"
containerd --config "$D/config.toml" >"$D/log" 2>&1 &
CPID=$!
C="ctr --address $D/sock -n k8s.io"
cri_cleanup() {
	for p in $(cri pods 2>/dev/null); do cri rmpod "$p" >/dev/null 2>&1; done
	for t in $($C task ls -q 2>/dev/null); do $C task kill -s KILL "$t" >/dev/null 2>&1; done
	sleep 0.5
	for t in $($C task ls -q 2>/dev/null); do $C task rm -f "$t" >/dev/null 2>&1; done
	for t in $($C container ls -q 2>/dev/null); do $C container rm "$t" >/dev/null 2>&1; done
	kill "$CPID" 2>/dev/null
	wait "$CPID" 2>/dev/null
	# what the pods mounted below containerd's state (shm, the root file systems)
	grep -o " $D/[^ ]*" /proc/self/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
	# the pods' cgroup parent, when empty
	for d in /sys/fs/cgroup/*/"$CG" /sys/fs/cgroup/*/*/"$CG" /sys/fs/cgroup/*/*/*/"$CG" /sys/fs/cgroup/*/*/*/*/"$CG"; do
		[ -d "$d" ] && rmdir "$d"/* "$d" 2>/dev/null
	done
	cleanup_containers
}
trap 'cri_cleanup; rm -rf "$TMP"' EXIT
up=
for i in $(seq 100); do
	if cri version >"$TMP/v" 2>/dev/null; then
		up=1
		break
	fi
	sleep 0.2
done
if [ -z "$up" ]; then
	bad "containerd's CRI plugin does not answer: $(tail -n 3 "$D/log")"
	report
	exit $?
fi

# The images: busybox roots imported by podman (its state in TMP), saved as
# OCI archives and imported into containerd's k8s.io namespace, where the CRI
# plugin looks. The pause image is busybox sleeping.
cat >"$TMP/containers.conf" <<EOC
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
EOC
PM="podman --root $TMP/storage --runroot $TMP/run --tmpdir $TMP/ptmp --storage-driver vfs --events-backend file"
rootfs "$TMP/image"
tar -C "$TMP/image" -cf "$TMP/image.tar" .
image() { # NAME [podman import options]: localhost/NAME:test
	name=$1
	shift
	CONTAINERS_CONF=$TMP/containers.conf $PM import -q "$@" "$TMP/image.tar" "localhost/$name:test" >/dev/null 2>"$TMP/e" &&
		CONTAINERS_CONF=$TMP/containers.conf $PM save -q --format oci-archive -o "$TMP/$name.tar" \
			"localhost/$name:test" 2>"$TMP/e" &&
		$C image import --base-name "localhost/$name" "$TMP/$name.tar" >/dev/null 2>"$TMP/e"
}
if ! image corral-bb || ! image corral-pause -c 'CMD ["/bin/sleep", "100000000"]'; then
	skip $N "no images for containerd: $(head -c 200 "$TMP/e")"
	CONTAINERS_CONF=$TMP/containers.conf $PM rmi -af >/dev/null 2>&1
	report
	exit $?
fi
CONTAINERS_CONF=$TMP/containers.conf $PM rmi -af >/dev/null 2>&1
IMG=localhost/corral-bb:test

# the CRI plugin sees both images
if cri image localhost/corral-pause:test >/dev/null 2>"$TMP/e" && cri image $IMG >/dev/null 2>>"$TMP/e"; then
	ok
else
	bad "CRI ImageStatus: $(head -n 2 "$TMP/e")"
fi

# pod HANDLER: a pod under that runtime handler and its two containers, as
# the kubelet runs them; the transcript in $TMP/out.HANDLER, and while the
# second container runs, what the host sees of the pod's processes in
# $TMP/facts.HANDLER: the handler containerd reports, the programs the host
# runs for the sandbox and the container (/proc/PID/exe), and corral-runc's
# own state of them in the root the shim was configured with
pod() {
	h=$1
	o=$TMP/out.$h
	f=$TMP/facts.$h
	L=$D/logs-$h
	: >"$f"
	if ! p=$(cri runpod "$h" "pod-$h" "$L" "/$CG" 2>"$TMP/err.$h"); then
		echo "runpod failed" >"$o"
		return
	fi
	{
		# a container that prints on both streams and ends with a status
		c=$(cri create "$p" "pod-$h" "$L" "/$CG" job $IMG \
			sh -c 'echo $((6*7)); echo "$GREETING" >&2; id -u; exit 3') &&
			cri start "$c" && cri wait "$c" 120 && cri log "$L/job.log"
		echo "job status $?"
		# a long-running one, then SIGTERM through StopContainer
		c=$(cri create "$p" "pod-$h" "$L" "/$CG" server $IMG \
			sh -c 'trap "echo term; exit 9" TERM; echo up; while :; do sleep 1; done') && cri start "$c"
		for i in $(seq 100); do
			grep -q ' up$' "$L/server.log" 2>/dev/null && break
			sleep 0.2
		done
		set -- $(cri podinfo "$p")
		spid=$2
		cpid=$(cri pid "$c")
		{
			echo "handler $1 $2 $3"
			echo "pids $spid $cpid"
			echo "sandbox-exe $(readlink "/proc/$spid/exe")"
			echo "server-exe $(readlink "/proc/$cpid/exe")"
			echo "state $("$RUNC" --root "$D/corral-root/k8s.io" state "$p" 2>&1 | tr -d ' \n')"
			echo "list $("$RUNC" --root "$D/corral-root/k8s.io" list -q 2>&1 | sort | tr '\n' ' ')"
			echo "ids $(printf '%s\n' "$p" "$c" | sort | tr '\n' ' ')"
		} >"$f"
		cri stop "$c" 30 && cri wait "$c" 60 && cri log "$L/server.log"
		echo "server status $?"
		cri rmpod "$p"
		echo "rmpod status $?"
	} >"$o" 2>>"$TMP/err.$h"
	cri podinfo "$p" >/dev/null 2>&1 && echo "pod $p is still there" >>"$o"
	left=
	for pid in $spid $cpid; do
		kill -0 "$pid" 2>/dev/null && left="$left $pid"
	done
	echo "left$left $(ls "$D/$h-root/k8s.io" 2>/dev/null | tr '\n' ' ')" >>"$f"
}
pod runc
pod corral

# what the "corral" pod printed and how its containers ended
cat >"$TMP/want" <<EOF
exited 3 Error
stdout 42
stdout 0
stderr hello from job
job status 0
exited 9 Error
stdout up
stdout term
server status 0
rmpod status 0
EOF
for h in corral runc; do
	if cmp -s "$TMP/want" "$TMP/out.$h"; then
		ok
	else
		bad "$h handler: not the expected transcript"
		diff "$TMP/want" "$TMP/out.$h" | head -n 12
		head -n 3 "$TMP/err.$h"
	fi
done
if cmp -s "$TMP/out.runc" "$TMP/out.corral"; then
	ok
else
	bad "runc and corral handlers differ"
	diff "$TMP/out.runc" "$TMP/out.corral" | head -n 10
fi
# fact HANDLER KEY: the rest of that line of its facts
fact() { sed -n "s/^$2 //p" "$TMP/facts.$1"; }
# The corral pod ran on corral-runc: containerd says its handler is corral,
# the host runs corral-runc for its sandbox and its container, and those are
# corral-runc's containers in the corral handler's state root. The runc pod,
# the control: the host runs the image's busybox, the state is runc's.
R=$(readlink -f "$RUNC")
expect "corral: the handler containerd reports" "corral" "$(fact corral handler | cut -d' ' -f1)"
expect "runc: the handler containerd reports" "runc" "$(fact runc handler | cut -d' ' -f1)"
expect "corral: the host's programs for the sandbox and the container" "$R $R" \
	"$(fact corral sandbox-exe) $(fact corral server-exe)"
expect "runc: the host's programs for the sandbox and the container" "/bin/busybox /bin/busybox" \
	"$(fact runc sandbox-exe) $(fact runc server-exe)"
st=$(fact corral state)
case "$st" in
*'"status":"running"'*"\"pid\":$(fact corral pids | cut -d' ' -f1),"*) ok ;;
*) bad "corral: corral-runc's state of the sandbox: $st" ;;
esac
expect "corral: corral-runc's containers in the handler's root" "$(fact corral ids)" "$(fact corral list)"
# StopPodSandbox and RemovePodSandbox ended the processes and the state
expect "corral: processes and state left after RemovePodSandbox" "" "$(fact corral left)"
expect "runc: processes and state left after RemovePodSandbox" "" "$(fact runc left)"
report
