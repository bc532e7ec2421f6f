# hdnic, the emulated SR-IOV NIC daemon.  Included by the top-level Makefile.
HDNIC_SRCS := $(wildcard devices/hdnic/*.c)
HDNIC_OBJS := $(HDNIC_SRCS:%.c=$(BUILD)/obj/%.o)
HDNIC_BIN  := $(BUILD)/hdnic
# hdnic needs only these from the shared library; naming the objects keeps
# hdnic linkable while other parts of libhdvm are under construction.
HDNIC_LIBOBJS := $(BUILD)/obj/vmm/util.o $(BUILD)/obj/migration/state.o

$(HDNIC_BIN): $(HDNIC_OBJS) $(HDNIC_LIBOBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# libFuzzer harnesses (clang): the vfio-user message parser and the
# descriptor-chain walker.  `make fuzz` runs each for FUZZ_SECONDS.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 20
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_CFLAGS  := -std=gnu11 -g -O1 -D_GNU_SOURCE -I. -Wall -Wextra -Werror \
                -Wno-unused-parameter -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=undefined
FUZZ_SRCS    := $(filter-out devices/hdnic/main.c,$(HDNIC_SRCS)) vmm/util.c migration/state.c
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,$(FUZZ_DIR)/%,$(wildcard tests/fuzz/fuzz_*.c))

$(FUZZ_DIR)/%: tests/fuzz/%.c tests/fuzz/fuzz_common.h $(FUZZ_SRCS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_SRCS) -luring -ljson-c

fuzz-build: $(FUZZ_TARGETS)

fuzz: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
		name=$$(basename $$t); corpus=$(FUZZ_DIR)/corpus-$$name; \
		mkdir -p $$corpus; \
		echo "== $$name ($(FUZZ_SECONDS) s)"; \
		$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $$corpus \
			tests/fuzz/seeds-$$name 2>&1 | tail -n 12; \
	done

.PHONY: fuzz fuzz-build
