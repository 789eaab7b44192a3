package main

import (
	"context"
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
	return buffer.ChildCheck(outboxCheckTimeout, nil, "/proc/self/exe", outboxCheckCommand, "--")
}

func cmdOutboxCheck(_ context.Context, args []string, io cli.IO) error {
	fs := program().Flags(outboxCheckCommand, "Check an outbox file: prints ok, locked or corrupt: REASON.", io)
	rest, err := cli.ParseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return cli.Usagef(fs, "want one outbox file, have %d arguments", len(rest))
	}
	if err := buffer.CheckCommand(rest[0], io.Out); err != nil {
		return cli.ErrSilent
	}
	return nil
}
