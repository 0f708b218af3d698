# GEdge in Swift. `make demo` runs the whole system locally; `make test` runs every test.
SHELL := /bin/bash
BIN := .build/debug

.PHONY: all deps build up down status demo test check-deploy compose-secrets bench release clean

all: build

deps:
	bash scripts/install-deps.sh

build: deps
	swift build

up: build
	bash scripts/stack.sh up

down:
	bash scripts/stack.sh down

status:
	bash scripts/stack.sh status

demo: up
	bash scripts/demo.sh

# Unit tests need nothing; integration tests need the stack, which this starts.
test: deps
	bash scripts/check-deploy.sh
	swift build --build-tests
	bash scripts/stack.sh up
	GEDGE_INTEGRATION=1 GEDGE_BIN_DIR=$(abspath $(BIN)) swift test --skip-build

bench: deps
	swift build -c release --product gedge-bench
	swift build -c release --product gedge-bench-scheduler
	swift build -c release --product scheduler
	swift build -c release --product agent
	swift build -c release --product gedge-kafka-dev
	swift build -c release --product gateway
	swift build -c release --product gedge-bench-faas
	bash scripts/stack.sh up
	.build/release/gedge-bench
	.build/release/gedge-bench-scheduler
	bash bench/gateway.sh
	.build/release/gedge-bench-faas

# The compose deployment's secrets (compose/secrets/, never committed).
compose-secrets:
	bash scripts/compose-secrets.sh

check-deploy: deps
	bash scripts/check-deploy.sh

release: deps
	swift build -c release

clean:
	swift package clean
