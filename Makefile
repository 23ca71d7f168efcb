# `make test` is what CI runs: it installs what the tests need, then runs every test.
GO ?= go
export PATH := $(shell $(GO) env GOPATH)/bin:$(PATH)

.PHONY: fuzz all build test test-go test-postgres test-browser lint deps node browser ui ui-check ui-typecheck openapi openapi-check openapi-lint bench clean

all: build

build:
	$(GO) build -o hookrelay .

# node installs Debian's Node.js and npm when either is missing, as `browser` installs Chromium,
# so `make test` needs nothing set up by hand; with them present it does nothing.
node:
	@if ! command -v node >/dev/null || ! command -v npm >/dev/null; then \
		command -v apt-get >/dev/null || { echo "node and npm are required and apt-get is not available: install Node.js 20 or later"; exit 1; }; \
		echo "installing Debian's nodejs and npm"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; \
	fi

deps: node
	@[ -d ui/node_modules ] || (cd ui && npm ci --no-audit --no-fund)
	@[ -d testdata/node/node_modules ] || (cd testdata/node && npm ci --no-audit --no-fund)
	@[ -d openapi/node_modules ] || (cd openapi && npm ci --no-audit --no-fund)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# The allocation budgets are for normal builds (the race detector allocates unevenly, and those
# tests skip under it), so they run once more without it.
test-go:
	$(GO) test -race -count=1 -timeout 15m ./...
	$(GO) test -count=1 -run 'AllocatesAsBefore' ./api/ ./engine/

# test-postgres runs the integration suites (API, inspector, delivery, engine, maintenance)
# again on PostgreSQL; the store suite and the replica tests already cover both backends
# inside test-go.
test-postgres:
	@if [ -z "$$HOOKRELAY_TEST_POSTGRES_URL" ]; then \
		echo "PostgreSQL integration suites skipped: HOOKRELAY_TEST_POSTGRES_URL is not set (.ci/run sets it)"; \
	else \
		HOOKRELAY_TEST_BACKEND=postgres $(GO) test -count=1 -timeout 10m ./api/ ./inspector/ ./delivery/ ./engine/ ./maintenance/; \
	fi

test: deps lint ui-check ui-typecheck openapi-check openapi-lint test-go test-postgres test-browser

# openapi regenerates openapi/swagger.json, openapi/openapi.json and the UI's
# ui/src/lib/api-types.d.ts from the swag annotations, then the Go client (client/types.gen.go,
# client/client.gen.go) from openapi.json with oapi-codegen (the `tool` in go.mod);
# `go generate ./...` does the same.
OAPI_CODEGEN = cd client && $(GO) tool oapi-codegen
openapi: deps
	$(GO) run ./internal/openapigen
	$(OAPI_CODEGEN) -config oapi-codegen.types.yaml -o types.gen.go ../openapi/openapi.json
	$(OAPI_CODEGEN) -config oapi-codegen.yaml -o client.gen.go ../openapi/openapi.json

# openapi-check fails when the committed documents, UI types or Go client differ from what the
# code generates.
openapi-check: deps
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(GO) run ./internal/openapigen -out "$$tmp" -ts "$$tmp/api-types.d.ts" || exit 1; \
	($(OAPI_CODEGEN) -config oapi-codegen.types.yaml -o "$$tmp/types.gen.go" "$$tmp/openapi.json") || exit 1; \
	($(OAPI_CODEGEN) -config oapi-codegen.yaml -o "$$tmp/client.gen.go" "$$tmp/openapi.json") || exit 1; \
	stale=0; \
	for pair in "openapi/swagger.json:swagger.json" "openapi/openapi.json:openapi.json" "ui/src/lib/api-types.d.ts:api-types.d.ts" "client/types.gen.go:types.gen.go" "client/client.gen.go:client.gen.go"; do \
		have=$${pair%%:*}; want="$$tmp/$${pair#*:}"; \
		if ! cmp -s "$$have" "$$want"; then stale=1; echo "stale: $$have"; diff -u "$$have" "$$want" 2>&1 | head -40; fi; \
	done; \
	if [ $$stale -ne 0 ]; then echo "openapi/, the UI types or the Go client are stale against the code: run 'make openapi' and commit the result"; exit 1; fi; \
	echo "openapi/ is current"

# openapi-lint runs Redocly's recommended rules (openapi/redocly.yaml) on the OpenAPI 3 document.
openapi-lint: deps
	cd openapi && REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true ./node_modules/.bin/redocly lint openapi.json

# browser installs Debian's Chromium for the UI tests when it is missing (never a downloaded build).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test-browser: deps browser
	./scripts/browser-test.sh

ui: deps
	cd ui && npm run build

# ui-typecheck type-checks the UI (svelte-check with TypeScript on the JSDoc-typed JavaScript): every
# API call is typed from ui/src/lib/api-types.d.ts, so a UI that drifts from the document fails here.
ui-typecheck: deps
	cd ui && npm run check

# ui-check fails when the committed ui/dist differs from a fresh build of ui/src.
ui-check: deps
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	(cd ui && npx vite build --outDir "$$tmp/dist" --emptyOutDir --logLevel warn) || exit 1; \
	if ! diff -r "$$tmp/dist" ui/dist >/dev/null; then echo "ui/dist is stale against ui/src: run 'make ui' and commit the result"; diff -r "$$tmp/dist" ui/dist | head -20; exit 1; fi; \
	echo "ui/dist is current"

bench:
	$(GO) run ./bench

# fuzz runs each fuzz target for FUZZTIME (1m); `go test` alone runs only their seed inputs.
FUZZTIME ?= 1m
FUZZ_TARGETS := ./api:FuzzEventInput ./api:FuzzBatchInput ./api:FuzzWebhookInput ./inspector:FuzzVerify ./delivery:FuzzReadFinal \
	./models:FuzzCheckDelivered ./models:FuzzBuildBody ./models:FuzzJSONScanner ./models:FuzzPlainTimestamp \
	./inspector:FuzzEncodeHeadersDecodesAsJSONMarshal ./api:FuzzSplitBodyMatchesEncodingJSON
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t#*:}; echo "== $$name ($$pkg, $(FUZZTIME))"; \
		$(GO) test $$pkg -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) || exit 1; \
	done

clean:
	rm -rf hookrelay screenshots
