# SPDX-License-Identifier: MIT
# hdguest: the freestanding x86-64 test guest.  Included by the top-level
# Makefile; `make guest` builds $(BUILD)/hdguest.elf and $(BUILD)/hdguest.bzImage.

GUEST_CFLAGS  := -std=gnu11 -O2 -Wall -Wextra -Werror -I. -MMD -MP \
                 -ffreestanding -nostdlib -fno-pic -fno-pie -mno-red-zone \
                 -mno-sse -mno-mmx -mgeneral-regs-only -fno-stack-protector \
                 -fno-asynchronous-unwind-tables -fno-strict-aliasing \
                 -fcf-protection=none -mcmodel=small
GUEST_ASFLAGS := -I. -MMD -MP -D__ASSEMBLER__
GUEST_LDFLAGS := -nostdlib -static -no-pie -Wl,--build-id=none \
                 -Wl,-z,max-page-size=0x1000 -Wl,-z,noexecstack \
                 -Wl,-T,guest/hdguest.ld

GUEST_SRCS := $(filter-out guest/mkbzimage.c,$(wildcard guest/*.c guest/*/*.c)) \
              $(wildcard guest/*.S guest/*/*.S)
GUEST_OBJS := $(patsubst guest/%,$(BUILD)/guest/%.o,$(GUEST_SRCS))

guest: $(BUILD)/hdguest.elf $(BUILD)/hdguest.bzImage

$(BUILD)/guest/%.c.o: guest/%.c
	@mkdir -p $(dir $@)
	$(CC) $(GUEST_CFLAGS) -c $< -o $@

$(BUILD)/guest/%.S.o: guest/%.S
	@mkdir -p $(dir $@)
	$(CC) $(GUEST_ASFLAGS) -c $< -o $@

$(BUILD)/hdguest.elf: $(GUEST_OBJS) guest/hdguest.ld
	$(CC) $(GUEST_LDFLAGS) -o $@ $(GUEST_OBJS)

$(BUILD)/mkbzimage: guest/mkbzimage.c devices/platform.h guest/asm.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $<

$(BUILD)/hdguest.bzImage: $(BUILD)/hdguest.elf $(BUILD)/mkbzimage
	$(BUILD)/mkbzimage $< $@
