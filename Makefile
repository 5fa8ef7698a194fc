# Everything runs from a local virtual environment, created on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: install demo test unit integration lint typecheck bench bench-core reliability schemas clean \
	native-check sanitize-build sanitize fuzz fuzz-merge

install: $(STAMP)

# The C fast path is compiled by the editable install: rebuilt when its sources change.
$(STAMP): pyproject.toml hatch_build.py $(wildcard processor/native/*.c processor/native/*.h)
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tmf-events demo

# The README's test command: static checks (the C path's shape among them), deploy checks
# (their tools install into .tools/), then every pytest layer (the deploy tests ran in
# deploy-check already).
test: lint typecheck native-check deploy-check
	@if [ -f scripts/prometheus.sh ]; then bash scripts/prometheus.sh; fi
	$(BIN)/pytest -q --ignore=tests/deploy

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/pytest -q tests/integration

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

schemas: $(STAMP)
	$(BIN)/python -m processor.dev.schemagen

bench-core: $(STAMP)
	$(BIN)/python bench/core.py

# The C path's shape: gcc with -Werror and -fstack-usage, then every function's length and
# stack frame against the limits (docs/native.md#the-stages).
native-check: $(STAMP)
	$(BIN)/pip install --quiet --target build/native-check/site hatchling
	PYTHONPATH=build/native-check/site $(BIN)/python hatch_build.py check build/native-check
	$(BIN)/python scripts/native_shape.py build/native-check/obj

# The sanitizer build (clang: AddressSanitizer, UBSan, fuzzer coverage) and the fuzzer live in
# build/sanitize, never in .venv: atheris and hatchling are installed into build/sanitize/site
# (docs/native.md#sanitizers). It needs clang and its sanitizer runtimes (Debian: clang,
# libclang-rt-14-dev).
CLANG ?= clang
SECONDS ?= 120
SANITIZE_DIR := build/sanitize
SANITIZE_SITE := $(SANITIZE_DIR)/site
SANITIZE_STAMP := $(SANITIZE_DIR)/.built
SANITIZED := ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1:handle_abort=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	LD_PRELOAD=$(abspath $(SANITIZE_SITE))/asan_with_fuzzer.so \
	TMF_NATIVE_BUILD=$(SANITIZE_DIR) PYTHONPATH=.:$(SANITIZE_SITE)

sanitize-build: $(SANITIZE_STAMP)

$(SANITIZE_STAMP): $(STAMP) hatch_build.py $(wildcard processor/native/*.c processor/native/*.h)
	$(BIN)/pip install --quiet --target $(SANITIZE_SITE) --upgrade 'atheris>=2.3' hatchling
	CC=$(CLANG) PYTHONPATH=$(SANITIZE_SITE) $(BIN)/python hatch_build.py sanitize $(SANITIZE_DIR)
	touch $@

# The differential tests (and every input the fuzzer ever found) on the sanitizer build.
sanitize: $(SANITIZE_STAMP)
	$(SANITIZED) $(BIN)/python -m pytest -q --capture=sys -p tests.fuzz.sanitized -p no:cacheprovider \
		tests/unit/test_native.py

# `make fuzz SECONDS=N`: the fuzz target for N seconds from the checked-in seed corpus and
# every input it ever found; what it finds lands in build/fuzz/found/
# (docs/native.md#the-fuzzer).
fuzz: $(SANITIZE_STAMP)
	mkdir -p build/fuzz/corpus build/fuzz/found
	$(SANITIZED) $(BIN)/python tests/fuzz/fuzz_core.py build/fuzz/corpus tests/fuzz/corpus \
		tests/fuzz/found \
		-max_total_time=$(SECONDS) -timeout=20 -rss_limit_mb=6144 -print_final_stats=1 \
		-artifact_prefix=build/fuzz/found/

# The seed corpus, grown by what `make fuzz` found new and minimised (libFuzzer runs the
# target again as a child: the venv's python first on PATH).
fuzz-merge: $(SANITIZE_STAMP)
	$(SANITIZED) PATH=$(abspath $(BIN)):$$PATH tests/fuzz/fuzz_core.py -merge=1 \
		tests/fuzz/corpus build/fuzz/corpus

reliability: $(STAMP)
	RELIABILITY_PROFILE=long $(BIN)/pytest -q tests/reliability

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist processor/_native*.so

-include Makefile.deploy
-include Makefile.bench
