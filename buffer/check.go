package buffer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// CheckFunc validates an existing outbox file before [Open] trusts it. It
// returns nil for a sound file, an error wrapping [ErrLocked] when another
// process holds the file, and any other error for a corrupt one.
type CheckFunc func(path string) error

// Answers of the check command on its standard output.
const (
	checkOK     = "ok"
	checkLocked = "locked"
)

// CheckFile opens the outbox at path exactly as [Open] does (including the
// rebuild of the freelist), checks every page, then closes it. Some
// corruptions make bbolt panic in a goroutine of its own, which nothing in
// this process can recover: run CheckFile in a child process (see
// [ChildCheck]) whose crash then means "corrupt".
func CheckFile(path string, lockTimeout time.Duration) error {
	if lockTimeout <= 0 {
		lockTimeout = 2 * time.Second
	}
	if !needsCheck(path) {
		// Opening would create the file.
		return fmt.Errorf("check outbox %s: missing or empty", path)
	}
	b, err := openBolt(path, lockTimeout)
	if err != nil {
		return err
	}
	return b.Close()
}

// CheckCommand runs [CheckFile] on path and writes its one-line answer to
// w: "ok", "locked", or "corrupt: reason". It is the body of a hidden
// subcommand that [ChildCheck] runs; it returns the check's error for the
// exit status.
func CheckCommand(path string, w io.Writer) error {
	err := CheckFile(path, 0)
	switch {
	case err == nil:
		_, werr := fmt.Fprintln(w, checkOK)
		return werr
	case errors.Is(err, ErrLocked):
		_, werr := fmt.Fprintln(w, checkLocked)
		return werr
	default:
		_, _ = fmt.Fprintln(w, "corrupt: "+oneLine(err.Error())) // the exit status says it too
		return err
	}
}

// ChildCheck returns a [CheckFunc] that runs argv followed by the file's
// path as a child process (for the agent: its own binary and a hidden
// subcommand that calls [CheckCommand]), so that no panic in any bbolt
// goroutine can take the caller down. A child that crashes, hangs past
// timeout or answers anything but "ok" means corrupt; "locked" means
// [ErrLocked]. env, when not nil, replaces the child's environment.
func ChildCheck(timeout time.Duration, env []string, argv ...string) CheckFunc {
	return func(path string) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, argv[0], append(argv[1:len(argv):len(argv)], path)...)
		if env != nil {
			cmd.Env = env
		}
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		cmd.WaitDelay = time.Second
		err := cmd.Run()
		answer := strings.TrimSpace(out.String())
		switch {
		case err == nil && answer == checkOK:
			return nil
		case err == nil && answer == checkLocked:
			return fmt.Errorf("check outbox %s: %w", path, ErrLocked)
		case ctx.Err() != nil:
			return fmt.Errorf("check outbox %s: corrupt: check did not finish within %s", path, timeout)
		case strings.HasPrefix(answer, "corrupt: "):
			return fmt.Errorf("check outbox %s: %s", path, answer)
		}
		return fmt.Errorf("check outbox %s: corrupt: check process failed (%v): %s", path, err, lastLine(errOut.String()))
	}
}

// needsCheck reports whether path holds a file worth checking: a missing or
// empty file is simply created.
func needsCheck(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Size() > 0
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// lastLine returns the last meaningful line of a crashed child's stderr:
// for a Go panic that is the "panic: ..." line when there is one.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for _, l := range lines {
		if strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ") || strings.HasPrefix(l, "unexpected fault") {
			return oneLine(l)
		}
	}
	return oneLine(lines[len(lines)-1])
}
