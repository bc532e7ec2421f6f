#!/bin/sh
# The main job: boot a microVM running the hdguest hello app and show its output.
set -e
cd "$(dirname "$0")/.."
echo "== hdvm run --kernel build/hdguest.elf --cmdline app=hello --cpus 2"
build/hdvm run --kernel build/hdguest.elf --cmdline "app=hello" --mem 64M --cpus 2 \
	--run-dir "${HDVM_RUN_DIR:-/run/hdvm}"
echo "== guest exited with status $?"
