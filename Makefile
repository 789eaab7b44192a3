# hallrate: rating terminal agent and hall collector.

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
GOFLAGS   := -trimpath
BIN       := bin
CMDS      := hallrate-agent hallrate-collector
PREFIX    ?= /usr
DESTDIR   ?=
export CGO_ENABLED = 0
SHELL     := /bin/bash

.DEFAULT_GOAL := help

.PHONY: help
help: ## show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## build both binaries for this machine into bin/
	@mkdir -p $(BIN)
	@test -x $(BIN)/hallrate-collector || echo "building hallrate-agent and hallrate-collector: the first build compiles every dependency (SQLite, PostgreSQL, MQTT, the dashboard) and takes a few minutes; later builds take seconds"
	$(GO) build $(GOFLAGS) -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

.PHONY: test
test: ## vet, then run every test (Mosquitto tests skip if mosquitto is not installed)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m ./...

.PHONY: test-race
test-race: ## run every test with the race detector (needs cgo: apt-get install gcc)
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 30m ./...

# The packages whose goroutines share state: the agent's press loop, outbox
# and uplink, the collector's ingest, joins, deliveries and pages. Their unit
# tests run in a few minutes under the race detector; e2e runs the binaries.
RACE_PKGS := ./agent/... ./buffer ./uplink ./binding ./device/... ./voice ./hall/...

.PHONY: race
race: ## the race detector on the packages with shared state (needs cgo: apt-get install gcc); CI runs it
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m $(RACE_PKGS)

.PHONY: lint
lint: ## gofmt, go vet, go mod tidy -diff and staticcheck (pinned in go.mod as a tool); CI runs it
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) mod tidy -diff
	$(GO) tool staticcheck ./...

.PHONY: bench
bench: ## measure: press to durable and press to broker next to the fdatasync floor, backlog drain, idle and backlog memory, bytes per press
	$(GO) test -run '^$$' -bench 'Append|FsyncFloor' -benchtime 3000x ./buffer
	$(GO) test -run '^$$' -bench PressToDurable -benchtime 3000x ./agent
	$(GO) test -run '^$$' -bench PressToBroker -benchtime 1000x -count 3 ./e2e
	$(GO) test -run '^$$' -bench 'Drain10k' -benchtime 5x ./uplink
	$(GO) test -run '^$$' -bench 'Drain100k' -benchtime 1x -timeout 20m ./uplink
	HALLRATE_BENCH=1 $(GO) test -count=1 -timeout 20m -run 'TestProcessFigures|TestBacklogFigures' -v ./e2e | grep -E '^figure:|^(ok|FAIL)'

.PHONY: chaos
chaos: ## fault injection as root: kill -9, broker crash and freeze, partitions, full disk; hall: collector kill -9, PostgreSQL crash, e-supervision down (a few minutes)
	HALLRATE_CHAOS=1 HALLRATE_REQUIRE_MOSQUITTO=1 $(GO) test -count=1 -timeout 15m -run 'TestChaos|TestDiskFull|TestCorruptOutbox|TestHallChaos' -v ./e2e 2>&1 \
		| grep -v 'msg=press ' | grep -E '^(chaos:|hall chaos:|disk full:|--- |ok|FAIL|PASS)|_test.go' ; exit $${PIPESTATUS[0]}

.PHONY: bench-hall
bench-hall: ## collector benchmarks: ingest into SQLite and PostgreSQL, join + export (PostgreSQL skipped if not installed)
	$(GO) test -run '^$$' -bench Ingest -benchtime 20000x ./hall/ingest
	$(GO) test -run '^$$' -bench JoinExport -benchtime 5000x ./hall/esup

.PHONY: test-hall
test-hall: ## collector tests with PostgreSQL required (apt-get install postgresql)
	HALLRATE_REQUIRE_POSTGRES=1 $(GO) test -count=1 ./hall/... ./internal/pgtest ./cmd/hallrate-collector
	HALLRATE_REQUIRE_POSTGRES=1 $(GO) test -count=1 -run 'Hall' ./e2e

.PHONY: cross
cross: ## build for linux/arm (GOARM=6 and 7) and linux/arm64 into bin/
	@mkdir -p $(BIN)
	@for target in arm:6 arm:7 arm64: ; do \
		arch=$${target%%:*}; arm=$${target##*:}; suffix=$$arch$$arm; \
		for c in $(CMDS); do \
			echo "build $$c linux/$$suffix"; \
			GOOS=linux GOARCH=$$arch GOARM=$$arm $(GO) build $(GOFLAGS) -ldflags '$(LDFLAGS)' \
				-o $(BIN)/$$c-linux-$$suffix ./cmd/$$c || exit 1; \
		done; \
	done
	@ls -l $(BIN)/*-linux-*

# The agent's size budget: a Pi Zero has 512 MB and a slow SD card.
AGENT_MAX_BYTES := 8000000

.PHONY: size
size: ## build the agent for armv6, armv7 and arm64 as releases are built, print the sizes; fail if armv6 is above 8,000,000 bytes
	@mkdir -p $(BIN)
	@for target in arm:6 arm:7 arm64: ; do \
		arch=$${target%%:*}; arm=$${target##*:}; suffix=$$arch$$arm; \
		out=$(BIN)/hallrate-agent-linux-$$suffix; \
		GOOS=linux GOARCH=$$arch GOARM=$$arm $(GO) build $(GOFLAGS) -ldflags '$(LDFLAGS)' -o $$out ./cmd/hallrate-agent || exit 1; \
		printf 'size: hallrate-agent linux/%-6s %10d bytes\n' $$suffix $$(stat -c %s $$out); \
	done
	@n=$$(stat -c %s $(BIN)/hallrate-agent-linux-arm6); \
	if [ $$n -gt $(AGENT_MAX_BYTES) ]; then \
		echo "size: FAIL: the armv6 agent is $$n bytes, above $(AGENT_MAX_BYTES)"; exit 1; \
	else echo "size: ok: the armv6 agent is $$n bytes, at most $(AGENT_MAX_BYTES)"; fi

.PHONY: demo
demo: build ## a hall on this machine: collector with embedded broker and demo tickets, and a simulated terminal (type 1-4)
	@$(MAKE) -s voice >/dev/null 2>&1 || echo "demo: espeak-ng not installed, so no voice prompts (apt-get install espeak-ng)"
	@BIN=$(BIN) VOICE_DIR=$(VOICE_DIR) ./scripts/demo.sh

# The default Mandarin voice prompts, made from their text with espeak-ng:
# the same text and espeak-ng version make the same files. The voice is
# cmn-latn-pinyin: espeak-ng 1.51's "cmn" turns the characters into pinyin
# and then reads that pinyin as English ("ni3" as "ni three").
VOICE_DIR := dist/voice/zh
.PHONY: voice
voice: ## make the default Mandarin voice prompts (WAV) from packaging/voice/zh/*.txt with espeak-ng into dist/voice/zh
	@command -v espeak-ng >/dev/null || { echo "voice: espeak-ng not installed (apt-get install espeak-ng)" >&2; exit 1; }
	@mkdir -p $(VOICE_DIR)
	@for f in packaging/voice/zh/*.txt; do \
		espeak-ng -v cmn-latn-pinyin -s 150 -w $(VOICE_DIR)/$$(basename $$f .txt).wav -f $$f || exit 1; \
	done
	@echo "voice: $$(ls $(VOICE_DIR)/*.wav | wc -l) prompts in $(VOICE_DIR)"

.PHONY: install
install: build ## install binaries, the systemd unit, sysusers/tmpfiles/udev files and an example agent config under DESTDIR/PREFIX
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)/lib/systemd/system
	install -m 0755 $(BIN)/hallrate-agent $(BIN)/hallrate-collector $(DESTDIR)$(PREFIX)/bin/
	sed 's|/usr/bin/hallrate-agent|$(PREFIX)/bin/hallrate-agent|' systemd/hallrate-agent.service > $(DESTDIR)/lib/systemd/system/hallrate-agent.service
	install -d $(DESTDIR)$(PREFIX)/lib/sysusers.d $(DESTDIR)$(PREFIX)/lib/tmpfiles.d $(DESTDIR)$(PREFIX)/lib/udev/rules.d $(DESTDIR)/etc/hallrate
	install -m 0644 systemd/hallrate-agent.sysusers.conf $(DESTDIR)$(PREFIX)/lib/sysusers.d/hallrate-agent.conf
	install -m 0644 systemd/hallrate-agent.tmpfiles.conf $(DESTDIR)$(PREFIX)/lib/tmpfiles.d/hallrate-agent.conf
	install -m 0644 systemd/60-hallrate-gpio.rules $(DESTDIR)$(PREFIX)/lib/udev/rules.d/
	@# A configuration that is there already is never replaced.
	test -e $(DESTDIR)/etc/hallrate/agent.toml || install -m 0644 packaging/agent.toml $(DESTDIR)/etc/hallrate/agent.toml

# Debian packages of the agent: Debian arch, GOARCH, GOARM. armhf is built
# for ARMv6 so one package runs on every Pi from the Zero up.
DEB_TARGETS := amd64:amd64: arm64:arm64: armhf:arm:6
DEB_VERSION ?= $(shell v=$$(git describe --tags --match 'v[0-9]*' 2>/dev/null) && echo "$$v" | sed 's/^v//; s/-/+/g' || echo "0.0.0+git$$(git rev-parse --short HEAD 2>/dev/null || echo unknown)")
NFPM        ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2

.PHONY: deb
deb: voice ## build the agent's .deb packages for amd64, arm64 and armhf (GOARM=6) into dist/
	@mkdir -p dist && rm -f dist/hallrate-agent_*.deb
	@for t in $(DEB_TARGETS); do \
		deb=$${t%%:*}; rest=$${t#*:}; goarch=$${rest%%:*}; goarm=$${rest#*:}; \
		echo "build hallrate-agent $(DEB_VERSION) for $$deb (GOARCH=$$goarch GOARM=$$goarm)"; \
		GOOS=linux GOARCH=$$goarch GOARM=$$goarm $(GO) build $(GOFLAGS) -ldflags '$(LDFLAGS)' \
			-o dist/stage/hallrate-agent ./cmd/hallrate-agent || exit 1; \
		ARCH=$$deb VERSION='$(DEB_VERSION)' $(NFPM) package --config packaging/nfpm.yaml --packager deb --target dist/ || exit 1; \
	done
	@ls -l dist/*.deb

.PHONY: deb-check
deb-check: deb ## build the .deb packages and check their contents, architecture and scripts
	packaging/check-deb.sh dist

.PHONY: clean
clean: ## remove build output
	rm -rf $(BIN) dist
