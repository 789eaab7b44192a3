// Command hallrate-collector is the hall side of hallrate: it receives the
// rating terminals' records from the hall broker, keeps each exactly once,
// audits them for loss, joins ratings with the e-supervision system's cases
// and hands that system one evaluation per case.
package main

import (
	"context"
	"flag"
	"fmt"
	_ "time/tzdata" // hall time zones on systems without zoneinfo

	"github.com/hallrate/hallrate/internal/cli"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

// errUsage marks a command line error whose message was already printed.
var errUsage = cli.ErrUsage

type stdio = cli.IO

func program() cli.Program {
	return cli.Program{Name: "hallrate-collector", Commands: []cli.Command{
		{Name: "run", Summary: "run the collector", Run: cmdRun},
		{Name: "cases", Summary: "cases import FILE.csv: add cases (办件) from a CSV file", Run: cmdCases},
		{Name: "report", Summary: "print a month's satisfaction report per staff and counter", Run: cmdReport},
		{Name: "verify", Summary: "verify FILE... | verify -store: re-verify signatures, chains and seqs offline", Run: cmdVerify},
		{Name: "acl", Summary: "print the hall Mosquitto's ACL made from the device inventory", Run: cmdACL},
		{Name: "version", Summary: "print the version", Run: cmdVersion},
	}}
}

func main() { program().Main() }

func dispatch(ctx context.Context, args []string, io stdio) error {
	return program().Dispatch(ctx, args, io)
}

// flags returns a flag set that prints its usage to io.Err.
func flags(name, summary string, io stdio) *flag.FlagSet { return program().Flags(name, summary, io) }

func parse(fs *flag.FlagSet, args []string) error { return cli.Parse(fs, args) }

func cmdVersion(_ context.Context, args []string, io stdio) error {
	fs := flags("version", "Print the collector's version.", io)
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(io.Out, "hallrate-collector", version)
	return nil
}
