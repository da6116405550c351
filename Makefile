# prismflow — the two commands a new user needs are `make run` and `make test`.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
BIN := bin/prismflow

.PHONY: run build deps test-deps bench-deps test test-short chaos fuzz bench bench-extract bench-scale bench-upload vendor-js vet fmt clean

## run: install what is missing, build, and start the embedded pipeline
run: deps build
	./$(BIN) run

## build: compile the single binary into bin/
build:
	$(GO) build -o $(BIN) ./cmd/prismflow

deps:
	@./ops/install-deps.sh run

test-deps:
	@./ops/install-deps.sh test

bench-deps:
	@./ops/install-deps.sh bench

## test: every test, against real Kafka protocol (kfake), PostgreSQL and PDFs
test: test-deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m ./...

## chaos: the reliability suite (build tag chaos): kill -9 stage processes, broker and PostgreSQL
## outages, a failing LLM endpoint; every document must end done exactly once. PRISMFLOW_CHAOS_SEED
## replays a run's faults (its seed is logged).
chaos: test-deps
	$(GO) vet -tags chaos ./cmd/prismflow
	$(GO) test -tags chaos -count=1 -timeout 20m -run '^TestChaos' -v ./cmd/prismflow

## fuzz: each fuzz target briefly (go test runs one target per -fuzz); FUZZTIME=1m make fuzz for longer.
## A finding fails it and lands in the package's testdata/fuzz, where make test replays it from then on.
## FUZZ_REPORT_ONLY=1 (CI) runs every target and prints findings without failing: exploration is random,
## so a gate on it would make CI flaky, while the seeds and past findings gate every make test.
FUZZTIME ?= 5s
FUZZ_TARGETS := \
	FuzzDetect:./stages/internal/sniff \
	FuzzFindDates:./stages/internal/itparse \
	FuzzFindAmounts:./stages/internal/itparse \
	FuzzParseNumber:./stages/internal/itparse \
	FuzzDOCX:./stages/extract/formats \
	FuzzODT:./stages/extract/formats \
	FuzzXLSX:./stages/extract/formats \
	FuzzHTML:./stages/extract/formats \
	FuzzMail:./stages/extract/formats \
	FuzzParseType:./schemas \
	FuzzCanRead:./schemas \
	FuzzDecode:./schemas \
	FuzzSplit:./stages/split
fuzz:
	@found=""; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t%%:*} ($${t#*:}) for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${t%%:*}\$$" -fuzztime $(FUZZTIME) $${t#*:} || found="$$found $${t%%:*}"; \
	done; \
	if [ -n "$$found" ]; then \
		echo "fuzzing found failing inputs in:$$found (see above; add them to testdata/fuzz)"; \
		[ -n "$(FUZZ_REPORT_ONLY)" ] || exit 1; \
	fi

## eval: classification and field accuracy on the labelled dev set; fails below 90% accuracy
EVAL_DIR ?= ../shared/corpus/insurance-dev
eval: build
	./$(BIN) eval --min-accuracy 0.9 $(EVAL_DIR)

## bench: the benchmarks
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## bench-extract: extract vs pdftotext, OCR vs tesseract CLI vs ocrmypdf, peak memory on 100 scanned pages
bench-extract: bench-deps
	$(GO) run ./stages/extract/cmd/benchextract -corpus ../shared/corpus

## bench-scale: the extract stage with 1 and 2 processes on a 6-partition topic under an OCR load: pages/s and ratio
bench-scale: deps
	$(GO) test -run '^$$' -bench '^BenchmarkExtractScaling$$' -benchtime 1x -timeout 30m ./cmd/prismflow

## bench-upload: 100 KB uploads at 50 concurrent clients (hey, and wrk with a new body each time), and 16 MB uploads
HEY := $(shell $(GO) env GOPATH)/bin/hey
bench-upload: bench-deps
	@[ -x $(HEY) ] || $(GO) install github.com/rakyll/hey@latest
	PATH=$(dir $(HEY)):$$PATH $(GO) test -run '^$$' -bench '^BenchmarkUpload$$' -benchtime 1x -timeout 30m ./cmd/prismflow

## vendor-js: refresh the console's htmx from the npm registry (the result is committed; nothing is fetched at run time)
vendor-js:
	d=$$(mktemp -d) && cd $$d && npm pack htmx.org@2 && tar xzf htmx.org-*.tgz && \
	cp package/dist/htmx.min.js $(CURDIR)/connectors/console/static/vendor/htmx.min.js && \
	cp package/LICENSE $(CURDIR)/connectors/console/static/vendor/htmx.LICENSE && rm -rf $$d

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
