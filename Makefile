# Plantroom. `make demo` runs the whole system on this machine; `make test`
# runs every unit and integration test (a local ClickHouse is started on
# demand by the tests; see scripts/clickhouse.sh).
GO      ?= go
BIN     := bin
PKGS    := ./...
TESTFLAGS ?= -race -timeout 12m

.PHONY: all build test test-arm test-cluster bench demo drills lint clean fuzz release screenshots

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/edge-agent ./edge/cmd/edge-agent
	$(GO) build -o $(BIN)/cloud ./cloud/cmd/cloud
	$(GO) build -o $(BIN)/devsim ./devices/cmd/devsim

test: build
	$(GO) vet $(PKGS)
	$(GO) test $(TESTFLAGS) $(PKGS)

# The edge packages' tests on 32-bit ARM under qemu-arm-static.
test-arm:
	bash scripts/test-arm.sh

# The store on a two-shard ClickHouse cluster with ZooKeeper (started and
# stopped by the script).
test-cluster:
	bash scripts/chcluster.sh test

bench: build
	bash scripts/bench.sh

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecodeBatch -fuzztime 60s ./protocol/

# Static, stamped binaries for linux/amd64, arm64 and armv7, the
# plantroom-edge .deb per architecture and SHA256SUMS, in dist/.
release:
	bash scripts/release.sh

# PNGs of every console page at laptop and phone widths, from the browser
# test against a whole system on loopback (needs chromium).
screenshots:
	PLANTROOM_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -count=1 -timeout 15m -run '^(TestConsole|TestResidentRepairLoop)$$' -v ./cloud/console/browser/

demo: build
	bash scripts/demo.sh

drills: build
	bash scripts/drills.sh

lint:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

clean:
	rm -rf $(BIN) dist
