# idpbuilder developer tasks. `make help` lists them.
GO        ?= go
BIN       ?= bin/idpbuilder
PKG       := github.com/idpbuilder/idpbuilder
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -s -w -X $(PKG)/pkg/version.version=$(VERSION) -X $(PKG)/pkg/version.commit=$(COMMIT)
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
BENCHTIME ?= 1s

FUZZTIME  ?= 30s

.PHONY: help build docs test cover lint e2e bench bench-gc bench-smoke fuzz fuzz-smoke test-all clean size bench-compare

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build a static binary into bin/ (and the docker-credential-idpbuilder link)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/idpbuilder
	ln -sf idpbuilder $(dir $(BIN))docker-credential-idpbuilder

docs: ## regenerate docs/cli/*.md and docs/configuration.md from the commands and the settings table
	$(GO) run ./hack/gendocs

test: ## unit tests (race detector on)
	$(GO) test -race -count=1 ./...

cover: ## unit test coverage per package and in total (profile: results/cover.out)
	@mkdir -p results
	@$(GO) test -count=1 -coverprofile=results/cover.out ./... > results/cover.txt 2>&1 || { cat results/cover.txt; exit 1; }
	@awk '/coverage:/ { p = ""; c = ""; for (i = 1; i <= NF; i++) { if ($$i ~ /^github\.com\//) p = $$i; if ($$i == "coverage:") c = $$(i+1) } \
		sub("^$(PKG)/", "", p); printf "  %-28s %7s\n", p, c }' results/cover.txt
	@$(GO) tool cover -func=results/cover.out | awk '/^total:/ { printf "  %-28s %7s\n", "total", $$NF }'

lint: ## gofmt, go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt-clean:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./test/e2e/...
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(STATICCHECK) -tags e2e ./test/e2e/...

e2e: ## end-to-end tests against real Docker, containerd, skopeo, Chromium and the OCI conformance runner (artifacts such as the UI's screenshots in results/e2e)
	mkdir -p results/e2e
	$(GO) test -tags e2e -count=1 -timeout 60m -v -artifacts -outputdir $(CURDIR)/results/e2e ./test/e2e/...

bench: ## registry benchmarks (BENCHTIME=5x to change)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./pkg/registry/

bench-gc: ## the garbage collection benchmark alone: 1,000 images / 5,000 blobs, dry run and real
	$(GO) test -run '^$$' -bench '^BenchmarkGC$$' -benchtime 3x ./pkg/registry/

fuzz: ## fuzz the auth header parser, the route parser, the registry's request handling, its token flow and the web UI (FUZZTIME=30s each)
	$(GO) test -run '^$$' -fuzz '^FuzzParseBasic$$' -fuzztime $(FUZZTIME) ./pkg/auth/
	$(GO) test -run '^$$' -fuzz '^FuzzParseRoute$$' -fuzztime $(FUZZTIME) ./pkg/registry/
	$(GO) test -run '^$$' -fuzz '^FuzzRegistryRequests$$' -fuzztime $(FUZZTIME) ./pkg/registry/
	$(GO) test -run '^$$' -fuzz '^FuzzUIRequests$$' -fuzztime $(FUZZTIME) ./pkg/registry/
	$(GO) test -run '^$$' -fuzz '^FuzzTokenRequests$$' -fuzztime $(FUZZTIME) ./pkg/registry/

bench-smoke: ## run every benchmark once, to keep them working
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...

test-all: lint bench-smoke test fuzz-smoke e2e ## everything CI runs, after hack/test-all.sh has set up the machine

fuzz-smoke: ## a short fuzz run of each target (CI)
	$(MAKE) fuzz FUZZTIME=10s

size: ## stripped binary with and without the registry engine, the difference and where it goes (fails at 10 MB)
	$(GO) run ./hack/size

bench-compare: ## idpbuilder's registry vs distribution's own v3.1.2 and this machine's references, interleaved (BENCH_COMPARE_FLAGS=-rounds=3)
	$(GO) run ./hack/bench-compare $(BENCH_COMPARE_FLAGS)

clean:
	rm -rf bin results
