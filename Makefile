# `make test` is what CI runs: it installs what the tests need, then runs every test.
GO ?= go
export PATH := $(shell $(GO) env GOPATH)/bin:$(PATH)

.PHONY: all build test test-go lint deps ui openapi bench clean

all: build

build:
	$(GO) build -o hookrelay .

deps:
	@command -v node >/dev/null || { echo "node is required (apt-get install -y nodejs npm)"; exit 1; }
	@[ -d ui/node_modules ] || (cd ui && npm ci --no-audit --no-fund)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

test-go:
	$(GO) test -race -count=1 -timeout 15m ./...

test: deps lint test-go

ui: deps
	cd ui && npm run build

bench:
	$(GO) run ./bench

clean:
	rm -rf hookrelay screenshots
