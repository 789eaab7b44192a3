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
	"strings"
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
	// Hidden leaves the command out of the command list: it is for the
	// program itself (such as a check it runs in a child process).
	Hidden bool
}

// Program is a binary made of subcommands; the first is the default.
type Program struct {
	Name     string
	Commands []Command
	// Version, when set, adds the command "version", which prints the
	// name and the version.
	Version string
}

// commands are the program's commands, with "version" last when the
// program has a version.
func (p Program) commands() []Command {
	if p.Version == "" {
		return p.Commands
	}
	return append(p.Commands[:len(p.Commands):len(p.Commands)], Command{Name: "version", Summary: "print the version",
		Run: func(_ context.Context, args []string, io IO) error {
			if err := Parse(p.Flags("version", "Print the version of "+p.Name+".", io), args); err != nil {
				return err
			}
			fmt.Fprintln(io.Out, p.Name, p.Version)
			return nil
		}})
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
// with a flag or are empty). -h, -help or --help alone, or "help", lists
// the commands.
func (p Program) Dispatch(ctx context.Context, args []string, io IO) error {
	name := p.Commands[0].Name
	if len(args) > 0 && isHelp(args[0]) {
		p.usage(io.Err)
		return flag.ErrHelp
	}
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	if name == "help" {
		if len(args) > 0 {
			// "help run" is "run -h".
			return p.Dispatch(ctx, []string{args[0], "-h"}, io)
		}
		p.usage(io.Err)
		return nil
	}
	for _, c := range p.commands() {
		if c.Name == name {
			return c.Run(ctx, args, io)
		}
	}
	fmt.Fprintf(io.Err, "%s: unknown command %q\n\n", p.Name, name)
	p.usage(io.Err)
	return ErrUsage
}

func isHelp(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }

func (p Program) usage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s [command] [flags] [arguments]\n\ncommands:\n", p.Name)
	for i, c := range p.commands() {
		if c.Hidden {
			continue
		}
		s := c.Summary
		if i == 0 {
			s += " (the default)"
		}
		fmt.Fprintf(w, "  %-10s %s\n", c.Name, s)
	}
	fmt.Fprintf(w, "\nRun \"%s COMMAND -h\" (or \"%s help COMMAND\") for a command's flags.\n", p.Name, p.Name)
	fmt.Fprintln(w, "Flags may come before or after a command's arguments.")
}

// Flags returns a flag set for subcommand name that prints its usage to
// io.Err.
func (p Program) Flags(name, summary string, io IO) *flag.FlagSet {
	command, _, _ := strings.Cut(name, " ")
	fs := flag.NewFlagSet(p.Name+" "+command, flag.ContinueOnError)
	fs.SetOutput(io.Err)
	fs.Usage = func() {
		where := ""
		if strings.Contains(name, " ") {
			where = " (before or after the arguments)"
		}
		fmt.Fprintf(io.Err, "usage: %s %s [flags]\n\n%s\n\nflags%s:\n", p.Name, name, summary, where)
		fs.PrintDefaults()
	}
	return fs
}

// Parse parses args into fs for a command that takes no arguments,
// reporting a bad flag or a stray argument as [ErrUsage] (after one line
// saying what was wrong and the usage) and -h as flag.ErrHelp.
func Parse(fs *flag.FlagSet, args []string) error {
	rest, err := ParseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return Usagef(fs, "unexpected argument %q", rest[0])
	}
	return nil
}

// ParseArgs parses args into fs and returns the arguments that are not
// flags. Flags may come before, between or after the arguments, as in
// "cases import FILE.csv --config PATH"; everything after "--" is an
// argument. A bad flag is [ErrUsage], -h is flag.ErrHelp.
func ParseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			// The flag package has printed the reason and the usage.
			return nil, ErrUsage
		}
		left := fs.Args()
		if used := len(args) - len(left); used > 0 && args[used-1] == "--" {
			return append(rest, left...), nil
		}
		if len(left) == 0 {
			return rest, nil
		}
		rest = append(rest, left[0])
		args = left[1:]
	}
}

// Usagef reports a command line error of fs: one line saying what was
// wrong, then the usage. It returns [ErrUsage].
func Usagef(fs *flag.FlagSet, format string, a ...any) error {
	fmt.Fprintf(fs.Output(), "%s: %s\n\n", fs.Name(), fmt.Sprintf(format, a...))
	fs.Usage()
	return ErrUsage
}
