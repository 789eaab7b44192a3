package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/hallrate/hallrate/buffer"
	"github.com/hallrate/hallrate/internal/cli"
)

// outboxCheckCommand is the hidden subcommand the agent runs on its own
// binary to check its outbox before opening it: a corrupt file can make
// bbolt panic in a goroutine no recover reaches, and then only the child
// dies.
const outboxCheckCommand = "outbox-check"

// outboxCheckTimeout bounds the check; systemd gives the whole start 60s.
const outboxCheckTimeout = 30 * time.Second

// outboxChecker checks an outbox in a child process of this very binary.
func outboxChecker() buffer.CheckFunc {
	return buffer.ChildCheck(outboxCheckTimeout, nil, "/proc/self/exe", outboxCheckCommand)
}

func cmdOutboxCheck(_ context.Context, args []string, io stdio) error {
	fs := flags(outboxCheckCommand, "Check an outbox file: prints ok, locked or corrupt: REASON.", io)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(io.Err, "usage: hallrate-agent %s PATH\n", outboxCheckCommand)
		return errUsage
	}
	if err := buffer.CheckCommand(fs.Arg(0), io.Out); err != nil {
		return cli.ErrSilent
	}
	return nil
}
