# GEdge in Swift. `make demo` runs the whole system locally; `make test` runs every test.
SHELL := /bin/bash
BIN := .build/debug

.PHONY: all help deps build up run down status demo test check-deploy compose-secrets bench release clean

all: build

help:
	@echo "make demo            install what is missing, build, start the local stack, run the demo"
	@echo "make test            every test: unit tests, and integration tests against the real servers"
	@echo "make up | down       start | stop the local stack (PostgreSQL, RabbitMQ, the dev Kafka broker)"
	@echo "make run             the local suite in the background (scheduler, three agents, gateway)"
	@echo "make status          what of the local stack runs"
	@echo "make bench           the benchmarks (release build), figures side by side"
	@echo "make check-deploy    check the compose and Kubernetes files without Docker or a cluster"
	@echo "make compose-secrets the compose deployment's secrets, into compose/secrets/"
	@echo "make build | release debug | release build;  make clean"
	@echo "Each script answers --help: scripts/stack.sh, scripts/run.sh, scripts/demo.sh, ..."

deps:
	bash scripts/install-deps.sh

# With GEDGE_BIN_DIR set (as make test sets it for the tests), its programs are used as built.
build: deps
	@if [ -n "$${GEDGE_BIN_DIR:-}" ] && [ -x "$${GEDGE_BIN_DIR}/gateway" ]; then echo "build: using the programs in $$GEDGE_BIN_DIR"; else swift build; fi

up: build
	bash scripts/stack.sh up

# The local suite in the background (scheduler, the seed's three agents, gateway); logs in .local/.
run: up
	bash scripts/run.sh start

down:
	bash scripts/run.sh stop
	bash scripts/stack.sh down

status:
	bash scripts/stack.sh status

demo: up
	bash scripts/run.sh stop
	bash scripts/demo.sh

# Unit tests need nothing; integration tests need the stack, which this starts.
# At most TEST_WIDTH tests run at once: each integration test starts its own servers,
# brokers' topics and agents, and with all of them at once a 2-core machine stalls long
# enough for their time bounds to fail (the whole run takes as long either way).
TEST_WIDTH ?= 6
test: deps
	bash scripts/check-deploy.sh
	swift build --build-tests
	bash scripts/stack.sh up
	GEDGE_INTEGRATION=1 GEDGE_BIN_DIR=$(abspath $(BIN)) swift test --skip-build --experimental-maximum-parallelization-width $(TEST_WIDTH)

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
