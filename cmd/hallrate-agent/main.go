// Command hallrate-agent runs a rating terminal at a service hall counter.
package main

import (
	"os"
	"runtime/debug"

	"github.com/hallrate/hallrate/internal/cli"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func program() cli.Program {
	return cli.Program{Name: "hallrate-agent", Version: version, Commands: []cli.Command{
		{Name: "run", Summary: "run the agent", Run: cmdRun},
		{Name: "selftest", Summary: "check the wiring: open every pin, press every button, light every LED", Run: cmdSelftest},
		{Name: "pubkey", Summary: "print this terminal's public signing key", Run: cmdPubkey},
		{Name: "provision", Summary: "write this terminal's configuration from flags or questions", Run: cmdProvision},
		{Name: "status", Summary: "ask the running agent how it is (broker, outbox, ticket, clock)", Run: cmdStatus},
		{Name: outboxCheckCommand, Summary: "check an outbox file (run by the agent in a child process)", Run: cmdOutboxCheck, Hidden: true},
	}}
}

func main() {
	runtimeDefaults()
	program().Main()
}

// runtimeDefaults sets the Go runtime for a small daemon, unless the
// environment sets it: half the default heap growth, since its heap is a
// few megabytes (docs/benchmarks.md has the figures). One processor
// (GOMAXPROCS=1) was measured too: 150 µs slower from press to broker on
// two cores, and a Pi Zero has one core anyway.
func runtimeDefaults() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
}
