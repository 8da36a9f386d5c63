# The two commands of the README: `make up` runs the whole stack, `make test` runs every test.
SHELL := /bin/bash

.PHONY: up down reset test test-ui test-readme test-faults test-faults-long fuzz lint bench-auth bench-queue bench-ingest bench-e2e bench-audience migrate

up:
	@bash scripts/up.sh

# Stops the stack of `make up` (run from another terminal), from its pid files.
down:
	@bash scripts/down.sh

# Drops the local stack's data (database, Redis keys, .ezpulze/) after a typed confirmation;
# `make reset CONFIRM=yes` does not ask.
reset:
	@CONFIRM=$(CONFIRM) bash scripts/reset.sh

test:
	@bash scripts/test.sh

# The fault suite (part of make test); test-faults-long: its long size on release binaries.
test-faults:
	@bash scripts/faults.sh

test-faults-long:
	@bash scripts/faults.sh --long

# The browser tests alone; UI_SCREENSHOTS=refresh rewrites the committed screenshots.
test-ui:
	@bash scripts/ui-test.sh

# The README's "Try it" block and make up's banner commands against a fresh stack.
test-readme:
	@bash scripts/readme-test.sh

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

bench-audience:
	@bash scripts/bench-audience.sh
