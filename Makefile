# The two commands of the README: `make up` runs the whole stack, `make test` runs every test.
SHELL := /bin/bash

.PHONY: up test test-faults test-faults-long fuzz lint bench-auth bench-queue bench-ingest bench-e2e migrate

up:
	@bash scripts/up.sh

test:
	@bash scripts/test.sh

test-faults:
	@bash scripts/faults.sh

test-faults-long:
	@bash scripts/faults.sh --long

fuzz:
	@bash scripts/fuzz.sh

lint:
	@bash scripts/lint.sh

bench-auth:
	@bash scripts/bench-auth.sh

bench-queue:
	@bash scripts/bench-queue.sh

bench-ingest:
	@bash scripts/bench-ingest.sh

bench-e2e:
	@bash scripts/bench-e2e.sh
