# hdvm: `make` builds everything into build/, `make check` runs every test.
# `make SANITIZE=1 check` builds with ASan/UBSan into build/asan and tests that.

ifeq ($(SANITIZE),1)
BUILD    ?= build/asan
else
BUILD    ?= build
endif
CC       ?= gcc
CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -I. -MMD -MP \
            -fno-strict-aliasing -Wno-unused-parameter
LDLIBS   += -luring -lseccomp -ljson-c -lfdt -lssl -lcrypto -lz -lpthread
ifeq ($(SANITIZE),1)
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
else
# hdvm is linked statically: no dynamic loader at start-up (~2 ms) and no
# shared-library pages in each VMM's RSS (~0.9 MiB of the per-VM overhead).
HDVM_LDFLAGS := -static
endif
PYTHON   ?= /usr/bin/python3

# Library code shared by hdvm, hdnic and the unit tests: everything except mains.
# The etcd client (libcurl) stays out: hdvm links statically and libcurl's
# Debian dependency chain has no static libraries; hdvm-owner links it.
ETCD_SRCS := migration/etcd_http.c
LIB_SRCS := $(filter-out vmm/main.c,$(wildcard vmm/*.c vmm/*/*.c)) \
            $(filter-out $(ETCD_SRCS),$(wildcard devices/*.c devices/legacy/*.c \
                       devices/pci/*.c devices/virtio/*.c devices/vfio/*.c migration/*.c))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
LIB      := $(BUILD)/libhdvm.a

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

all: $(BUILD)/hdvm guest hdnic-all $(BUILD)/udpflood $(BUILD)/hdvm-owner

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/hdvm: $(BUILD)/obj/vmm/main.o $(LIB)
	$(CC) $(LDFLAGS) $(HDVM_LDFLAGS) -o $@ $^ $(LDLIBS)

# failover ownership through etcd, for operators and tests (migration/README.md)
$(BUILD)/hdvm-owner: $(BUILD)/obj/tools/hdvm_owner.o $(ETCD_SRCS:%.c=$(BUILD)/obj/%.o) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ -lcurl $(LDLIBS)

# post-copy's fault round trip and push throughput on userfaultfd (no guest)
$(BUILD)/bench-postcopy: $(BUILD)/obj/tools/bench_postcopy.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Remus: the per-epoch cost of everything but the vCPUs (fake KVM + a real hdnic)
$(BUILD)/bench_remus_parts: tools/bench_remus_parts.c $(LIB)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS) -lcmocka

bench-remus-parts: $(BUILD)/bench_remus_parts hdnic-all
	$(BUILD)/bench_remus_parts

# Remus with a guest (needs /dev/kvm, or run them under tools/kvmlab)
bench-remus: all
	HDVM_BUILD=$(abspath $(BUILD)) $(PYTHON) tools/bench_remus.py

# protection at density (issue 13): N counter VMs protected, host A killed; needs /dev/kvm
bench-protect: all
	HDVM_BUILD=$(abspath $(BUILD)) $(PYTHON) tools/bench_protect.py --n $(or $(N),10,100,300) \
		--json $(BUILD)/bench-protect.json --png $(BUILD)/bench-protect.png \
		--ascii $(BUILD)/bench-protect.txt $(BENCH_PROTECT_ARGS)

demo-failover: all
	HDVM_BUILD=$(abspath $(BUILD)) $(PYTHON) tools/demo_failover.py --png $(BUILD)/demo-failover.png \
		--ascii $(BUILD)/demo-failover.txt

# host-side traffic generator for the network benchmarks
$(BUILD)/udpflood: tools/udpflood.c
	$(CC) -O2 -Wall -Wextra -Werror -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS) -lcmocka

-include guest/guest.mk
-include devices/hdnic/hdnic.mk
hdnic-all: $(HDNIC_BIN)

# A unit binary that hangs is a failure, not a stalled CI run.
UNIT_TIMEOUT ?= 300
unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; timeout -k 5 $(UNIT_TIMEOUT) $$t || \
		{ rc=$$?; [ $$rc -eq 124 ] && echo "$$t: hung, killed after $(UNIT_TIMEOUT) s"; exit $$rc; }; done

integration: all
	HDVM_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q -rs tests/integration $(PYTEST_ARGS)

check: deps
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) integration

deps:
	tools/install-deps.sh

# The kvm-marked integration tests inside tools/kvmlab's nested-KVM lab (Linux
# under QEMU TCG with an emulated AMD SVM CPU), for hosts without /dev/kvm.
# Correctness only: TCG timings mean nothing. One lab at a time (2 vCPUs of TCG).
KVMLAB_TIMEOUT ?= 3600
check-kvmlab: all
	tools/kvmlab --timeout $(KVMLAB_TIMEOUT) -- env HDVM_BUILD=$(abspath $(BUILD)) \
		$(PYTHON) -m pytest -q -rs -m kvm tests/integration $(PYTEST_ARGS)

bench-boot: all
	$(PYTHON) tools/bench_boot.py

# needs /dev/kvm (refuses here with the reason); QEMU 7.2 side by side if installed
bench-migrate: all
	$(PYTHON) tools/bench_migrate.py

bench-postcopy: $(BUILD)/bench-postcopy
	$(BUILD)/bench-postcopy --json $(abspath $(BUILD))/bench-postcopy.json

# post-copy against pre-copy with auto-converge on an app=dirty guest: needs /dev/kvm
bench-postcopy-guest: all
	HDVM_BUILD=$(abspath $(BUILD)) $(PYTHON) tools/bench_postcopy_guest.py \
		--json $(abspath $(BUILD))/bench-postcopy-guest.json
.PHONY: bench-postcopy bench-postcopy-guest

bench-net: all
	HDVM_BUILD=$(abspath $(BUILD)) $(PYTHON) tools/bench_net.py

# hdnic's receive flow control on vs off, uplink -> VF 64 B, no KVM needed
bench-flowctl: all
	HDVM_BUILD=$(abspath $(BUILD)) $(PYTHON) tools/bench_flowctl.py \
		--json $(abspath $(BUILD))/bench-flowctl.json

# CompSC (issue 14): lock cost, Python moves VFIO v2 vs CompSC, hdvm with KVM; tools/bench_compsc.py --help
.PHONY: bench-compsc
bench-compsc: all
	HDVM_BUILD=$(abspath $(BUILD)) $(PYTHON) tools/bench_compsc.py --json $(abspath $(BUILD))/bench-compsc.json

# N microVMs with an ADI each (DENSITY_N, default 1000); tools/density.py --help
bench-density: all
	HDVM_BUILD=$(abspath $(BUILD)) $(PYTHON) tools/density.py --n $(or $(DENSITY_N),1000) \
		--json $(abspath $(BUILD))/bench-density.json $(DENSITY_ARGS)

# Time to ready against N, plotted (README's density chart)
SWEEP_NS ?= 50,100,200,500,1000
bench-density-sweep: all
	HDVM_BUILD=$(abspath $(BUILD)) $(PYTHON) tools/density_sweep.py \
		--ns $(SWEEP_NS) \
		--json $(abspath $(BUILD))/bench-density-sweep.json \
		--plot $(abspath $(BUILD))/bench-density-sweep.txt

# The README's first command: install, build, run a microVM.
demo: deps
	$(MAKE) all
	tools/demo.sh

clean:
	rm -rf $(BUILD)

.PHONY: all unit integration check check-kvmlab deps bench-remus-parts bench-remus bench-protect demo-failover bench-boot bench-migrate bench-net bench-flowctl bench-density bench-density-sweep demo clean guest hdnic-all
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
