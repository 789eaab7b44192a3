// Command hallrate-collector is the hall side of hallrate: it receives the
// rating terminals' records from the hall broker, keeps each exactly once,
// audits them for loss, joins ratings with the e-supervision system's cases
// and hands that system one evaluation per case.
package main

import (
	_ "time/tzdata" // hall time zones on systems without zoneinfo

	"github.com/hallrate/hallrate/internal/cli"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func program() cli.Program {
	return cli.Program{Name: "hallrate-collector", Version: version, Commands: []cli.Command{
		{Name: "run", Summary: "run the collector", Run: cmdRun},
		{Name: "cases", Summary: "cases import FILE.csv: add cases (办件) from a CSV file", Run: cmdCases},
		{Name: "report", Summary: "print a month's satisfaction report per staff and counter", Run: cmdReport},
		{Name: "verify", Summary: "verify FILE... | verify -store: re-verify signatures, chains and seqs offline", Run: cmdVerify},
		{Name: "acl", Summary: "print the hall Mosquitto's ACL made from the device inventory", Run: cmdACL},
	}}
}

func main() { program().Main() }
