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
TEST_PACKAGES := $(BUILD_PACKAGES) libtiff-tools ghostscript poppler-utils

.PHONY: run test build-deps test-deps release toolchain bench-dispatch bench-loopback bench-convert bench-api bench-smtp

run: build-deps
	$(CARGO) build --release
	./target/release/faxbox serve

test: test-deps toolchain
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) test --all-targets

release: build-deps
	$(CARGO) build --release

build-deps:
	@scripts/install-packages $(BUILD_PACKAGES)

test-deps:
	@scripts/install-packages $(TEST_PACKAGES)

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

# The peer, Postfix's smtp-sink, is used when installed (package postfix);
# it is not installed here, as it brings a whole mail system with it.
bench-smtp: build-deps
	$(CARGO) bench --bench smtp

bench-convert: test-deps
	$(CARGO) bench --bench convert
