# hdnic, the emulated SR-IOV NIC daemon.  Included by the top-level Makefile.
HDNIC_SRCS := $(wildcard devices/hdnic/*.c)
HDNIC_OBJS := $(HDNIC_SRCS:%.c=$(BUILD)/obj/%.o)
HDNIC_BIN  := $(BUILD)/hdnic
# hdnic needs only these from the shared library; naming the objects keeps
# hdnic linkable while other parts of libhdvm are under construction.
HDNIC_LIBOBJS := $(BUILD)/obj/vmm/util.o $(BUILD)/obj/vmm/failpoint.o $(BUILD)/obj/devices/holdq.o \
                 $(BUILD)/obj/migration/state.o \
                 $(BUILD)/obj/devices/virtio/virtq.o \
                 $(BUILD)/obj/devices/vfio/vfio_user_caps.o

$(HDNIC_BIN): $(HDNIC_OBJS) $(HDNIC_LIBOBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# cmocka tests of hdnic's layers (tests/unit/test_hdnic_*.c) link hdnic's own
# objects, not libhdvm; `make unit` runs them with the rest.
HDNIC_TEST_OBJS := $(filter-out $(BUILD)/obj/devices/hdnic/main.o,$(HDNIC_OBJS)) $(HDNIC_LIBOBJS)

$(BUILD)/tests/test_hdnic_%: tests/unit/test_hdnic_%.c $(HDNIC_TEST_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(HDNIC_TEST_OBJS) $(LDLIBS) -lcmocka

# libFuzzer harnesses (clang): the vfio-user message parser and the
# descriptor-chain walker.  `make fuzz` runs each for FUZZ_SECONDS.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 20
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_CFLAGS  := -std=gnu11 -g -O1 -D_GNU_SOURCE -I. -Wall -Wextra -Werror \
                -Wno-unused-parameter -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=undefined
FUZZ_SRCS    := $(filter-out devices/hdnic/main.c,$(HDNIC_SRCS)) vmm/util.c vmm/failpoint.c devices/holdq.c \
                migration/state.c \
                devices/virtio/virtq.c \
                devices/vfio/vfio_user_caps.c
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,$(FUZZ_DIR)/%,$(wildcard tests/fuzz/fuzz_*.c))

$(FUZZ_DIR)/%: tests/fuzz/%.c tests/fuzz/fuzz_common.h $(FUZZ_SRCS) $(wildcard devices/hdnic/*.h) devices/virtio/virtq.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_SRCS) -luring -ljson-c

# hdvm's own parsers (tests/fuzz/fuzz_hdvm_*.c): the control-socket request
# parser, the vfio-user client's reply handling, the snapshot file, the
# vCPU/VM state stream, the migration stream and its manifest, built from hdvm sources.
HDVM_FUZZ_SRCS := vmm/util.c vmm/control_parse.c $(wildcard devices/vfio/vfio_user*.c) \
                  devices/vfio/vfio_common.c devices/vfio/vfio_dirty.c \
                  migration/state.c migration/snapshot_file.c vmm/machine_state.c \
                  migration/stream.c migration/manifest.c devices/devices_precopy.c

$(FUZZ_DIR)/fuzz_hdvm_%: tests/fuzz/fuzz_hdvm_%.c $(HDVM_FUZZ_SRCS) $(wildcard devices/vfio/*.h vmm/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(HDVM_FUZZ_SRCS) -ljson-c -lfdt -lz -lpthread

fuzz-build: $(FUZZ_TARGETS)

# Every harness runs even when one fails; the failures are listed at the end.
fuzz: fuzz-build
	@failed=""; for t in $(FUZZ_TARGETS); do \
		name=$$(basename $$t); corpus=$(FUZZ_DIR)/corpus-$$name; \
		mkdir -p $$corpus; \
		echo "== $$name ($(FUZZ_SECONDS) s)"; \
		if $$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -rss_limit_mb=4096 \
			-artifact_prefix=$(FUZZ_DIR)/$$name- $$corpus tests/fuzz/seeds-$$name \
			> $(FUZZ_DIR)/$$name.log 2>&1; then \
			grep -E "^(stat::number_of_executed_units|stat::new_units_added|Done)" \
				$(FUZZ_DIR)/$$name.log; \
		else \
			tail -n 60 $(FUZZ_DIR)/$$name.log; failed="$$failed $$name"; \
		fi; \
	done; \
	if [ -n "$$failed" ]; then echo "FUZZ FAILED:$$failed (logs and artifacts in $(FUZZ_DIR))"; exit 1; fi; \
	echo "all $(words $(FUZZ_TARGETS)) harnesses ran clean"

.PHONY: fuzz fuzz-build
