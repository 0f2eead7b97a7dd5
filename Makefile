# kiln -- build, test, demo. `make help` lists the targets.
CC      ?= gcc
BUILD   ?= build
OPT     ?= -O2
SAN     ?=
WARN    := -Wall -Wextra -Werror -Wshadow -Wundef -Wmissing-prototypes -Wstrict-prototypes \
           -Wno-unused-parameter
CFLAGS  := -std=c11 -D_GNU_SOURCE -g $(OPT) $(WARN) -fPIC -Iinclude -Iir -I$(BUILD)/gen $(SAN) $(EXTRA_CFLAGS)
LLVM_CONFIG ?= /usr/lib/llvm-19/bin/llvm-config
CLANG_BC    ?= /usr/lib/llvm-19/bin/clang
LLVM_LINK   ?= /usr/lib/llvm-19/bin/llvm-link
LLVM_CFLAGS := $(shell $(LLVM_CONFIG) --cflags 2>/dev/null)
LLVM_LIBS   := $(shell $(LLVM_CONFIG) --ldflags --libs 2>/dev/null)
LDLIBS  := $(LLVM_LIBS) -lprotobuf-c -lz -lm -lpthread -ldl
TEST_LDLIBS := -lcmocka $(LDLIBS)

LIB_SRC := $(filter-out $(EXCLUDE),$(wildcard ir/*.c ir/ops/*.c frontend/*.c passes/*.c codegen/*.c runtime/*.c))
# protobuf-c code generated at build time into $(BUILD)/gen (never committed).
PROTO_SRC := frontend/kiln_format.proto
PROTO_C   := $(PROTO_SRC:%.proto=$(BUILD)/gen/%.pb-c.c)
PROTO_H   := $(PROTO_C:.c=.h)
# onnx.proto comes from the installed onnx package (Debian's python3-onnx); it
# is copied into $(BUILD)/gen/onnx/ and compiled there. The repository holds
# no copy of it.
ONNX_PROTO_SRC ?= /usr/lib/python3/dist-packages/onnx/onnx.proto
ONNX_PROTO_C   := $(BUILD)/gen/onnx/onnx.pb-c.c
ONNX_PROTO_H   := $(BUILD)/gen/onnx/onnx.pb-c.h
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(PROTO_C:$(BUILD)/gen/%.c=$(BUILD)/obj/gen/%.o) \
           $(BUILD)/obj/gen/onnx/onnx.pb-c.o
LIB     := $(BUILD)/libkiln.a

# The kernel library: C compiled to LLVM bitcode, embedded in codegen/kernels.c.
KERNEL_SRC := $(wildcard codegen/kernels/*.c)
KERNEL_BC  := $(BUILD)/kernels.bc

TEST_SRC  := $(wildcard tests/*/test_*.c)
TEST_BIN  := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_UTIL := $(wildcard tests/common/*.c)
TEST_UTIL_OBJ := $(TEST_UTIL:%.c=$(BUILD)/obj/%.o)

EXAMPLE_SRC := $(wildcard examples/*.c)
EXAMPLE_BIN := $(EXAMPLE_SRC:examples/%.c=$(BUILD)/examples/%)
# Examples that train for a while: tests/examples/test_examples.c runs them
# in --quick mode and checks what they print, instead of the loop of make test.
EXAMPLE_TRAINED := $(BUILD)/examples/housing $(BUILD)/examples/digits

.PHONY: all deps lib test tests demo onnx-conformance fuzz-onnx onnx-docs examples check-asan check-tsan check-valgrind fuzz-graphs clean help expected format docs
all: lib tests examples $(BUILD)/tools/opdoc $(BUILD)/tools/kiln

help:
	@echo "make deps           install the system packages the build and tests need"
	@echo "make demo           build and run the example network"
	@echo "make test           build and run every test"
	@echo "make check-asan     the test suite under AddressSanitizer + UBSan"
	@echo "make check-tsan      the session tests (concurrent runs) under ThreadSanitizer"
	@echo "make check-valgrind the test suite under valgrind --leak-check=full"
	@echo "make docs           regenerate docs/ops.md from the op registry"
	@echo "make fuzz-graphs     compiled vs reference on SEEDS=N random graphs"
	@echo "make bench          benchmarks against OpenBLAS and -O0 (see docs/benchmarks.md)"
	@echo "make expected       regenerate the numpy-computed expected arrays of the op tests"
	@echo "make fuzz-onnx      libFuzzer over the ONNX importer for FUZZ_SECONDS (default 60)"
	@echo "make onnx-conformance  every ONNX backend test case (../shared/onnx-tests), with a summary"
	@echo "make CC=clang ...   build with clang"

deps:
	@tools/deps.sh

lib: $(LIB)

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/obj/%.o: %.c $(wildcard include/*.h ir/*.h runtime/*.h frontend/*.h) ir/ops/ops.def
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: %.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --c_out=$(BUILD)/gen $<

$(BUILD)/gen/onnx/onnx.proto: $(ONNX_PROTO_SRC)
	@mkdir -p $(dir $@)
	@test -f $< || { echo "$<: missing; run 'make deps' (python3-onnx)"; exit 1; }
	cp $< $@

$(ONNX_PROTO_C) $(ONNX_PROTO_H): $(BUILD)/gen/onnx/onnx.proto
	protoc-c --proto_path=$(BUILD)/gen --c_out=$(BUILD)/gen $<

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# Keep intermediate objects (test objects would otherwise be deleted and rebuilt).
.SECONDARY:
# Keep the generated sources (make would delete them as intermediates).
.SECONDARY: $(PROTO_C) $(PROTO_H) $(ONNX_PROTO_C) $(ONNX_PROTO_H) $(BUILD)/gen/onnx/onnx.proto
# Objects that include a generated header.
$(BUILD)/obj/frontend/kiln_format.o $(BUILD)/obj/tests/frontend/test_kiln_format.o: $(PROTO_H)
# Every frontend/onnx*.c includes onnx_internal.h, which includes onnx.pb-c.h.
$(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard frontend/onnx*.c)): $(ONNX_PROTO_H) frontend/onnx_internal.h
$(BUILD)/obj/tests/onnx/%.o: $(ONNX_PROTO_H)
# The PTX tests reuse the random-graph generator.
$(BUILD)/obj/tests/gpu/test_ptx.o: tests/codegen/test_random_graphs.c

$(BUILD)/obj/codegen/%.o: codegen/%.c $(wildcard include/*.h ir/*.h codegen/*.h) ir/ops/ops.def
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LLVM_CFLAGS) -c $< -o $@

$(BUILD)/obj/runtime/jit.o: runtime/jit.c $(wildcard include/*.h ir/*.h codegen/*.h runtime/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LLVM_CFLAGS) -c $< -o $@

$(BUILD)/obj/codegen/kernels.o: codegen/kernels.c $(KERNEL_BC) $(wildcard codegen/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LLVM_CFLAGS) -DKILN_KERNELS_BC='"$(abspath $(KERNEL_BC))"' -c $< -o $@

$(BUILD)/kernels/%.bc: codegen/kernels/%.c codegen/kernels/kk.h ir/lowp.h ir/grid_sample_grad.h
	@mkdir -p $(dir $@)
	$(CLANG_BC) -std=c11 -O2 -Xclang -disable-llvm-optzns -emit-llvm -fno-math-errno \
	  -Wall -Wextra -Werror -c $< -o $@

$(KERNEL_BC): $(KERNEL_SRC:codegen/kernels/%.c=$(BUILD)/kernels/%.bc)
	$(LLVM_LINK) $^ -o $@

$(BUILD)/obj/tests/%.o: tests/%.c $(wildcard tests/common/*.h tests/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LLVM_CFLAGS) -Itests -DKILN_BUILD_DIR='"$(abspath $(BUILD))"' -c $< -o $@

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TEST_UTIL_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(TEST_UTIL_OBJ) $(LIB) $(TEST_LDLIBS) -o $@

$(BUILD)/tests/examples/test_examples: $(EXAMPLE_TRAINED) $(BUILD)/tools/kiln

$(BUILD)/examples/%: examples/%.c $(LIB) include/kiln.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(LIB) $(LDLIBS) -o $@

$(BUILD)/tools/%: tools/%.c $(LIB) $(wildcard codegen/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LLVM_CFLAGS) $< $(LIB) $(LDLIBS) -o $@

docs: $(BUILD)/tools/opdoc
	$(BUILD)/tools/opdoc > docs/ops.md

tests: $(TEST_BIN)
examples: $(EXAMPLE_BIN)

test: deps
	@$(MAKE) --no-print-directory tests $(BUILD)/tools/opdoc $(BUILD)/tools/kiln
	@tools/check_docs.sh $(BUILD)/tools/opdoc
	@$(MAKE) --no-print-directory examples
	@for e in $(filter-out $(EXAMPLE_TRAINED),$(EXAMPLE_BIN)); do $$e > /dev/null && echo "PASS example $$e" || { echo "FAIL example $$e"; exit 1; }; done
	@tools/run_tests.sh $(BUILD)/tests

demo: deps
	@$(MAKE) --no-print-directory $(BUILD)/examples/mlp
	@mkdir -p $(BUILD)/demo
	$(BUILD)/examples/mlp $(BUILD)/demo
	$(CC) -std=c11 -O2 examples/aot/xor_main.c -I$(BUILD)/demo -L$(BUILD)/demo -lxor \
	  -Wl,-rpath,'$$ORIGIN' -lm -lpthread -o $(BUILD)/demo/xor_main
	$(BUILD)/demo/xor_main

check-asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" tests build-asan/tools/kiln
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 KILN_ONNX_SAMPLE=3 \
	  tools/run_tests.sh build-asan/tests

check-tsan: deps
	@$(MAKE) --no-print-directory BUILD=build-tsan OPT=-O1 SAN="-fsanitize=thread" \
	  build-tsan/tests/runtime/test_session
	@TSAN_OPTIONS=halt_on_error=1 tools/run_tests.sh build-tsan/tests/runtime

check-valgrind: deps
	@$(MAKE) --no-print-directory tests $(BUILD)/tools/kiln
	@RUNNER="valgrind -q --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect --error-exitcode=99" \
	  tools/run_tests.sh $(BUILD)/tests

# More random graphs than make test runs: make fuzz-graphs SEEDS=1000
SEEDS ?= 500
fuzz-graphs: $(BUILD)/tests/codegen/test_random_graphs
	KILN_GRAPH_SEEDS=$(SEEDS) $(BUILD)/tests/codegen/test_random_graphs

# libFuzzer over the ONNX importer (clang, ASan), FUZZ_SECONDS long, from a
# corpus seeded with the models of ../shared/onnx-tests.
FUZZ_SECONDS ?= 60
CLANG ?= clang-19
ONNX_TESTS ?= $(or $(KILN_ONNX_TESTS),../shared/onnx-tests)
fuzz-onnx: deps
	@$(MAKE) --no-print-directory BUILD=build-fuzz CC=$(CLANG) OPT=-O1 \
	  SAN="-fsanitize=address,fuzzer-no-link -fno-omit-frame-pointer" build-fuzz/libkiln.a
	$(CLANG) -std=c11 -g -O1 -fsanitize=address,fuzzer -Iinclude tests/fuzz/fuzz_onnx.c \
	  build-fuzz/libkiln.a $(LDLIBS) -o build-fuzz/fuzz_onnx
	@mkdir -p build-fuzz/corpus
	@find $(ONNX_TESTS) -name model.onnx -size -16k 2>/dev/null | head -400 | \
	  while read f; do cp "$$f" build-fuzz/corpus/$$(echo "$$f" | md5sum | cut -c1-16); done
	build-fuzz/fuzz_onnx -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -timeout=10 \
	  -print_final_stats=1 build-fuzz/corpus tests/fuzz/corpus_onnx

# Every ONNX backend test case, not only tests/onnx/expected_pass.txt
# (which make test runs). KILN_ONNX_TESTS overrides ../shared/onnx-tests.
onnx-conformance: $(BUILD)/tests/onnx/test_onnx_conformance
	$(BUILD)/tests/onnx/test_onnx_conformance --all

# The supported-op table of docs/onnx.md, from the importer's op table.
onnx-docs: $(BUILD)/tests/onnx/test_onnx_conformance
	@sed -n '1,/^<!-- op table -->/p' docs/onnx.md > $(BUILD)/onnx.md.tmp
	$(BUILD)/tests/onnx/test_onnx_conformance --op-table >> $(BUILD)/onnx.md.tmp
	@sed -n '/^<!-- end op table -->/,$$p' docs/onnx.md >> $(BUILD)/onnx.md.tmp
	mv $(BUILD)/onnx.md.tmp docs/onnx.md

# Benchmarks: kiln against peers (OpenBLAS) and itself at -O0; results go in
# docs/benchmarks.md. Not part of make test.
BENCH_SRC := $(wildcard bench/bench_*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
$(BUILD)/bench/%: bench/%.c $(LIB) include/kiln.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -I/usr/include/x86_64-linux-gnu/openblas-pthread $< $(LIB) -lopenblas $(LDLIBS) -o $@

bench: deps
	@tools/deps.sh libopenblas-dev
	@$(MAKE) --no-print-directory $(BENCH_BIN)
	@bench/run.sh $(BUILD)/bench

expected:
	@for s in tests/ops/gen_*.py; do echo "/usr/bin/python3 $$s"; /usr/bin/python3 $$s || exit 1; done

format:
	clang-format -i $(LIB_SRC) $(wildcard include/*.h ir/*.h runtime/*.h) $(TEST_SRC) $(EXAMPLE_SRC)

clean:
	rm -rf build build-asan
