# SPDX-License-Identifier: MIT
# weft — GNU Make build. `make help` lists the entry points; docs/HACKING.md
# explains the rules behind the flags.
#
#   make                      build the native target into build/<target>/
#   make TARGET=linux-aarch64 cross-build (mk/<target>.mk: CC, OS, ARCH, RUN, ...)
#   make DEBUG=1              -O0, k_assert live       -> build/<target>-debug/
#   make SAN=asan|tsan|ubsan  sanitizer build          -> build/<target>-<san>/
#   make test                 deps, all three targets, check-freestanding, pytest,
#                             preemption cases under qemu's SVE CPUs (test-sve),
#                             then the native target under ASan+UBSan (test-san)
#   make demo                 build and run examples/demo.c and examples/host.c (needs only the compiler)
#   make install | uninstall  PREFIX=/usr/local DESTDIR= LIBDIR=$(PREFIX)/lib INCLUDEDIR=...
#   make stress               the suite with --stress, 20 repetitions, procs 1,2,4,8
#   make check-freestanding   prove kern/ is freestanding, for every Linux target
#   make check-template       prove hal/template is a complete port (kern links against it)
#   make lint | format        clang-format check / rewrite
#   make bench                weft against Go, side by side (mk/bench.mk)
#   make clean
#
# CPPFLAGS, CFLAGS and LDFLAGS from the command line or the environment are
# added to weft's own flags; WERROR=1 adds -Werror (on in `make test`).

.SUFFIXES:
.DELETE_ON_ERROR:
MAKEFLAGS += --no-builtin-rules --no-builtin-variables

HOST_ARCH := $(shell uname -m)
NATIVE    := linux-$(HOST_ARCH)
TARGET    ?= $(NATIVE)

ifeq ($(wildcard mk/$(TARGET).mk),)
$(error unknown TARGET=$(TARGET): pick one of $(patsubst mk/%.mk,%,$(filter-out mk/bench.mk,$(wildcard mk/*.mk))))
endif
include mk/$(TARGET).mk
# TSan builds use clang (TSAN_CC) on the native target: the TSan runtime of
# GCC 12 dies beyond 8128 threads and fibers alive at once, and every task
# is a fiber to it, so the cases with 10,000 tasks or more could not run;
# clang 14's runtime has no such limit. `scripts/deps.sh tsan` installs it.
TSAN_CC ?= clang
ifeq ($(SAN)$(TARGET),tsan$(NATIVE))
CC := $(TSAN_CC)
endif

# Targets `make test` requires (pytest reads the same list from WEFT_TARGETS).
# `make test TARGET=x` tests only x.
ifeq ($(origin TARGET),command line)
TEST_TARGETS         ?= $(TARGET)
else
TEST_TARGETS         ?= linux-x86_64 linux-aarch64 windows-x86_64
endif
FREESTANDING_TARGETS ?= linux-x86_64 linux-aarch64 windows-x86_64

# ---- variant and output directory ----------------------------------------

DEBUG ?=
SAN   ?=
VARIANT := $(if $(DEBUG),-debug)$(if $(SAN),-$(SAN))
B       := build/$(TARGET)$(VARIANT)

# Sanitizer builds run F_SCALED counts divided by 10 (the most t_count
# allows): ASan's shadow and TSan's per-task fibers cost memory and time.
ifneq ($(SAN),)
TEST_SCALE := 10
endif

ifeq ($(DEBUG),)
OPT := -O2 -g
else
OPT := -O0 -g -DWEFT_DEBUG
endif

ifeq ($(SAN),)
SANFLAGS :=
else ifeq ($(SAN),asan)
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -DWEFT_SAN_ASAN
else ifeq ($(SAN),tsan)
SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer -DWEFT_SAN_TSAN
else ifeq ($(SAN),ubsan)
SANFLAGS := -fsanitize=undefined -fno-sanitize-recover=all -DWEFT_SAN_UBSAN
else
$(error unknown SAN=$(SAN): use asan, tsan or ubsan)
endif

# ---- version ---------------------------------------------------------------
# include/weft.h is the one place that sets it (WEFT_VERSION_MAJOR/MINOR/PATCH).

weft_version_part = $(shell sed -n 's/^.define WEFT_VERSION_$(1)  *\([0-9][0-9]*\)$$/\1/p' include/weft.h)
VERSION_MAJOR := $(call weft_version_part,MAJOR)
VERSION_MINOR := $(call weft_version_part,MINOR)
VERSION_PATCH := $(call weft_version_part,PATCH)
ifneq ($(words $(VERSION_MAJOR) $(VERSION_MINOR) $(VERSION_PATCH)),3)
$(error include/weft.h: no WEFT_VERSION_MAJOR, _MINOR and _PATCH lines to read the version from)
endif
VERSION := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)

# ---- flags ---------------------------------------------------------------
# Three kinds, in this order on every command line:
#  1. weft's defaults, which the caller may override: OPT, FRAMES, WARN;
#  2. the caller's CPPFLAGS and CFLAGS (LDFLAGS when linking), from the
#     command line or the environment, as a distribution's build passes them
#     (Debian's dpkg-buildflags): additions, never replacements;
#  3. what weft cannot do without, last so that nothing overrides it: the
#     language and freestanding flags of kern, -fPIC, -fvisibility=hidden,
#     -pthread, the sanitizer.
# Include paths come first of all (-I is searched in order), so weft's own
# headers win over an installed weft.h.

# -Werror for development builds only: `make WERROR=1`; `make test` and
# `make stress` turn it on (exported: every build and check they start).
WERROR ?=
ifneq ($(filter test stress,$(MAKECMDGOALS)),)
WERROR := $(or $(WERROR),1)
export WERROR
endif
WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes $(if $(filter 1,$(WERROR)),-Werror)
# Frame pointers everywhere, so that weft_dump can walk a parked task's
# frames (hal.h, hal_ctx_backtrace; docs/API.md "Diagnostics").
FRAMES := -fno-omit-frame-pointer
DEPFLAGS := -MMD -MP
PORT_INC := -I. -Iinclude -Ihal -Ihal/$(OS) -Ihal/$(ARCH)
# Only the weft_* API (WEFT_EXTERN in weft.h) is exported; kern and the
# port stay internal to the library (see the static library below).
VISIBILITY := -fvisibility=hidden

# The compiler's own freestanding headers (stddef.h, stdatomic.h, ...); with
# -nostdinc there is no libc include path at all. Evaluated once, lazily, so
# that goals that need no compiler do not run it.
CC_INCLUDE = $(eval CC_INCLUDE := $$(shell $(CC) -print-file-name=include 2>/dev/null))$(CC_INCLUDE)

# kern/: freestanding C11 (docs/design.md "The freestanding rule").
# check-freestanding compiles with KERN_FS_CFLAGS, the same flags less the
# variant's and the caller's.
KERN_REQ_CFLAGS = -std=c11 -ffreestanding -fno-builtin -fno-stack-protector -fno-common \
                  -nostdinc -isystem $(CC_INCLUDE) $(KERN_IDIRAFTER) $(ARCH_CFLAGS) $(PIC)
KERN_FS_CFLAGS  = $(PORT_INC) $(KERN_REQ_CFLAGS) $(WARN)
KERN_CFLAGS     = $(PORT_INC) $(OPT) $(FRAMES) $(WARN) $(CPPFLAGS) $(CFLAGS) $(KERN_REQ_CFLAGS) \
                  $(VISIBILITY) $(SANFLAGS) $(DEPFLAGS)

# hal/, tests/: hosted C11 with the OS headers.
HOST_REQ_CFLAGS := -std=c11 -D_GNU_SOURCE -pthread
HOST_CFLAGS := $(PORT_INC) $(OPT) $(FRAMES) $(WARN) $(CPPFLAGS) $(CFLAGS) $(HOST_REQ_CFLAGS) \
               $(SANFLAGS) $(DEPFLAGS)
# ARCH_CFLAGS for the port too: on aarch64 it keeps GCC from calling libgcc's
# outline atomics (__aarch64_cas8_relax, ...), which the linker puts in the
# program's .text, where the preemption handler would take a task inside
# them for the program's own code and switch it out half-way through a weft
# call (the timer_many crash). tests/test_weft_calls.py proves that weft's
# code calls nothing in the program's text.
HAL_CFLAGS  := $(HOST_CFLAGS) $(ARCH_CFLAGS) $(PIC) $(VISIBILITY)
# examples/: the public API only.
EXAMPLE_CFLAGS := -Iinclude $(OPT) $(FRAMES) $(WARN) $(CPPFLAGS) $(CFLAGS) $(HOST_REQ_CFLAGS) \
                  $(SANFLAGS) $(DEPFLAGS)

# Linking: the caller's CFLAGS too (as automake does: -flto, -m options,
# -fsanitize must reach the link), then LDFLAGS, then weft's.
WEFT_LDFLAGS := -pthread $(SANFLAGS)
LINK = $(CC) $(CFLAGS) $(LDFLAGS) $(WEFT_LDFLAGS)

# `make V=1` prints whole commands; the default prints one short line each.
ifeq ($(V),1)
Q :=
say :=
else
Q := @
say = @printf '  %-6s %s\n' $(1) $(2);
endif
# The shared library: libweft.so.MAJOR.MINOR.PATCH with SONAME
# libweft.so.MAJOR. An unresolved symbol fails at link time, not at load
# time (sanitizer runtimes resolve from the executable, so not with SAN);
# mk/libweft.map exports weft_* and nothing else (not even the linker's
# __start_weft_text/__stop_weft_text, below).
SONAME := libweft.so.$(VERSION_MAJOR)
SO_MAP := mk/libweft.map
SO_LDFLAGS := -shared -Wl,-soname,$(SONAME) $(if $(SAN),,-Wl,--no-undefined) \
              -Wl,--version-script=$(SO_MAP)

# ---- sources -------------------------------------------------------------
# kern, tests and examples: wildcards, a file is built as soon as it exists.
# The port: the list of its target, HAL_SRCS in mk/<target>.mk (C and
# assembly), so that a second backend of a mechanism (another poller,
# another context switch) is linked only by the targets that name it.

KERN_SRC := $(wildcard kern/*.c)
HAL_SRC  := $(filter %.c,$(HAL_SRCS))
ASM_SRC  := $(filter %.S,$(HAL_SRCS))
TEST_SRC := $(wildcard tests/*.c) $(wildcard tests/*_$(ARCH).S)
DEMO_SRC := examples/demo.c
# Every other examples/*.c is a program of its own: build/<target>/<name>.
EXAMPLE_SRC := $(filter-out $(DEMO_SRC),$(wildcard examples/*.c))

obj = $(patsubst %,$(B)/obj/%.o,$(basename $(1)))
KERN_OBJ := $(call obj,$(KERN_SRC))
HAL_OBJ  := $(call obj,$(HAL_SRC) $(ASM_SRC))
LIB_OBJ  := $(KERN_OBJ) $(HAL_OBJ)
TEST_OBJ := $(call obj,$(TEST_SRC))
DEMO_OBJ := $(call obj,$(DEMO_SRC))

LIBA := $(B)/libweft.a
LIB_RELOC := $(B)/obj/libweft.o
SO_REAL := $(B)/libweft.so.$(VERSION)
LIBSO := $(if $(filter 1,$(SHARED)),$(SO_REAL) $(B)/$(SONAME) $(B)/libweft.so)
# Windows: weft.dll and its import library libweft.dll.a (SHARED := dll).
DLL := $(B)/weft.dll
DLL_IMPLIB := $(B)/libweft.dll.a
LIBDLL := $(if $(filter dll,$(SHARED)),$(DLL) $(DLL_IMPLIB))
WEFT_TEST := $(B)/weft-test$(EXE)
DEMO := $(B)/demo$(EXE)
EXAMPLES := $(patsubst examples/%.c,$(B)/%$(EXE),$(EXAMPLE_SRC))
# Made by a chain of pattern rules, so make would delete them after the
# first build as intermediate files, and the second build would remake them.
.SECONDARY: $(call obj,$(EXAMPLE_SRC))
TARGET_ENV := $(B)/target.env

# ---- build ---------------------------------------------------------------

# weft's own code in one range: every kern and hal object's text sections
# are renamed, so that the linker gathers them in one place, which the
# preemption code uses to never preempt a task inside weft. ELF (POSIX
# ports): the section weft_text, bounded by the linker's __start_weft_text
# and __stop_weft_text (hal/posix/preempt.c). PE (win32): .text$weft_m;
# the PE linker sorts the .text$* groups by name inside .text, so it lies
# between the markers in .text$weft_a and .text$weft_z
# (hal/win32/text_bounds.S). The check fails the build if a text section
# the rename does not know appears.
WEFT_TEXT_SECTIONS := .text .text.unlikely .text.hot .text.startup .text.exit \
                      .text.tsan.module_ctor
WEFT_TEXT_NAME.posix := weft_text
WEFT_TEXT_NAME.win32 := .text$$weft_m
WEFT_TEXT_NAME := $(WEFT_TEXT_NAME.$(OS))
ifneq ($(WEFT_TEXT_NAME),)
define weft_text
@$(OBJCOPY) $(foreach s,$(WEFT_TEXT_SECTIONS),--rename-section '$(s)=$(WEFT_TEXT_NAME)') $@
@if $(OBJDUMP) -h $@ | awk '{print $$2}' | grep -Eq '^\.text(\.|$$)'; then \
    echo "$@: a .text section the weft text rename missed:" >&2; $(OBJDUMP) -h $@ | grep ' \.text' >&2; rm -f $@; exit 1; fi
endef
else
weft_text :=
endif

# tests/plugin/: a shared object with a copy of weft inside, which
# tests/t_embed.c's embed_plugin loads (dlopen, LoadLibrary), runs, stops
# and unloads. -Bsymbolic: its calls go to its own weft even in a program
# that exports weft_* itself (a DLL's calls always do).
PLUGIN := $(if $(filter posix,$(OS)),$(B)/weft-plugin.so,$(B)/weft-plugin.dll)

.PHONY: all lib
all: lib $(WEFT_TEST) $(DEMO) $(EXAMPLES) $(PLUGIN) $(TARGET_ENV)
lib: $(LIBA) $(LIBSO) $(LIBDLL)

# Everything is rebuilt when the build description or the flags change:
# $(FLAGS_FILE) holds the flags of the last build in $(B) and is rewritten
# only when they differ (end of this file), so `make CFLAGS=-O3` after
# `make` rebuilds everything and a second `make` nothing. -Werror is left
# out of it: it changes no output.
FLAGS_FILE := $(B)/flags
BUILD_DEPS := Makefile mk/$(TARGET).mk $(wildcard mk/*.inc) $(FLAGS_FILE)

$(B)/obj/kern/%.o: kern/%.c $(BUILD_DEPS)
	@mkdir -p $(@D)
	$(call say,CC,$<)$(CC) $(KERN_CFLAGS) -c $< -o $@
	$(weft_text)

$(B)/obj/hal/%.o: hal/%.c $(BUILD_DEPS)
	@mkdir -p $(@D)
	$(call say,CC,$<)$(CC) $(HAL_CFLAGS) -c $< -o $@
	$(weft_text)

$(B)/obj/hal/%.o: hal/%.S $(BUILD_DEPS)
	@mkdir -p $(@D)
	$(call say,CC,$<)$(CC) $(HAL_CFLAGS) -c $< -o $@
	$(weft_text)

$(B)/obj/tests/%.o: tests/%.c $(BUILD_DEPS)
	@mkdir -p $(@D)
	$(call say,CC,$<)$(CC) $(HOST_CFLAGS) -c $< -o $@

$(B)/obj/tests/%.o: tests/%.S $(BUILD_DEPS)
	@mkdir -p $(@D)
	$(call say,CC,$<)$(CC) $(HOST_CFLAGS) -c $< -o $@

$(B)/obj/tests/plugin/%.o: tests/plugin/%.c $(BUILD_DEPS)
	@mkdir -p $(@D)
	$(call say,CC,$<)$(CC) $(HOST_CFLAGS) $(PIC) -c $< -o $@

$(B)/obj/examples/%.o: examples/%.c $(BUILD_DEPS)
	@mkdir -p $(@D)
	$(call say,CC,$<)$(CC) $(EXAMPLE_CFLAGS) -c $< -o $@

# Fails the build if $(1) (nm options, then the file) defines a global
# symbol other than weft_*: the library exports the API and nothing else.
define only_weft_exported
@bad=$$($(NM) $(1) | awk 'NF >= 3 && $$3 !~ /^weft_/ {print $$3}'); \
if [ -n "$$bad" ]; then echo "$@: exports names other than weft_*:" $$bad >&2; rm -f $@; exit 1; fi
endef

# The static library is one object: kern and the port linked together
# (ld -r), then every hidden symbol made local, so that kern's k_* and the
# port's hal_* are resolved inside it and a program's own hal_now_ns or
# k_free neither clashes with them nor replaces them. The cost: a program
# that uses weft links all of it (weft_run needs nearly all of it anyway).
$(LIB_RELOC): $(LIB_OBJ)
	$(call say,LD,$@)$(LD) -r -o $@ $^
	$(Q)$(OBJCOPY) $(or $(LIB_LOCALIZE),--localize-hidden) $@
	$(call only_weft_exported,-g --defined-only $@)

$(LIBA): $(LIB_RELOC)
	@rm -f $@
	$(call say,AR,$@)$(AR) rcs $@ $^

$(SO_REAL): $(LIB_OBJ) $(SO_MAP)
	@mkdir -p $(@D)
	$(call say,LINK,$@)$(LINK) $(SO_LDFLAGS) -o $@ $(LIB_OBJ) $(LIBS)
	$(call only_weft_exported,-D --defined-only $@)

# weft.dll is linked from the static library's object, whose only global
# names are weft_* (LIB_LOCALIZE), so exporting every global symbol exports
# the API and nothing else; --exclude-libs keeps the static runtime's
# (winpthreads, libgcc) out of the export table. The check reads the table.
$(DLL): $(LIB_RELOC)
	$(call say,LINK,$@)$(LINK) -shared -Wl,--export-all-symbols -Wl,--exclude-libs,ALL \
	    -Wl,--out-implib,$(DLL_IMPLIB) -o $@ $(LIB_RELOC) $(LIBS)
	@bad=$$($(OBJDUMP) -p $@ | awk '/^\[Ordinal\/Name Pointer\] Table/ {t=1; next} \
	    t && /^\t\[/ {if ($$NF !~ /^weft_/) print $$NF; n++} t && /^$$/ {t=0} \
	    END {if (!n) print "(no exports)"}'); \
	if [ -n "$$bad" ]; then echo "$@: exports names other than weft_*:" $$bad >&2; rm -f $@; exit 1; fi

$(DLL_IMPLIB): $(DLL)

$(B)/$(SONAME): $(SO_REAL)
	$(Q)ln -sf $(notdir $<) $@

$(B)/libweft.so: $(B)/$(SONAME)
	$(Q)ln -sf $(notdir $<) $@

# weft-test's cases call kern's and the port's internals (k_*, hal_*), which
# the libraries keep to themselves: it links the objects. The examples are
# programs like any other and link the static library.
$(WEFT_TEST): $(TEST_OBJ) $(LIB_OBJ)
	$(call say,LINK,$@)$(LINK) -o $@ $(TEST_OBJ) $(LIB_OBJ) $(LIBS)

$(B)/weft-plugin.so: $(B)/obj/tests/plugin/plugin.o $(LIB_RELOC)
	$(call say,LINK,$@)$(LINK) -shared -Wl,-Bsymbolic -o $@ $^ $(LIBS)

$(B)/weft-plugin.dll: $(B)/obj/tests/plugin/plugin.o $(LIB_RELOC)
	$(call say,LINK,$@)$(LINK) -shared -o $@ $^ $(LIBS)

$(DEMO): $(DEMO_OBJ) $(LIBA)
	$(call say,LINK,$@)$(LINK) -o $@ $(DEMO_OBJ) $(LIBA) $(LIBS)

$(B)/%$(EXE): $(B)/obj/examples/%.o $(LIBA)
	$(call say,LINK,$@)$(LINK) -o $@ $< $(LIBA) $(LIBS)

# What the pytest runner needs to know about this build (tests/conftest.py).
$(TARGET_ENV): $(BUILD_DEPS)
	@mkdir -p $(@D)
	@printf '%s\n' 'TARGET=$(TARGET)' 'OS=$(OS)' 'ARCH=$(ARCH)' 'EXE=$(EXE)' \
	    'RUN=$(RUN)' 'TIMEOUT_MULT=$(TEST_TIMEOUT_MULT)' 'TEST_SCALE=$(TEST_SCALE)' \
	    'VARIANT=$(VARIANT)' > $@

-include $(wildcard $(B)/obj/*/*.d $(B)/obj/*/*/*.d)

# ---- install -------------------------------------------------------------
# `make install` (as root, or with DESTDIR= for a package's staging root)
# builds the library if needed and installs, under the usual names:
#   $(INCLUDEDIR)/weft.h
#   $(LIBDIR)/libweft.a
#   $(LIBDIR)/libweft.so.MAJOR.MINOR.PATCH, libweft.so.MAJOR -> it, libweft.so -> that
#   $(PKGCONFIGDIR)/weft.pc   (`pkg-config --cflags --libs [--static] weft`)
# `make uninstall` removes exactly these files.

PREFIX       ?= /usr/local
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DESTDIR      ?=
INSTALL      ?= install

# What a static link of libweft.a needs beyond -lweft (weft.pc's
# Libs.private); a port's mk file may set its own.
PC_LIBS_PRIVATE ?= -pthread
# weft.pc spells its directories from ${prefix} when they lie under it, so
# that `pkg-config --define-prefix` and relocated trees work.
pc_dir = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))
PC_SED := -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(call pc_dir,$(LIBDIR))|' \
          -e 's|@INCLUDEDIR@|$(call pc_dir,$(INCLUDEDIR))|' -e 's|@VERSION@|$(VERSION)|' \
          -e 's|@LIBS_PRIVATE@|$(PC_LIBS_PRIVATE)|'
INSTALLED := $(INCLUDEDIR)/weft.h $(LIBDIR)/libweft.a $(LIBDIR)/libweft.so.$(VERSION) \
             $(LIBDIR)/$(SONAME) $(LIBDIR)/libweft.so $(PKGCONFIGDIR)/weft.pc

.PHONY: install uninstall
ifeq ($(OS),win32)
# windows-x86_64: weft.dll in $(BINDIR), its import library libweft.dll.a and
# libweft.a in $(LIBDIR), weft.h, weft.pc. -lweft finds the import library
# first; a static link passes -static (or names libweft.a) and adds
# `pkg-config --static --libs`. weft.pc defines no WEFT_USING_DLL: calls
# through the import library's thunks work, and the same flags then serve
# a static link (include/weft.h).
BINDIR ?= $(PREFIX)/bin
INSTALLED_WIN := $(BINDIR)/weft.dll $(INCLUDEDIR)/weft.h $(LIBDIR)/libweft.a \
                 $(LIBDIR)/libweft.dll.a $(PKGCONFIGDIR)/weft.pc
install: lib
	$(call say,INSTALL,$(DESTDIR)$(PREFIX))$(INSTALL) -d '$(DESTDIR)$(BINDIR)' \
	    '$(DESTDIR)$(INCLUDEDIR)' '$(DESTDIR)$(LIBDIR)' '$(DESTDIR)$(PKGCONFIGDIR)'
	$(Q)$(INSTALL) -m 755 $(DLL) '$(DESTDIR)$(BINDIR)/weft.dll'
	$(Q)$(INSTALL) -m 644 include/weft.h '$(DESTDIR)$(INCLUDEDIR)/weft.h'
	$(Q)$(INSTALL) -m 644 $(LIBA) '$(DESTDIR)$(LIBDIR)/libweft.a'
	$(Q)$(INSTALL) -m 644 $(DLL_IMPLIB) '$(DESTDIR)$(LIBDIR)/libweft.dll.a'
	$(Q)sed -e '/^#/d' $(PC_SED) weft.pc.in > '$(DESTDIR)$(PKGCONFIGDIR)/weft.pc'
	$(Q)chmod 644 '$(DESTDIR)$(PKGCONFIGDIR)/weft.pc'

uninstall:
	$(call say,RM,$(DESTDIR)$(PREFIX))rm -f $(foreach f,$(INSTALLED_WIN),'$(DESTDIR)$(f)')
else
install: lib
	$(call say,INSTALL,$(DESTDIR)$(PREFIX))$(INSTALL) -d '$(DESTDIR)$(INCLUDEDIR)' \
	    '$(DESTDIR)$(LIBDIR)' '$(DESTDIR)$(PKGCONFIGDIR)'
	$(Q)$(INSTALL) -m 644 include/weft.h '$(DESTDIR)$(INCLUDEDIR)/weft.h'
	$(Q)$(INSTALL) -m 644 $(LIBA) '$(DESTDIR)$(LIBDIR)/libweft.a'
	$(Q)$(INSTALL) -m 644 $(SO_REAL) '$(DESTDIR)$(LIBDIR)/libweft.so.$(VERSION)'
	$(Q)ln -sf libweft.so.$(VERSION) '$(DESTDIR)$(LIBDIR)/$(SONAME)'
	$(Q)ln -sf $(SONAME) '$(DESTDIR)$(LIBDIR)/libweft.so'
	$(Q)sed -e '/^#/d' $(PC_SED) weft.pc.in > '$(DESTDIR)$(PKGCONFIGDIR)/weft.pc'
	$(Q)chmod 644 '$(DESTDIR)$(PKGCONFIGDIR)/weft.pc'

uninstall:
	$(call say,RM,$(DESTDIR)$(PREFIX))rm -f $(foreach f,$(INSTALLED),'$(DESTDIR)$(f)')
endif

# ---- developer entry points ----------------------------------------------

PYTEST_ARGS ?=
# The pytest run: an interpreter that has pytest (/usr/bin/python3 first,
# which is where scripts/deps.sh installs python3-pytest).
define find_python
py=; for p in /usr/bin/python3 $$(type -ap python3 2>/dev/null); do \
    if "$$p" -c 'import pytest' 2>/dev/null; then py=$$p; break; fi; done; \
if [ -z "$$py" ]; then echo "no python3 with pytest: run scripts/deps.sh (as root)" >&2; exit 1; fi
endef
PYTEST = $(find_python); PYTHONDONTWRITEBYTECODE=1 WEFT_TARGETS='$(TEST_TARGETS)' \
    WEFT_VARIANT='$(VARIANT)' "$$py" -m pytest -p no:cacheprovider

NPROC := $(shell nproc 2>/dev/null || echo 2)
SUBMAKE := $(MAKE) --no-print-directory -j$(NPROC)

.PHONY: deps test test-sve test-san stress demo check-freestanding freestanding-env check-template lint format clean help

deps:
	@scripts/deps.sh

build_test_targets = for t in $(TEST_TARGETS); do \
	    echo "== build $$t$(VARIANT)"; \
	    $(SUBMAKE) TARGET=$$t all || exit 1; \
	done

# The regression tests of races and crashes that were fixed: each one failed
# before its fix (most of them in most runs: they force the interleaving)
# and must keep passing many times in a row. `make test` runs each
# REGRESSION_REPEAT more times after the main pass, `make stress`
# STRESS_REGRESSION_REPEAT times with preemption on and off (step 5).
REGRESSION_CASES ?= preempt_spawn_storm preempt_user_handler sched_task_cache \
                    sched_locked_sleep chan_select_close_free timer_one_firer timer_huge \
                    net_close_reuse net_close_race net_wait_fd_shared net_wait_fd_deadline \
                    net_deadline_args block_aba block_abandon block_abandon_host \
                    block_no_eintr iocp_cancel_race block_auto_stall block_auto_spin \
                    block_auto_storm block_auto_fallback block_auto_park
REGRESSION_REPEAT ?= 20
# pytest -k for a list of case names: "a or b or c".
k_expr = $(subst $(eval) , or ,$(strip $(1)))

test:
	@scripts/deps.sh
	@$(build_test_targets)
	@$(MAKE) --no-print-directory check-freestanding
	@$(MAKE) --no-print-directory check-template
	@echo "== lint"
	@$(MAKE) --no-print-directory lint
	@echo "== pytest ($(TEST_TARGETS))"
	@$(PYTEST) tests $(PYTEST_ARGS)
	@echo "== regressions ($(TEST_TARGETS)): x$(REGRESSION_REPEAT) each"
	@$(PYTEST) tests/test_cases.py -k "$(call k_expr,$(REGRESSION_CASES))" --repeat $(REGRESSION_REPEAT) $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory test-sve
	@$(MAKE) --no-print-directory test-san

# The SVE passes of `make test`: the aarch64 suite runs under qemu-user's
# cortex-a72 (no SVE, mk/linux-aarch64.mk), and preemption switches tasks
# inside a signal handler whose frame holds the SVE registers, sized by the
# vector length. So the preemption and scheduler cases run again under each
# of SVE_QEMU_CPUS (tests/conftest.py: WEFT_QEMU_CPU): qemu's max at its
# default 512-bit vectors, and at 2048-bit vectors, where the registers
# spill into an extra_context record and a frame is 13.6 KiB. Only when
# linux-aarch64 is tested under qemu (an arm64 host runs its own CPU).
SVE_QEMU_CPUS ?= max max,sve-default-vector-length=256
SVE_CASES ?= preempt or sched
test-sve:
ifneq ($(and $(filter linux-aarch64,$(TEST_TARGETS)),$(filter-out aarch64,$(HOST_ARCH))),)
	@$(find_python); for c in $(SVE_QEMU_CPUS); do \
	    echo "== pytest linux-aarch64$(VARIANT) -cpu $$c: $(SVE_CASES)"; \
	    PYTHONDONTWRITEBYTECODE=1 WEFT_TARGETS=linux-aarch64 WEFT_VARIANT='$(VARIANT)' \
	        WEFT_QEMU_CPU=$$c "$$py" -m pytest -p no:cacheprovider tests/test_cases.py \
	        -k '$(SVE_CASES)' $(PYTEST_ARGS) || exit 1; \
	done
endif

# The sanitizer passes of `make test` (docs/design.md "Testing"): every case of
# tests/test_cases.py on the native target built with each of TEST_SANS,
# F_SCALED counts divided by 10 (TEST_SCALE above), each case in its own
# process with its timeout as usual. Only when the native target is tested
# and no SAN= was given (`make test SAN=asan` already is such a pass).
# The TSan build runs cooperatively (hal/posix/preempt.c says why): the
# cases that need preemption skip there, as with WEFT_PREEMPT=0.
TEST_SANS ?= asan tsan
test-san:
ifeq ($(SAN)$(filter $(NATIVE),$(TEST_TARGETS)),$(NATIVE))
	@for s in $(TEST_SANS); do \
	    echo "== build $(NATIVE)-$$s"; \
	    $(SUBMAKE) TARGET=$(NATIVE) SAN=$$s all || exit 1; \
	done
	@$(find_python); for s in $(TEST_SANS); do \
	    echo "== pytest $(NATIVE)-$$s"; \
	    PYTHONDONTWRITEBYTECODE=1 WEFT_TARGETS='$(NATIVE)' WEFT_VARIANT=-$$s \
	        "$$py" -m pytest -p no:cacheprovider tests/test_cases.py $(PYTEST_ARGS) || exit 1; \
	done
endif

# `make stress`: the long runs the issues ask for, outside `make test`
# (docs/HACKING.md "Stress"). Each step runs on every target in TEST_TARGETS,
# each case in its own process with its timeout:
#  1. preemption off (WEFT_PREEMPT=0 semantics via .preempt = -1):
#     preempt_off_stress, 40 x STRESS_OFF_MULT weft_runs at procs 1..8;
#  2. the register storm (preempt_regs_long) for 3 x STRESS_MINUTES minutes
#     per target (1 minute per procs value 1, 2, 4, 50 us slices);
#  3. the scheduler, channel, sync, timer, preemption, blocking-call and net
#     cases STRESS_REPEAT times (each case picks its own procs counts,
#     most of them 1, 2, 4 and 8), preemption on;
#  4. the scheduler, channel and sync cases STRESS_OFF_REPEAT times at each
#     of STRESS_PROCS (WEFT_PROCS: the cases that take the default) with
#     WEFT_PREEMPT=0;
#  5. the targeted storms (STORM_CASES) STORM_REPEAT times each, with
#     preemption on and with WEFT_PREEMPT=0, and the other regression tests
#     (REGRESSION_CASES) STRESS_REGRESSION_REPEAT times each with preemption
#     on, STRESS_REGRESSION_OFF_REPEAT times with it off. Twenty runs of
#     a case that fails one run in 8 all pass 7% of the time (0.875^20),
#     which is why step 3 alone is not enough. A storm aims at one race and
#     fails most runs when it is there; 200 runs let a 1-in-10 failure
#     through with odds of 0.9^200, about 1e-9.
# How long each step takes: docs/HACKING.md ("Tests").
STRESS_REPEAT   ?= 20
STRESS_PROCS    ?= 1,2,4,8
STRESS_OFF_MULT ?= 25
STRESS_OFF_REPEAT ?= 10
STRESS_MINUTES  ?= 1
STRESS_CASES    ?= sched_ or chan_ or sync_ or timer_ or preempt_ or block_ or net_
STRESS_OFF_CASES ?= sched_ or chan_ or sync_
STORM_REPEAT    ?= 200
STORM_CASES     ?= preempt_spawn_storm
STRESS_REGRESSION_REPEAT ?= 100
STRESS_REGRESSION_OFF_REPEAT ?= 20
# The step counts are what fits in about 2.5 hours on a 2-core machine with
# the three targets (docs/HACKING.md "Stress" has the times).
stress:
	@scripts/deps.sh
	@$(build_test_targets)
	@echo "== stress 1/5: preemption off, $$((40 * $(STRESS_OFF_MULT))) runs at procs 1..8"
	@export WEFT_STRESS=$(STRESS_OFF_MULT); $(PYTEST) tests/test_cases.py -k preempt_off_stress $(PYTEST_ARGS)
	@echo "== stress 2/5: register storm, $$((3 * $(STRESS_MINUTES))) min per target"
	@export WEFT_STRESS=$$((3 * $(STRESS_MINUTES))); $(PYTEST) tests/test_cases.py --stress -k preempt_regs_long $(PYTEST_ARGS)
	@echo "== stress 3/5: x$(STRESS_REPEAT), preemption on"
	@$(PYTEST) tests/test_cases.py -k "$(STRESS_CASES)" --repeat $(STRESS_REPEAT) $(PYTEST_ARGS)
	@echo "== stress 4/5: preemption off (WEFT_PREEMPT=0), x$(STRESS_OFF_REPEAT) at procs $(STRESS_PROCS)"
	@export WEFT_PREEMPT=0; $(PYTEST) tests/test_cases.py -k "$(STRESS_OFF_CASES)" --repeat $(STRESS_OFF_REPEAT) --procs-list $(STRESS_PROCS) $(PYTEST_ARGS)
	@echo "== stress 5/5: storms x$(STORM_REPEAT), preemption on, then off; regressions x$(STRESS_REGRESSION_REPEAT) on, x$(STRESS_REGRESSION_OFF_REPEAT) off"
	@$(PYTEST) tests/test_cases.py -k "$(call k_expr,$(STORM_CASES))" --repeat $(STORM_REPEAT) $(PYTEST_ARGS)
	@export WEFT_PREEMPT=0; $(PYTEST) tests/test_cases.py -k "$(call k_expr,$(STORM_CASES))" --repeat $(STORM_REPEAT) $(PYTEST_ARGS)
	@$(PYTEST) tests/test_cases.py -k "$(call k_expr,$(filter-out $(STORM_CASES),$(REGRESSION_CASES)))" --repeat $(STRESS_REGRESSION_REPEAT) $(PYTEST_ARGS)
	@export WEFT_PREEMPT=0; $(PYTEST) tests/test_cases.py -k "$(call k_expr,$(filter-out $(STORM_CASES),$(REGRESSION_CASES)))" --repeat $(STRESS_REGRESSION_OFF_REPEAT) $(PYTEST_ARGS)

# Only the compiler of $(TARGET) (the native one by default): the demo
# needs nothing of what the tests use.
demo:
	@scripts/deps.sh demo $(DEPS_GROUP)
	@$(SUBMAKE) TARGET=$(TARGET) $(DEMO) $(B)/host$(EXE)
	@echo "== $(strip $(RUN) $(DEMO))"
	@$(RUN) $(DEMO)
	@echo "== $(strip $(RUN) $(B)/host$(EXE))"
	@$(RUN) $(B)/host$(EXE)

# Every Linux target whose compiler is installed; fails if none could be checked.
check-freestanding:
	@checked=0; failed=0; for t in $(FREESTANDING_TARGETS); do \
	    env=$$($(MAKE) --no-print-directory -s TARGET=$$t freestanding-env) || exit 1; \
	    (eval "$$env"; scripts/check-freestanding.sh); rc=$$?; \
	    if [ $$rc -eq 0 ]; then checked=$$((checked+1)); \
	    elif [ $$rc -ne 3 ]; then failed=$$((failed+1)); fi; \
	done; \
	if [ $$failed -ne 0 ]; then echo "check-freestanding: FAILED on $$failed target(s)"; exit 1; fi; \
	if [ $$checked -eq 0 ]; then echo "check-freestanding: FAILED: no target's compiler is installed"; exit 1; fi; \
	echo "check-freestanding: OK ($$checked target(s))"

# The script's environment for $(TARGET), as shell assignments.
freestanding-env:
	@echo "export TARGET='$(TARGET)' CC='$(CC)' LD='$(LD)' NM='$(NM)'" \
	    "KERN_CFLAGS='$(if $(shell command -v $(CC) 2>/dev/null),$(KERN_FS_CFLAGS) -O2)'"

# The template port (hal/template) must stay a complete port: kern compiled
# against its headers and linked with template.c leaves nothing undefined
# but memcpy/memmove/memset/memcmp. Native compiler only; in `make test`.
TEMPLATE_CFLAGS = -std=c11 -ffreestanding -fno-builtin -fno-stack-protector -fno-common \
                  -nostdinc -isystem $(CC_INCLUDE) -I. -Iinclude -Ihal -Ihal/template \
                  $(ARCH_CFLAGS) $(PIC) $(WARN) -O2
check-template:
	@TARGET=template CC='$(CC)' LD='$(LD)' NM='$(NM)' KERN_CFLAGS='$(TEMPLATE_CFLAGS)' \
	    FS_EXTRA_SRC='$(wildcard hal/template/*.c)' FS_ALLOW_HAL=0 scripts/check-freestanding.sh

CLANG_FORMAT ?= clang-format
FORMAT_FILES = $(wildcard kern/*.[ch] hal/*.h hal/*/*.[ch] include/*.h tests/*.[ch] examples/*.c)
lint:
	@command -v $(CLANG_FORMAT) >/dev/null || { echo "lint: $(CLANG_FORMAT) not installed (apt-get install clang-format)"; exit 1; }
	$(CLANG_FORMAT) --dry-run -Werror $(FORMAT_FILES)
format:
	$(CLANG_FORMAT) -i $(FORMAT_FILES)

clean:
	rm -rf build

print-%:
	@echo '$($*)'

help:
	@sed -n '3,/^$$/s/^# \{0,1\}//p' Makefile

-include mk/bench.mk

# ---- toolchain presence --------------------------------------------------
# Goals that compile for $(TARGET) need $(CC); say how to get it. Last in the
# file, so that mk/bench.mk can add its own goals to NO_CC_GOALS.

NO_CC_GOALS += clean help lint format deps test test-sve test-san stress demo check-freestanding \
               freestanding-env uninstall print-%
ifneq ($(filter-out $(NO_CC_GOALS),$(or $(MAKECMDGOALS),all)),)
ifeq ($(shell command -v $(CC) 2>/dev/null),)
$(error $(CC) not found (TARGET=$(TARGET)). Install it: scripts/deps.sh $(DEPS_GROUP) (as root), i.e. apt-get install -y --no-install-recommends $(DEPS_HINT))
endif
# The flags of this build, for $(FLAGS_FILE) (BUILD_DEPS above).
BUILD_FLAGS := $(strip $(CC) | $(filter-out -Werror,$(KERN_CFLAGS) | $(HAL_CFLAGS) | \
               $(EXAMPLE_CFLAGS)) | $(LINK) | $(SO_LDFLAGS) | $(LIBS))
ifneq ($(file <$(FLAGS_FILE)),$(BUILD_FLAGS))
$(shell mkdir -p $(B))
$(file >$(FLAGS_FILE),$(BUILD_FLAGS))
endif
endif
$(FLAGS_FILE): ;
