# crmhub: the two commands are `make run` and `make test`.
GO        ?= go
BIN       ?= ./crmhub
GOTEST    ?= $(GO) test -count=1 -timeout 15m

.PHONY: run build test test-e2e bench generate lint playground

## run: start crmhub on this machine with demo data (finds or starts PostgreSQL).
run: build
	$(BIN) dev

build:
	$(GO) build -o $(BIN) .

## test: every Go test against real PostgreSQL (found or started like `make run`).
test: lint
	$(GOTEST) ./...

## test-e2e: the Playground in headless Chromium and live progress with the npm graphql-ws client
## (installs Chromium and e2e/'s npm packages if missing; here neither may skip).
test-e2e:
	bash e2e/install.sh
	CRMHUB_E2E=1 $(GOTEST) -run '^(TestPlaygroundBrowser|TestGraphQLWSClient)$$' -v .

## bench: the benchmarks, printed as tables (not part of `make test`; about 20 minutes).
bench:
	$(GO) run ./bench/connectors
	$(GO) run ./bench/imports
	$(GO) run ./bench/subscriptions
	$(GO) run ./bench/readpath
	$(GO) test -run '^$$' -bench BenchmarkReadPathHandler .

## generate: regenerate gqlgen code after a schema change.
generate:
	$(GO) tool gqlgen generate

## lint: gofmt and go vet must be clean.
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

## playground: rebuild the embedded GraphiQL assets from npm.
playground:
	cd graph/playground/web && npm ci && npm run build
