# Faxbox: the two quick-start commands (`make run`, `make test`) and helpers.
# Both install the system packages they need on Debian/Ubuntu (sudo when not
# root), so a fresh machine with a Rust toolchain is enough.

SHELL := /bin/bash
CARGO ?= cargo

# What building needs: SpanDSP is vendored and built by spandsp-sys, which
# needs bindgen (libclang), libtiff and libjpeg.
BUILD_PACKAGES := build-essential pkg-config libclang-dev libtiff-dev libjpeg-dev
# What the tests use as independent checkers: libtiff's tools read our TIFFs
# back, Ghostscript counts pages of the PDF corpus, poppler reads our PDFs.
# systemd: the tests check the unit with `systemd-analyze verify`; tmux drives
# the dashboard end to end. cups (with cups-filters): `cupsfilter` prints
# the test PDFs to PWG raster, as a print client would, and a private
# cupsd with cups-client's lp and lpadmin prints to the fax printers
# (tests/it/cups.rs); cups-ipp-utils' ipptool checks the IPP printers.
TEST_PACKAGES := $(BUILD_PACKAGES) libtiff-tools ghostscript poppler-utils systemd tmux cups cups-client cups-filters cups-ipp-utils swaks
# Postfix is the office relay and the smarthost in tests/it/postfix.rs
# (with swaks as the mail client). Debian lets one mail server be
# installed, so Postfix is added only where none is (no sendmail yet), and
# answered "Local only" (a system Postfix listens on loopback only); where
# another mail server is installed, those tests say so and are skipped.
MTA_TEST_PACKAGES := postfix

.PHONY: chaos
.PHONY: run test build-deps test-deps release toolchain bench-dispatch bench-loopback bench-convert bench-api bench-smtp bench-backup bench-memory bench-listing bench
.PHONY: install static cross-aarch64 cross-armv7 test-cross fuzz fuzz-all

run: build-deps
	$(CARGO) build --release
	./target/release/faxbox serve

test: test-deps toolchain
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) test --all-targets

# The chaos test for longer runs (issue 19): ROUNDS rounds of SIGKILL at
# random instants under API and SMTP intake; `make test` runs 10.
ROUNDS ?= 200
chaos: build-deps
	FAXBOX_CHAOS_ROUNDS=$(ROUNDS) $(CARGO) test --test it -- chaos:: --nocapture

release: build-deps
	$(CARGO) build --release

build-deps:
	@scripts/install-packages $(BUILD_PACKAGES)

test-deps:
	@scripts/install-packages $(TEST_PACKAGES)
	@if [ -e /usr/sbin/sendmail ] && ! dpkg-query -W -f='$${Status}' postfix 2>/dev/null | grep -q "install ok installed"; then \
	  echo "A mail server other than Postfix is installed: the Postfix tests will be skipped"; \
	else scripts/install-packages $(MTA_TEST_PACKAGES); fi

# rustfmt and clippy come with rustup's default profile but not the minimal one.
toolchain:
	@if command -v rustup >/dev/null 2>&1; then \
	  for c in rustfmt clippy; do \
	    rustup component list --installed 2>/dev/null | grep -q "^$$c" || rustup component add $$c; \
	  done; \
	fi

# Benchmarks print their numbers (and a ratio against a peer where there is
# one); they are never timed tests.
bench-dispatch: build-deps
	$(CARGO) bench --bench dispatch

bench-loopback: build-deps
	$(CARGO) bench --bench loopback

bench-api: build-deps
	$(CARGO) bench --bench api

# The peer, Postfix's smtp-sink, is used when installed (package postfix,
# which `make test-deps` installs where no other mail server is).
bench-smtp: build-deps
	$(CARGO) bench --bench smtp

bench-backup: build-deps
	$(CARGO) bench --bench backup

# 400,000 faxes queued: a listing page and /v2/status against 100 ms.
bench-listing: build-deps
	$(CARGO) bench --bench listing

bench-convert: test-deps
	$(CARGO) bench --bench convert

# RSS of `faxbox serve` idle, during 200 loopback faxes and after them
# (issue 27: under 60 MB during, back within 5 MB of idle after).
bench-memory: build-deps
	$(CARGO) bench --bench memory

# Every benchmark, one after another (they share the machine's cores, so
# never at once).
# Every benchmark in turn, each printing its details; then one table of
# their headline figures, each against its target or peer
# (benches/common/summary.rs).
BENCH_SUMMARY := $(CURDIR)/target/bench-summary.tsv
bench: test-deps
	@mkdir -p target && rm -f $(BENCH_SUMMARY)
	@for b in dispatch loopback convert api smtp backup memory listing; do \
	  FAXBOX_BENCH_SUMMARY=$(BENCH_SUMMARY) $(CARGO) bench --bench $$b || exit 1; \
	done
	@echo; echo "make bench: every headline figure of this run"
	@(printf 'bench\tfigure\tmeasured\tagainst\tratio\n'; cat $(BENCH_SUMMARY)) | (column -t -s "$$(printf '\t')" 2>/dev/null || cat)

# Installing on a box (README, "Installing on a box"): the binary in
# $(PREFIX)/bin, the unit in $(PREFIX)/lib/systemd/system, the config in
# /etc/faxbox, the data in /var/lib/faxbox. DESTDIR stages it for a package.
# FAXBOX_BIN installs a binary built elsewhere (make static, the ARM
# builds) instead of building the release binary.
PREFIX ?= /usr/local
DESTDIR ?=
FAXBOX_BIN ?=

install:
	$(if $(FAXBOX_BIN),,$(MAKE) release)
	DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" scripts/install-layout "$(or $(FAXBOX_BIN),target/release/faxbox)"

# Fully static musl binaries in target/static/TARGET/release/faxbox, with
# libtiff and libjpeg built from Debian's sources by zig (README, "Static
# and ARM builds"). Not part of `make test`: each takes many minutes.
static:
	scripts/static-build x86_64-unknown-linux-musl

cross-aarch64:
	scripts/static-build aarch64-unknown-linux-musl

cross-armv7:
	scripts/static-build armv7-unknown-linux-musleabihf

# selftest of all three static binaries (ARM under qemu-user) and their sizes.
test-cross: static cross-aarch64 cross-armv7
	scripts/test-cross

# Fuzzing the parsers that read bytes from outside (src/fuzz.rs: mime,
# multipart, json, ipp, pdf, tiff, raster) with libFuzzer on the stable
# toolchain: coverage instrumentation through rustc's sancov pass, built for
# the explicit host target so that build scripts stay uninstrumented. Starts
# from the seeds (fuzz/seeds/TARGET, and the mails of tests/fixtures/mail)
# and grows fuzz/corpus/TARGET; stops at the first crash, a run over 10 s or
# RSS over 300 MB, leaving the input in fuzz/artifacts/TARGET. The test suite
# replays seeds and corpus (tests/it/fuzz.rs).
#   make fuzz TARGET=mime SECONDS=600
TARGET ?= mime
SECONDS ?= 60
FUZZ_HOST := $(shell rustc -vV | sed -n 's/^host: //p')
FUZZ_RUSTFLAGS := -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing

fuzz: build-deps
	RUSTFLAGS="$(FUZZ_RUSTFLAGS)" $(CARGO) build --release --manifest-path fuzz/Cargo.toml \
	  --target $(FUZZ_HOST) --bin $(TARGET)
	mkdir -p fuzz/corpus/$(TARGET) fuzz/artifacts/$(TARGET)
	fuzz/target/$(FUZZ_HOST)/release/$(TARGET) -max_total_time=$(SECONDS) -rss_limit_mb=300 \
	  -timeout=10 -print_final_stats=1 -artifact_prefix=fuzz/artifacts/$(TARGET)/ \
	  fuzz/corpus/$(TARGET) fuzz/seeds/$(TARGET) $(if $(filter mime,$(TARGET)),tests/fixtures/mail)

# Every target in turn, SECONDS each.
fuzz-all:
	for t in mime multipart json ipp pdf tiff raster; do $(MAKE) fuzz TARGET=$$t SECONDS=$(SECONDS) || exit 1; done
