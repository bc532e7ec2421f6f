#!/bin/sh
# Install the Debian packages hdvm needs to build, test and benchmark, if missing.
set -e
PKGS="build-essential pkg-config liburing-dev libseccomp-dev libfdt-dev libjson-c-dev
      libcmocka-dev python3-pytest qemu-system-x86 socat iperf3 iputils-ping iproute2
      clang libclang-rt-14-dev gnuplot-nox zlib1g-dev libcurl4-openssl-dev etcd-server
      libssl-dev openssl"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
