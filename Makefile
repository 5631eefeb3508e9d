# shoal — top-level entry points. `make demo` and `make test` work on a fresh
# Debian 12 machine as root: both install missing Debian packages first.
BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
JOBS       ?= $(shell nproc)
GENERATOR  := -G Ninja
CMAKE_ARGS ?=
# Each step prints a line or two and writes its full output here
# (scripts/step.sh; VERBOSE=1 shows it as it comes).
LOGS       ?= out/logs
STEP       := bash scripts/step.sh

.PHONY: all deps configure build test demo test-asan test-tsan bench soak fuzz torch-example install clean help

all: build

help:
	@echo "make demo       install deps, build, ingest Fashion-MNIST and ImageNet-like JPEGs, load them, draw charts"
	@echo "make test       install deps, build, run the test suite (no soak tests)"
	@echo "                (each step prints a line; full output in out/logs/, or VERBOSE=1)"
	@echo "make test-asan  the test suite under AddressSanitizer + UBSan"
	@echo "make test-tsan  the test suite under ThreadSanitizer"
	@echo "make bench      build (Release) and run the benchmarks in benchmarks/"
	@echo "make soak       long crash-consistency runs (SHOAL_CRASH_TRIALS=N)"
	@echo "make fuzz       libFuzzer targets under ASan+UBSan (FUZZ_SECONDS=N each, default 60)"
	@echo "make torch-example  build (Release) and run examples/torch_train.cc: loader batches as libtorch tensors, zero-copy"
	@echo "make install    install into PREFIX (default /usr/local)"

deps:
	@$(STEP) packages $(LOGS)/install-deps.log bash scripts/install-deps.sh

$(BUILD)/build.ninja: | deps
	@$(STEP) configure $(LOGS)/configure.log \
	  cmake -S . -B $(BUILD) $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS)

configure: deps $(BUILD)/build.ninja

build: configure
	@$(STEP) build $(LOGS)/build.log cmake --build $(BUILD) -j $(JOBS)

test: build
	@STEP_TAIL_LINES=80 $(STEP) test $(LOGS)/test.log \
	  ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) -LE soak
	@grep -E "tests passed|Total Test time" $(LOGS)/test.log | sed 's/^/           /'

demo: build
	@LOGS=$(LOGS) bash scripts/demo.sh $(BUILD)

test-asan: deps
	cmake -S . -B $(ASAN_BUILD) $(GENERATOR) -DCMAKE_BUILD_TYPE=Debug -DSHOAL_SANITIZE=address -DSHOAL_BUILD_BENCHMARKS=OFF $(CMAKE_ARGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS) -LE soak
	$(MAKE) fuzz FUZZ_SECONDS=20

test-tsan: deps
	cmake -S . -B $(TSAN_BUILD) $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHOAL_SANITIZE=thread -DSHOAL_BUILD_BENCHMARKS=OFF $(CMAKE_ARGS)
	cmake --build $(TSAN_BUILD) -j $(JOBS)
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$(CURDIR)/tests/tsan.supp \
	  ctest --test-dir $(TSAN_BUILD) --output-on-failure -j $(JOBS) -LE 'soak|install'

bench: deps
	cmake -S . -B build-release $(GENERATOR) -DCMAKE_BUILD_TYPE=Release -DSHOAL_BUILD_TESTS=OFF $(CMAKE_ARGS)
	cmake --build build-release -j $(JOBS)
	@bash scripts/bench.sh build-release

soak: build
	ctest --test-dir $(BUILD) --output-on-failure -L soak

FUZZ_SECONDS ?= 60
fuzz: deps
	CC=clang CXX=clang++ cmake -S . -B build-fuzz $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DSHOAL_SANITIZE=address -DSHOAL_BUILD_FUZZERS=ON -DSHOAL_BUILD_TESTS=OFF -DSHOAL_BUILD_BENCHMARKS=OFF $(CMAKE_ARGS)
	cmake --build build-fuzz -j $(JOBS) --target shoal_fuzzers
	@bash scripts/fuzz.sh build-fuzz $(FUZZ_SECONDS)

# Installs libtorch-dev if missing; builds in build-torch (see the script).
torch-example: deps
	JOBS=$(JOBS) bash scripts/torch-example.sh build-torch

PREFIX ?= /usr/local
install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) build-release build-fuzz out
