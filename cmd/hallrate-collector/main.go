// Command hallrate-collector is the hall side of hallrate: it receives the
// rating terminals' records from the hall broker, keeps each exactly once,
// audits them for loss, joins ratings with the e-supervision system's cases
// and hands that system one evaluation per case.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // hall time zones on systems without zoneinfo
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

// errUsage marks a command line error whose message was already printed.
var errUsage = errors.New("usage")

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdio stdio) error
}

type stdio struct {
	in       io.Reader
	out, err io.Writer
}

func commands() []command {
	return []command{
		{"run", "run the collector (the default)", cmdRun},
		{"cases", "cases import FILE.csv: add cases (办件) from a CSV file", cmdCases},
		{"report", "print a month's satisfaction report per staff and counter", cmdReport},
		{"verify", "verify FILE... | verify -store: re-verify signatures, chains and seqs offline", cmdVerify},
		{"acl", "print the hall Mosquitto's ACL made from the device inventory", cmdACL},
		{"version", "print the version", cmdVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := dispatch(ctx, os.Args[1:], stdio{os.Stdin, os.Stdout, os.Stderr})
	stop()
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	case errors.Is(err, errFlagged):
		os.Exit(1)
	default:
		fmt.Fprintln(os.Stderr, "hallrate-collector:", err)
		os.Exit(1)
	}
}

func dispatch(ctx context.Context, args []string, io stdio) error {
	name := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	if name == "help" {
		usage(io.err)
		return nil
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, args, io)
		}
	}
	fmt.Fprintf(io.err, "hallrate-collector: unknown command %q\n", name)
	usage(io.err)
	return errUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: hallrate-collector [command] [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nEvery command answers -h.")
}

// flags returns a flag set that prints its usage to io.err and reports a
// bad flag as errUsage.
func flags(name, summary string, io stdio) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.err)
	fs.Usage = func() {
		fmt.Fprintf(io.err, "usage: hallrate-collector %s [flags]\n\n%s\n\nflags:\n", name, summary)
		fs.PrintDefaults()
	}
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	return nil
}

func cmdVersion(_ context.Context, args []string, io stdio) error {
	fs := flags("version", "Print the collector's version.", io)
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(io.out, "hallrate-collector", version)
	return nil
}
