// Package cli is the command line shape both hallrate binaries share:
// subcommands with a default, -h on every one, one-line errors, exit codes
// 0 (done or help), 1 (failed) and 2 (bad command line), and signals that
// cancel the context.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// ErrUsage marks a command line error whose message was already printed:
// exit code 2.
var ErrUsage = errors.New("usage")

// ErrSilent marks a failure the command has already reported in full (a
// verification report, say): exit code 1 and no further line.
var ErrSilent = errors.New("failed")

// IO is where a command reads and writes.
type IO struct {
	In       io.Reader
	Out, Err io.Writer
}

// Command is one subcommand.
type Command struct {
	Name, Summary string
	Run           func(ctx context.Context, args []string, io IO) error
}

// Program is a binary made of subcommands; the first is the default.
type Program struct {
	Name     string
	Commands []Command
}

// Main runs the program on the process's arguments and exits with its
// code. SIGINT and SIGTERM cancel the command's context.
func (p Program) Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := p.Dispatch(ctx, os.Args[1:], IO{os.Stdin, os.Stdout, os.Stderr})
	stop()
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
	case errors.Is(err, ErrUsage):
		os.Exit(2)
	case errors.Is(err, ErrSilent):
		os.Exit(1)
	default:
		fmt.Fprintf(os.Stderr, "%s: %v\n", p.Name, err)
		os.Exit(1)
	}
}

// Dispatch runs the subcommand args name (the default one when args start
// with a flag or are empty).
func (p Program) Dispatch(ctx context.Context, args []string, io IO) error {
	name := p.Commands[0].Name
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	if name == "help" {
		p.usage(io.Err)
		return nil
	}
	for _, c := range p.Commands {
		if c.Name == name {
			return c.Run(ctx, args, io)
		}
	}
	fmt.Fprintf(io.Err, "%s: unknown command %q\n", p.Name, name)
	p.usage(io.Err)
	return ErrUsage
}

func (p Program) usage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s [command] [flags]\n\ncommands:\n", p.Name)
	for i, c := range p.Commands {
		s := c.Summary
		if i == 0 {
			s += " (the default)"
		}
		fmt.Fprintf(w, "  %-10s %s\n", c.Name, s)
	}
	fmt.Fprintln(w, "\nEvery command answers -h.")
}

// Flags returns a flag set for subcommand name that prints its usage to
// io.Err.
func (p Program) Flags(name, summary string, io IO) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Err)
	fs.Usage = func() {
		fmt.Fprintf(io.Err, "usage: %s %s [flags]\n\n%s\n\nflags:\n", p.Name, name, summary)
		fs.PrintDefaults()
	}
	return fs
}

// Parse parses args into fs, reporting a bad flag or a stray argument as
// [ErrUsage] and -h as flag.ErrHelp.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return ErrUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		return ErrUsage
	}
	return nil
}
