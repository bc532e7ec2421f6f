#!/bin/sh
# The main job: a microVM with a passed-through network VF.
#
#   namespace hdvm-demo:  hdt0 (10.77.0.1/24) -- TAP uplink of hdnic
#   hdnic:                PF + 2 VFs, served over vfio-user in $DIR
#   microVM:              hdguest app=counter, 10.77.0.2/24 on VF 0
#
# Pings the guest and sends a few counter requests from the namespace, shows the
# replies, then tears everything down.
set -e
cd "$(dirname "$0")/.."
NS=hdvm-demo
DIR=$(mktemp -d /tmp/hdvm-demo.XXXXXX)
RUN="$DIR/run"
HDNIC_PID=
VM_PID=

cleanup() {
	[ -n "$VM_PID" ] && build/hdvm stop demo --run-dir "$RUN" >/dev/null 2>&1 || true
	[ -n "$VM_PID" ] && wait "$VM_PID" 2>/dev/null || true
	[ -n "$HDNIC_PID" ] && kill "$HDNIC_PID" 2>/dev/null && wait "$HDNIC_PID" 2>/dev/null || true
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

ip netns del "$NS" 2>/dev/null || true
ip netns add "$NS"
ip -n "$NS" link set lo up

echo "== hdnic: 2 VFs, TAP uplink hdt0 in namespace $NS"
ip netns exec "$NS" build/hdnic --dir "$DIR/nic" --vfs 2 --uplink tap:hdt0 &
HDNIC_PID=$!
for i in $(seq 50); do [ -S "$DIR/nic/vf0.sock" ] && break; sleep 0.1; done
ip -n "$NS" addr add 10.77.0.1/24 dev hdt0
ip -n "$NS" link set hdt0 up

echo "== hdvm run --vfio-user $DIR/nic/vf0.sock --cmdline 'app=counter ip=10.77.0.2/24'"
build/hdvm run --kernel build/hdguest.elf --cmdline "app=counter ip=10.77.0.2/24" \
	--mem 64M --name demo --run-dir "$RUN" --vfio-user "$DIR/nic/vf0.sock" \
	--console "file:$DIR/console.log" &
VM_PID=$!
for i in $(seq 100); do grep -q "counter: listening" "$DIR/console.log" 2>/dev/null && break; sleep 0.1; done
sed 's/^/   guest| /' "$DIR/console.log"

echo "== ping 10.77.0.2 (through TAP -> hdnic switch -> VF -> guest)"
ip netns exec "$NS" ping -c 5 -i 0.2 -W 2 10.77.0.2

echo "== 5 counter requests (UDP 9000): request id -> reply id and counter"
ip netns exec "$NS" /usr/bin/python3 - <<'PY'
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
for rid in range(1001, 1006):
    s.sendto(struct.pack("!Q", rid), ("10.77.0.2", 9000))
    data, _ = s.recvfrom(64)
    got_id, counter = struct.unpack("!QQ", data[:16])
    print(f"   request {rid} -> reply id {got_id}, counter {counter}")
PY

echo "== hdvm ps / hdnic stats"
build/hdvm ps --run-dir "$RUN"
build/hdnic ctl "$DIR/nic" stats | head -8
echo "== done; tearing down"
