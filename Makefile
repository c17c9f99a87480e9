# corral: one non-recursive build. `make`, `make check`, `make bench`.
# SANITIZE=1 builds everything with ASan+UBSan into build-san/;
# SANITIZE=thread with ThreadSanitizer into build-tsan/ (make check-tsan).

CC      ?= gcc
O       ?= 2
SANITIZE ?=
BUILD   ?= $(if $(filter thread,$(SANITIZE)),build-tsan,$(if $(SANITIZE),build-san,build))

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wvla -Wimplicit-fallthrough -Werror
CFLAGS  ?= -O$(O) -g
CFLAGS  += -std=gnu11 $(WARN) -D_GNU_SOURCE -Isrc -pthread
LDLIBS  += -pthread
# Start-up of a restore (bench/snapshot.sh): every shared library the
# loader maps costs page faults before main. libm is linked only when
# something needs it: sse_fp.c's sqrt is inline (below) and frexp is in
# libc as well (named first, libc provides it), so corral needs libc alone.
LDFLAGS += -Wl,--as-needed
ifeq ($(SANITIZE),thread)
CFLAGS  += -fsanitize=thread -fno-omit-frame-pointer -Wno-tsan
LDFLAGS += -fsanitize=thread
else ifneq ($(SANITIZE),)
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif

# Every module folder under src/ except the CLI goes into libcorral.a.
LIB_SRC := $(sort $(filter-out src/cli/% src/daemon/main.c,$(wildcard src/*/*.c)))
# Assembly (src/*/*.S) is per host architecture inside each file.
LIB_ASM := $(sort $(wildcard src/*/*.S))
CLI_SRC := $(sort $(wildcard src/cli/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o) $(LIB_ASM:%.S=$(BUILD)/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
LIB     := $(BUILD)/libcorral.a
CORRAL  := $(BUILD)/corral
# corral static, and its dynamically linked sibling (see its link rule)
STATIC  ?= $(if $(SANITIZE),,1)
CORRAL_DYN := $(if $(STATIC),$(BUILD)/corral-dyn)
# corrald, the daemon hosting many VMs (src/daemon/; main.c is its own)
CORRALD := $(BUILD)/corrald

# Test programs: tests/<suite>/t_*.c, each linked with libcorral.a.
# Test scripts: tests/<suite>/t_*.sh. Both print "N passed, N failed".
TEST_SRC := $(sort $(wildcard tests/*/t_*.c))
TEST_BIN := $(TEST_SRC:%.c=$(BUILD)/%)
TEST_SH  := $(sort $(wildcard tests/*/t_*.sh))
# Benchmark programs linked with the library: bench/<name>.c but iob.c
# (a guest program, built by bench/io.sh).
BENCH_SRC := $(filter-out bench/iob.c,$(sort $(wildcard bench/*.c)))
BENCH_BIN := $(BENCH_SRC:%.c=$(BUILD)/%)

# Helper programs the tests run as guests (built natively, run in both worlds)
GUEST_SRC := $(sort $(wildcard tests/progs/*.c))
GUEST_BIN := $(GUEST_SRC:%.c=$(BUILD)/%)

RUNC    := $(BUILD)/corral-runc
comma   := ,

all: $(if $(CLI_SRC),$(CORRAL) $(CORRAL_DYN) $(RUNC) $(CORRALD))

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

# The SSE unit reads the host's exception flags after a host sqrt, never
# errno: without math errno the compiler emits the instruction itself
# (same result, same flags) and libm is not needed at run time.
$(BUILD)/src/cpu/sse_fp.o: CFLAGS += -fno-math-errno

$(BUILD)/%.o: %.S
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# corral is linked statically (-static-pie: no dynamic loader, no symbol
# binding, ASLR kept): a restore reaches the guest's first instruction with
# 26 page faults and 1.3 ms of CPU fewer (bench/snapshot.sh beside
# corral-dyn, docs/benchmarks.md).
# A static process cannot load libmicrohttpd or libslirp, so corral-dyn,
# the same program linked dynamically, is built and installed beside it:
# corral executes it at once when a command line needs either library
# (--api-sock, --net user, --incoming, --gdb, a snapshot with a user
# network: cli_exec_dynamic). STATIC= links corral dynamically and builds
# no corral-dyn (the sanitizer builds do so).
STATIC_LDLIBS = $(filter-out -Wl$(comma)-Bstatic -Wl$(comma)-Bdynamic -lmicrohttpd,$(LDLIBS))

ifneq ($(STATIC),)
$(CORRAL): $(CLI_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -static-pie -o $@ $(CLI_OBJ) $(LIB) $(STATIC_LDLIBS)

$(CORRAL_DYN): $(CLI_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(LIB) $(LDLIBS)
else
$(CORRAL): $(CLI_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(LIB) $(LDLIBS)
endif

$(CORRALD): $(BUILD)/src/daemon/main.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# corral-runc: corral's code, which takes the OCI runtime's command line
# when started under that name, linked statically: a guest's execve starts
# it again inside the container's root, where no host libraries are.
# (The sanitizer build links it as corral, dynamically.)
# Its own main (built with CORRAL_RUNC_ONLY) knows exec and oci alone, so
# nothing of the system VMs' control API (libmicrohttpd) is linked in.
RUNC_OBJ := $(BUILD)/src/cli/main_runc.o $(BUILD)/src/cli/exec.o $(BUILD)/src/cli/args.o $(BUILD)/src/cli/oci.o

$(BUILD)/src/cli/main_runc.o: src/cli/main.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -DCORRAL_RUNC_ONLY -MMD -MP -c -o $@ $<

$(RUNC): $(CLI_OBJ) $(RUNC_OBJ) $(LIB)
ifeq ($(SANITIZE),)
	$(CC) $(LDFLAGS) -static -o $@ $(RUNC_OBJ) $(LIB) $(filter-out -Wl$(comma)-Bstatic -Wl$(comma)-Bdynamic -lmicrohttpd,$(LDLIBS))
else
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(LIB) $(LDLIBS)
endif

$(BUILD)/tests/%: tests/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -MMD -MP $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# Guest programs are ordinary Linux programs: no sanitizers, built static
# so that they run the same natively and under corral.
$(BUILD)/tests/progs/%: tests/progs/%.c
	@mkdir -p $(dir $@)
	gcc -O2 -g -static -pthread -Wall -Werror -o $@ $< -lm

tests: $(TEST_BIN) $(GUEST_BIN) $(BENCH_BIN) $(if $(CLI_SRC),$(CORRAL) $(CORRAL_DYN) $(RUNC) $(CORRALD))

# The default suite: fast tests only (long runs are the opt-in targets below).
# The sanitizer pass counts the nested kvm machine (tests/kvm/t_nested.sh)
# as a skip: the normal pass runs it.
check: tests
	@CORRAL=$(abspath $(CORRAL)) BUILD=$(abspath $(BUILD)) CORRAL_SANITIZED=$(SANITIZE) \
		sh tests/run.sh $(TEST_BIN) $(TEST_SH)

# Opt-in long runs
# ThreadSanitizer over the guests that run several vCPUs on threads of
# their own, and a process VM's guest threads beside split LOCK'd
# operations (tests/tsan.supp: the guest's own races on its RAM)
check-tsan:
	$(MAKE) SANITIZE=thread tests
	@CORRAL=$(abspath build-tsan/corral) BUILD=$(abspath build-tsan) CORRAL_SANITIZED=thread CORRAL_TEST_SLOW=5 CORRAL_SMP_ROUNDS=1 \
		TSAN_OPTIONS="suppressions=$(abspath tests/tsan.supp)" sh tests/run.sh tests/guests/t_smp.sh tests/process/t_buslock.sh

check-cpu-full: tests
	@CORRAL=$(abspath $(CORRAL)) BUILD=$(abspath $(BUILD)) CORRAL_FULL=1 sh tests/run.sh $(filter $(BUILD)/tests/cpu/%,$(TEST_BIN))

$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -MMD -MP $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# vm_pause's latency (bench/pause.c)
bench-pause: $(BUILD)/bench/pause
	$(BUILD)/bench/pause

# The kvm engine in full on a real /dev/kvm, or where there is none inside
# the nested test machine (tools/mknested.sh, tests/kvm/t_nested.sh; the
# suites: tests/kvm/suites.sh): corral info, the tiny guests, Debian booting
# with 1, 2 and 4 vCPUs, its virtio disk and user network, snapshots and
# live migration across engines, Debian's boot handed between engines.
# `make check` runs most of them, some in shorter forms (its normal pass:
# NESTED_DEFAULT in tests/kvm/t_nested.sh; NESTED_SUITES picks others).
# All of them take about 20 minutes here, so the machines' overall limit is
# an hour (CORRAL_NESTED_TIMEOUT).
NESTED_ALL ?= info,migrate,snapdeb,net,blk,boot1,boot2,boot4,snap,handover,guests
check-kvm-nested: tests
	@CORRAL=$(abspath $(CORRAL)) BUILD=$(abspath $(BUILD)) NESTED_SUITES=$(NESTED_ALL) \
		CORRAL_NESTED_TIMEOUT=$${CORRAL_NESTED_TIMEOUT:-3600} sh tests/run.sh tests/kvm/t_nested.sh

# The OCI runtime's tests alone (they are in `make check` too)
check-oci: tests
	@CORRAL=$(abspath $(CORRAL)) BUILD=$(abspath $(BUILD)) sh tests/run.sh $(wildcard tests/oci/t_*.sh)

bench-oci: $(RUNC)
	@BUILD=$(abspath $(BUILD)) bash bench/oci.sh

# corrald's density: N idle busybox VMs through its API, cold boots beside
# clones (bench/density.sh; N=200 by default, N=20 for a quick run)
bench-density: $(CORRAL) $(CORRAL_DYN) $(CORRALD)
	@CORRAL=$(abspath $(CORRAL)) bash bench/density.sh
# Snapshots: restore, save, clone rate and memory, beside QEMU (bench/snapshot.sh)
bench-snapshot: $(CORRAL) $(CORRAL_DYN)
	@CORRAL=$(abspath $(CORRAL)) bash bench/snapshot.sh
# Live migration beside QEMU TCG (bench/migrate.sh), the GDB stub's cost
# with no debugger (bench/gdb.sh), nested kvm beside emu (bench/nested.sh)
bench-migrate: tests
	@CORRAL=$(abspath $(CORRAL)) BUILD=$(abspath $(BUILD)) bash bench/migrate.sh
bench-gdb: tests
	@CORRAL=$(abspath $(CORRAL)) BUILD=$(abspath $(BUILD)) bash bench/gdb.sh
bench-nested: tests
	@CORRAL=$(abspath $(CORRAL)) BUILD=$(abspath $(BUILD)) bash bench/nested.sh
bench-replay: tests
	@CORRAL=$(abspath $(CORRAL)) BUILD=$(abspath $(BUILD)) bash bench/replay.sh

# Multi-core guests on emu: N jobs on N vCPUs, --accel-threads single and
# multi beside QEMU TCG with the same -smp (bench/smp.sh)
bench-smp: $(CORRAL) $(CORRAL_DYN)
	@CORRAL=$(abspath $(CORRAL)) bash bench/smp.sh

# The cost of an aligned LOCK'd operation (bench/atomics.sh; CORRAL_BASE=
# another build to compare with)
bench-atomics: $(CORRAL)
	@CORRAL=$(abspath $(CORRAL)) sh bench/atomics.sh

# User-space work inside a system VM beside QEMU TCG (bench/guest.sh)
bench-guest: $(CORRAL) $(CORRAL_DYN)
	@CORRAL=$(abspath $(CORRAL)) bash bench/guest.sh

# process VM checkpoint and restore beside CRIU (bench/checkpoint.sh)
bench-checkpoint: $(CORRAL) $(CORRAL_DYN) $(GUEST_BIN)
	@CORRAL=$(abspath $(CORRAL)) BUILD=$(abspath $(BUILD)) bash bench/checkpoint.sh

bench: $(CORRAL) $(CORRAL_DYN) $(BENCH_BIN)
	@$(BUILD)/bench/pause
	@CORRAL=$(abspath $(CORRAL)) bash bench/run.sh
	@CORRAL=$(abspath $(CORRAL)) bash bench/boot.sh
	@CORRAL=$(abspath $(CORRAL)) bash bench/io.sh
	@CORRAL=$(abspath $(CORRAL)) BUILD=$(abspath $(BUILD)) bash bench/startup.sh
	@CORRAL=$(abspath $(CORRAL)) bash bench/snapshot.sh
	@CORRAL=$(abspath $(CORRAL)) BUILD=$(abspath $(BUILD)) bash bench/checkpoint.sh

format:
	clang-format -i $(LIB_SRC) $(CLI_SRC) $(wildcard src/*/*.h) $(TEST_SRC) $(BENCH_SRC)

clean:
	rm -rf build build-san build-tsan build-arm64

.PHONY: all tests check check-cpu-full check-tsan check-kvm-nested check-oci bench bench-pause bench-oci bench-density bench-snapshot bench-checkpoint bench-migrate bench-gdb bench-nested bench-smp bench-atomics bench-replay bench-guest format clean
.DELETE_ON_ERROR:

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(BUILD)/src/daemon/main.d $(TEST_BIN:=.d) $(BENCH_BIN:=.d)

# ---- fuzzing (opt-in) ----
# `make fuzz` builds libFuzzer targets with clang (Debian: clang,
# libclang-rt-14-dev), compiling the library sources itself with the fuzzer
# and sanitizer flags. `make fuzz-run FUZZ_SECONDS=300` fuzzes from the seeds
# and fails on a crash, whose input lands in tests/fuzz/regress/cpu/.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 300
FUZZ_BUILD   := build-fuzz
FUZZ_CFLAGS  := -std=gnu11 -D_GNU_SOURCE -Isrc -Itests -g -O1 -fno-omit-frame-pointer \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
# clang 14 has no __builtin_roundeven; glibc's roundeven() is the same function.
FUZZ_CFLAGS  += -include math.h -D__builtin_roundeven=roundeven
FUZZ_CPU_SRC := $(sort $(wildcard src/cpu/*.c src/machine/*.c)) src/state/stream.c

$(FUZZ_BUILD)/fuzz_cpu: tests/fuzz/fuzz_cpu.c tests/fuzz/fuzz_cpu.h $(FUZZ_CPU_SRC) $(wildcard src/cpu/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ tests/fuzz/fuzz_cpu.c $(FUZZ_CPU_SRC) -pthread -lm -lz

fuzz: $(FUZZ_BUILD)/fuzz_cpu

fuzz-run: $(FUZZ_BUILD)/fuzz_cpu
	@mkdir -p $(FUZZ_BUILD)/corpus-cpu tests/fuzz/regress/cpu
	$(FUZZ_BUILD)/fuzz_cpu -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=4096 \
		-artifact_prefix=tests/fuzz/regress/cpu/ $(FUZZ_BUILD)/corpus-cpu tests/fuzz/seeds/cpu

fuzz-clean:
	rm -rf $(FUZZ_BUILD)

clean: fuzz-clean

.PHONY: fuzz fuzz-run fuzz-clean

# ---- boot fuzzing ----
# The Linux loader decompresses bzImage payloads with the system libraries.
# Linked statically (Debian's -dev packages ship the archives): a process
# without their dynamic relocations starts faster and keeps about 0.4 MiB
# less resident (bench/startup.sh). Rebuild corral after a security update
# of these libraries. DYNAMIC_LIBS=1 links them dynamically.
# vm/config_json.c reads and writes VM configurations with jansson
# (Debian: libjansson-dev).
ifeq ($(DYNAMIC_LIBS),)
LDLIBS += -Wl,-Bstatic -lz -llzma -lzstd -llz4 -lseccomp -ljansson -Wl,-Bdynamic
else
LDLIBS += -lz -llzma -lzstd -llz4 -lseccomp -ljansson
endif
# The control API (src/api/api.c) serves HTTP with libmicrohttpd
# (Debian: libmicrohttpd-dev for the header, libmicrohttpd12 at run time),
# loaded with dlopen when a VM serves its API: linked in, it and the GnuTLS
# it pulls in would cost every corral start-up (bench/snapshot.sh).
# User-mode networking: src/backend/slirp.c loads libslirp.so.0 with dlopen
# when a VM asks for it (the headers come from libslirp-dev).
LDLIBS += -ldl -lc -lm
# `make fuzz-boot` builds a libFuzzer target over boot_linux's parsing (the
# input is the kernel file); `make fuzz-boot-run` fuzzes it from the seeds.
FUZZ_BOOT_SRC := $(sort $(wildcard src/boot/*.c))

$(FUZZ_BUILD)/fuzz_boot: tests/fuzz/fuzz_boot.c $(FUZZ_BOOT_SRC) $(wildcard src/boot/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ tests/fuzz/fuzz_boot.c $(FUZZ_BOOT_SRC) -lz -llzma -lzstd -llz4

fuzz: $(FUZZ_BUILD)/fuzz_boot

fuzz-boot-run: $(FUZZ_BUILD)/fuzz_boot
	@mkdir -p $(FUZZ_BUILD)/corpus-boot tests/fuzz/regress/boot
	$(FUZZ_BUILD)/fuzz_boot -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=4096 \
		-artifact_prefix=tests/fuzz/regress/boot/ $(FUZZ_BUILD)/corpus-boot tests/fuzz/seeds/boot

.PHONY: fuzz-boot-run

# ---- tiny guests ----
# tests/guests/*.S: flat 64-bit guests for `corral run --flat` (see
# tests/guests/guest.h), assembled with the x86-64 GNU assembler and linked
# at 1 MiB to raw binaries. tests/guests/t_guests.sh runs them.
GUESTS_AS  ?= as
GUESTS_LD  ?= ld
GUESTS_SRC := $(sort $(wildcard tests/guests/*.S))
GUESTS_BIN := $(GUESTS_SRC:%.S=$(BUILD)/%.bin)

# Under ThreadSanitizer (build-tsan/, make check-tsan) the SMP guests run
# a tenth of their rounds: every access is instrumented there.
GUESTS_CPPFLAGS := $(if $(filter thread,$(SANITIZE)),-DSMP_SHORT)
$(BUILD)/tests/guests/%.bin: tests/guests/%.S $(wildcard tests/guests/*.h tests/guests/*.inc)
	@mkdir -p $(dir $@)
	gcc -E -P -Itests/guests $(GUESTS_CPPFLAGS) -o $(@:.bin=.s) $<
	$(GUESTS_AS) --64 -o $(@:.bin=.o) $(@:.bin=.s)
	$(GUESTS_LD) -m elf_x86_64 -Ttext 0x100000 --oformat binary -e _start -o $@ $(@:.bin=.o)

tests: $(GUESTS_BIN)
bench: $(GUESTS_BIN)

# Multiboot test kernels (tests/guests/mb, see mb.h): the same 32-bit code
# as an i386 ELF32, an x86-64 ELF64 and a flat a.out-kludge image, and a
# flat Multiboot 2 kernel (mb2.bin), laid out by link.ld. tests/guests/t_multiboot.sh boots them.
MB_DIR  := $(BUILD)/tests/guests/mb
MB_BIN  := $(MB_DIR)/elf32.elf $(MB_DIR)/elf64.elf $(MB_DIR)/aout.bin $(MB_DIR)/mb2.bin
MB_DEPS := tests/guests/mb/mb.h tests/guests/mb/link.ld

$(MB_DIR)/%.s: tests/guests/mb/%.S $(MB_DEPS)
	@mkdir -p $(dir $@)
	gcc -E -P -Itests/guests/mb -o $@ $<

$(MB_DIR)/elf32.elf: $(MB_DIR)/elf32.s
	$(GUESTS_AS) --32 -o $(@:.elf=.o) $<
	$(GUESTS_LD) -m elf_i386 -T tests/guests/mb/link.ld -o $@ $(@:.elf=.o)

$(MB_DIR)/elf64.elf: $(MB_DIR)/elf64.s
	$(GUESTS_AS) --64 -o $(@:.elf=.o) $<
	$(GUESTS_LD) -m elf_x86_64 -z max-page-size=0x1000 -T tests/guests/mb/link.ld -o $@ $(@:.elf=.o)

$(MB_DIR)/%.bin: $(MB_DIR)/%.s
	$(GUESTS_AS) --32 -o $(@:.bin=.o) $<
	$(GUESTS_LD) -m elf_i386 -T tests/guests/mb/link.ld --oformat binary -o $@ $(@:.bin=.o)

tests: $(MB_BIN)

# The devices' libFuzzer target (opt-in, like the others): `make fuzz-dev-run`.
FUZZ_DEV_SRC := $(sort $(wildcard src/machine/*.c)) src/state/stream.c

$(FUZZ_BUILD)/fuzz_dev: tests/fuzz/fuzz_dev.c $(FUZZ_DEV_SRC) $(wildcard src/machine/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ tests/fuzz/fuzz_dev.c $(FUZZ_DEV_SRC) -lz

fuzz: $(FUZZ_BUILD)/fuzz_dev

fuzz-dev-run: $(FUZZ_BUILD)/fuzz_dev
	@mkdir -p $(FUZZ_BUILD)/corpus-dev tests/fuzz/regress/dev
	$(FUZZ_BUILD)/fuzz_dev -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=4096 \
		-artifact_prefix=tests/fuzz/regress/dev/ $(FUZZ_BUILD)/corpus-dev

.PHONY: fuzz-dev-run

# The system VM snapshot loader (opt-in): the input is a snapshot's state
# file (tests/fuzz/fuzz_vmstate.h). `make fuzz-vmstate-run`; crash inputs
# land in tests/fuzz/regress/vmstate/, which t_regress_vmstate replays with
# the seeds (snapshots of the tick guest, tests/guests/tick.S).
FUZZ_VMSTATE_SRC := $(filter-out src/process/% src/api/%,$(LIB_SRC))
$(FUZZ_BUILD)/fuzz_vmstate: tests/fuzz/fuzz_vmstate.c tests/fuzz/fuzz_vmstate.h $(FUZZ_VMSTATE_SRC)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ tests/fuzz/fuzz_vmstate.c $(FUZZ_VMSTATE_SRC) \
		-lz -llzma -lzstd -llz4 -ljansson -ldl -lm -pthread

fuzz: $(FUZZ_BUILD)/fuzz_vmstate

fuzz-vmstate-run: $(FUZZ_BUILD)/fuzz_vmstate
	@mkdir -p $(FUZZ_BUILD)/corpus-vmstate tests/fuzz/regress/vmstate
	$(FUZZ_BUILD)/fuzz_vmstate -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=4096 -max_len=65536 \
		-artifact_prefix=tests/fuzz/regress/vmstate/ $(FUZZ_BUILD)/corpus-vmstate tests/fuzz/seeds/vmstate

.PHONY: fuzz-vmstate-run

# The incoming migration stream's parser (opt-in): `make fuzz-migrate-run`;
# crash inputs land in tests/fuzz/regress/migrate/, which
# t_regress_migrate replays with the seeds (a stream of the tick guest and
# damaged copies).
$(FUZZ_BUILD)/fuzz_migrate: tests/fuzz/fuzz_migrate.c tests/fuzz/fuzz_migrate.h $(FUZZ_VMSTATE_SRC)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ tests/fuzz/fuzz_migrate.c $(FUZZ_VMSTATE_SRC) \
		-lz -llzma -lzstd -llz4 -ljansson -lseccomp -ldl -lm -pthread

fuzz: $(FUZZ_BUILD)/fuzz_migrate

fuzz-migrate-run: $(FUZZ_BUILD)/fuzz_migrate
	@mkdir -p $(FUZZ_BUILD)/corpus-migrate tests/fuzz/regress/migrate
	$(FUZZ_BUILD)/fuzz_migrate -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=4096 -max_len=262144 \
		-artifact_prefix=tests/fuzz/regress/migrate/ $(FUZZ_BUILD)/corpus-migrate tests/fuzz/seeds/migrate

.PHONY: fuzz-migrate-run

# The replay file's parser and player (opt-in): `make fuzz-replay-run`;
# crash inputs land in tests/fuzz/regress/replay/, which t_regress_replay
# replays with the seeds (recordings of the Debian guest, damaged copies).
FUZZ_REPLAY_SRC := $(sort $(wildcard src/machine/*.c)) src/state/stream.c
$(FUZZ_BUILD)/fuzz_replay: tests/fuzz/fuzz_replay.c tests/fuzz/fuzz_replay.h $(FUZZ_REPLAY_SRC)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ tests/fuzz/fuzz_replay.c $(FUZZ_REPLAY_SRC) -lz -lm -pthread

fuzz: $(FUZZ_BUILD)/fuzz_replay

fuzz-replay-run: $(FUZZ_BUILD)/fuzz_replay
	@mkdir -p $(FUZZ_BUILD)/corpus-replay tests/fuzz/regress/replay
	$(FUZZ_BUILD)/fuzz_replay -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=4096 -max_len=65536 \
		-artifact_prefix=tests/fuzz/regress/replay/ $(FUZZ_BUILD)/corpus-replay tests/fuzz/seeds/replay

.PHONY: fuzz-replay-run

# ---- portability (opt-in): corral built for aarch64, run under qemu-aarch64 ----
# `make check-aarch64` cross-builds corral with Debian's gcc-aarch64-linux-gnu
# (tools/setup.sh --aarch64 installs it and the arm64 libraries) and runs the
# busybox process-VM tests with that corral under qemu-user's aarch64
# emulator: x86-64 guest code on corral's portable interpreter on an
# (emulated) aarch64 host, compared with native x86-64 runs; and a process
# VM checkpointed by the host's corral and restored by the aarch64 one, and
# the other way round (tests/aarch64/ckpt_arch.sh).
# The program runs on Debian's arm64 multiarch libraries (libc6:arm64 and
# the -dev packages' libraries), found by qemu-aarch64 under / like a native
# arm64 system; the cross toolchain's older libc6-arm64-cross hangs in fork
# under qemu-aarch64 7.2.
ARM64_BUILD := build-arm64

$(ARM64_BUILD)/corral-qemu: FORCE
	@test -x "$$(command -v aarch64-linux-gnu-gcc)" || \
		{ echo "check-aarch64: aarch64-linux-gnu-gcc not found: run tools/setup.sh --aarch64" >&2; exit 1; }
	$(MAKE) CC=aarch64-linux-gnu-gcc BUILD=$(ARM64_BUILD) SANITIZE= STATIC= $(ARM64_BUILD)/corral
	@printf '#!/bin/sh\nCORRAL_SELF_EXE=%s exec qemu-aarch64 %s "$$@"\n' '$(abspath $@)' '$(abspath $(ARM64_BUILD)/corral)' >$@
	@chmod +x $@

check-aarch64: $(ARM64_BUILD)/corral-qemu $(BUILD)/corral $(BUILD)/tests/progs/ckpt_prog
	@file -L $(ARM64_BUILD)/corral | grep -q 'ARM aarch64' || { echo "check-aarch64: not an aarch64 build" >&2; exit 1; }
	@CORRAL=$(abspath $(ARM64_BUILD)/corral-qemu) BUILD=$(abspath $(ARM64_BUILD)) \
		NATIVE_CORRAL=$(abspath $(BUILD)/corral) NATIVE_BUILD=$(abspath $(BUILD)) \
		sh tests/run.sh tests/process/t_busybox.sh tests/aarch64/ckpt_arch.sh

FORCE:
.PHONY: check-aarch64 FORCE
# virtio's libFuzzer targets (opt-in): the queue walker, and virtio-blk
# through its PCI transport. `make fuzz-virtio-run` fuzzes each for
# FUZZ_SECONDS from the seeds (tests/fuzz/mkseeds_virtio.py); crash inputs
# land in tests/fuzz/regress/{virtq,blk}/, which t_virtio_regress replays.
FUZZ_VIRTIO_SRC := $(sort $(wildcard src/machine/*.c src/virtio/*.c src/backend/*.c)) src/state/stream.c
FUZZ_VIRTIO_LIBS := -lz -ldl -pthread
FUZZ_VIRTIO_DEP := tests/fuzz/fuzz_virtio.h $(FUZZ_VIRTIO_SRC) $(wildcard src/machine/*.h src/virtio/*.h) \
                   src/backend/block.h

$(FUZZ_BUILD)/fuzz_virtq: tests/fuzz/fuzz_virtq.c $(FUZZ_VIRTIO_DEP)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ tests/fuzz/fuzz_virtq.c $(FUZZ_VIRTIO_SRC) $(FUZZ_VIRTIO_LIBS)

$(FUZZ_BUILD)/fuzz_blk: tests/fuzz/fuzz_blk.c $(FUZZ_VIRTIO_DEP)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ tests/fuzz/fuzz_blk.c $(FUZZ_VIRTIO_SRC) $(FUZZ_VIRTIO_LIBS)

$(FUZZ_BUILD)/fuzz_net: tests/fuzz/fuzz_net.c $(FUZZ_VIRTIO_DEP) src/backend/net.h src/backend/net_impl.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ tests/fuzz/fuzz_net.c $(FUZZ_VIRTIO_SRC) $(FUZZ_VIRTIO_LIBS)

fuzz: $(FUZZ_BUILD)/fuzz_virtq $(FUZZ_BUILD)/fuzz_blk $(FUZZ_BUILD)/fuzz_net

fuzz-virtio-run: $(FUZZ_BUILD)/fuzz_virtq $(FUZZ_BUILD)/fuzz_blk $(FUZZ_BUILD)/fuzz_net
	@mkdir -p $(FUZZ_BUILD)/corpus-virtq $(FUZZ_BUILD)/corpus-blk $(FUZZ_BUILD)/corpus-net \
		tests/fuzz/regress/virtq tests/fuzz/regress/blk tests/fuzz/regress/net
	$(FUZZ_BUILD)/fuzz_virtq -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=4096 \
		-artifact_prefix=tests/fuzz/regress/virtq/ $(FUZZ_BUILD)/corpus-virtq tests/fuzz/seeds/virtq
	$(FUZZ_BUILD)/fuzz_blk -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=4096 \
		-artifact_prefix=tests/fuzz/regress/blk/ $(FUZZ_BUILD)/corpus-blk tests/fuzz/seeds/blk
	$(FUZZ_BUILD)/fuzz_net -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=4096 \
		-artifact_prefix=tests/fuzz/regress/net/ $(FUZZ_BUILD)/corpus-net tests/fuzz/seeds/net

.PHONY: fuzz-virtio-run
# The qcow2 parser's libFuzzer target (opt-in): the input is an image file,
# opened, read, checked, written (on a copy) and checked again.
# `make fuzz-qcow2-run FUZZ_SECONDS=120`; crash inputs land in
# tests/fuzz/regress/qcow2/, which make check replays with the seeds.
FUZZ_QCOW2_SRC := $(sort $(wildcard src/backend/*.c))

$(FUZZ_BUILD)/fuzz_qcow2: tests/fuzz/fuzz_qcow2.c tests/fuzz/fuzz_qcow2.h $(FUZZ_QCOW2_SRC) $(wildcard src/backend/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ tests/fuzz/fuzz_qcow2.c $(FUZZ_QCOW2_SRC) -lz -pthread

fuzz: $(FUZZ_BUILD)/fuzz_qcow2

fuzz-qcow2-run: $(FUZZ_BUILD)/fuzz_qcow2
	@mkdir -p $(FUZZ_BUILD)/corpus-qcow2 tests/fuzz/regress/qcow2
	$(FUZZ_BUILD)/fuzz_qcow2 -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=4096 -max_len=65536 \
		-artifact_prefix=tests/fuzz/regress/qcow2/ $(FUZZ_BUILD)/corpus-qcow2 tests/fuzz/seeds/qcow2

.PHONY: fuzz-qcow2-run

# The state stream's reader (opt-in): the input is a state file.
# `make fuzz-state-run FUZZ_SECONDS=120`; crash inputs land in
# tests/fuzz/regress/state/, which make check replays with the seeds.
$(FUZZ_BUILD)/fuzz_state: tests/fuzz/fuzz_state.c tests/fuzz/fuzz_state.h src/state/stream.c src/state/stream.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION -o $@ tests/fuzz/fuzz_state.c src/state/stream.c -lz

fuzz: $(FUZZ_BUILD)/fuzz_state

fuzz-state-run: $(FUZZ_BUILD)/fuzz_state
	@mkdir -p $(FUZZ_BUILD)/corpus-state tests/fuzz/regress/state
	$(FUZZ_BUILD)/fuzz_state -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=4096 -max_len=65536 \
		-artifact_prefix=tests/fuzz/regress/state/ $(FUZZ_BUILD)/corpus-state tests/fuzz/seeds/state

.PHONY: fuzz-state-run

# A process VM checkpoint's parser (opt-in): the input is a checkpoint's
# state file. `make fuzz-ckpt-run FUZZ_SECONDS=120`; crash inputs land in
# tests/fuzz/regress/ckpt/, which make check replays with the seeds.
FUZZ_CKPT_SRC := src/process/ckpt_image.c src/state/stream.c src/state/cpu_fields.c
$(FUZZ_BUILD)/fuzz_ckpt: tests/fuzz/fuzz_ckpt.c tests/fuzz/fuzz_ckpt.h $(FUZZ_CKPT_SRC) src/process/ckpt.h src/state/stream.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ tests/fuzz/fuzz_ckpt.c $(FUZZ_CKPT_SRC) -lz

fuzz: $(FUZZ_BUILD)/fuzz_ckpt

fuzz-ckpt-run: $(FUZZ_BUILD)/fuzz_ckpt
	@mkdir -p $(FUZZ_BUILD)/corpus-ckpt tests/fuzz/regress/ckpt
	$(FUZZ_BUILD)/fuzz_ckpt -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=4096 -max_len=65536 \
		-artifact_prefix=tests/fuzz/regress/ckpt/ $(FUZZ_BUILD)/corpus-ckpt tests/fuzz/seeds/ckpt

.PHONY: fuzz-ckpt-run

# ---- installing ----
# `make install` (PREFIX=/usr/local, DESTDIR for staging) puts corral, the
# guest kit's tools as corral-mkguest and corral-mkrootfs, the man pages
# (docs/man/*.scd, turned into roff by scdoc) and the bash completion in
# place; `make uninstall` removes exactly those files. corral-runc (the OCI
# runtime) and corrald (the daemon) are installed beside corral, corrald's
# systemd units (systemd/) in SYSTEMDDIR.
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
MANDIR      ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
SYSTEMDDIR  ?= $(PREFIX)/lib/systemd/system
INSTALL     ?= install
SCDOC       ?= scdoc
CORRAL_RUNC ?= $(RUNC)
INSTALL_BIN := $(CORRAL) $(CORRAL_DYN) $(CORRALD) $(CORRAL_RUNC)
# The guest kit's scripts, installed under the names corral's messages use.
INSTALL_TOOLS := tools/mkguest.sh:corral-mkguest tools/mkrootfs.sh:corral-mkrootfs
MAN_SRC     := $(sort $(wildcard docs/man/*.scd))
MAN_PAGES   := $(MAN_SRC:docs/man/%.scd=$(BUILD)/man/%)

$(BUILD)/man/%: docs/man/%.scd
	@mkdir -p $(dir $@)
	$(SCDOC) <$< >$@

man: $(MAN_PAGES)

install: $(INSTALL_BIN) $(MAN_PAGES)
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR)
	$(INSTALL) -m 755 $(INSTALL_BIN) $(DESTDIR)$(BINDIR)/
	for t in $(INSTALL_TOOLS); do $(INSTALL) -m 755 $${t%%:*} $(DESTDIR)$(BINDIR)/$${t#*:} || exit 1; done
	$(INSTALL) -m 644 $(MAN_PAGES) $(DESTDIR)$(MANDIR)/man1/
	$(INSTALL) -m 644 completion/corral.bash $(DESTDIR)$(BASHCOMPDIR)/corral
	$(INSTALL) -d $(DESTDIR)$(SYSTEMDDIR)
	sed 's|@BINDIR@|$(BINDIR)|g' systemd/corrald.service >$(DESTDIR)$(SYSTEMDDIR)/corrald.service
	chmod 644 $(DESTDIR)$(SYSTEMDDIR)/corrald.service
	$(INSTALL) -m 644 systemd/corrald.socket $(DESTDIR)$(SYSTEMDDIR)/corrald.socket

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(notdir $(INSTALL_BIN)) $(foreach t,$(INSTALL_TOOLS),$(lastword $(subst :, ,$(t)))))
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MAN_PAGES)))
	rm -f $(DESTDIR)$(BASHCOMPDIR)/corral
	rm -f $(DESTDIR)$(SYSTEMDDIR)/corrald.service $(DESTDIR)$(SYSTEMDDIR)/corrald.socket

# `make deb` builds the Debian package from a copy of the tree (so that
# dpkg-buildpackage writes nowhere else) and leaves it in build-deb/:
# build-deb/corral_VERSION_ARCH.deb. tools/setup.sh --deb installs what it
# needs. `make check-deb` installs that package in a clean Debian 12 root,
# runs it and purges it (tests/install/check_deb.sh).
DEB_BUILD := build-deb

deb:
	@command -v dpkg-buildpackage >/dev/null && command -v dh >/dev/null || \
		{ echo "deb: dpkg-buildpackage or debhelper missing: run tools/setup.sh --deb" >&2; exit 1; }
	rm -rf $(DEB_BUILD) && mkdir -p $(DEB_BUILD)/src/corral
	tar -c --exclude=./.git --exclude='./build*' --exclude=./debian/build . | tar -x -C $(DEB_BUILD)/src/corral
	cd $(DEB_BUILD)/src/corral && dpkg-buildpackage -b -us -uc >../build.log 2>&1 || \
		{ tail -n 30 ../build.log >&2; echo "deb: dpkg-buildpackage failed: see $(DEB_BUILD)/src/build.log" >&2; exit 1; }
	mv $(DEB_BUILD)/src/*.deb $(DEB_BUILD)/src/*.changes $(DEB_BUILD)/src/*.buildinfo $(DEB_BUILD)/
	@ls $(DEB_BUILD)/*.deb

check-deb: deb
	@sh tests/install/check_deb.sh $(DEB_BUILD)

clean: deb-clean
deb-clean:
	rm -rf $(DEB_BUILD) debian/build

.PHONY: man install uninstall deb check-deb deb-clean
