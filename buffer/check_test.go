package buffer

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestChildCheckVerdicts runs stand-in children (sh scripts) for the check
// command: only a clean "ok" is sound; "locked" is ErrLocked; a crash, a
// hang or any other answer is corrupt.
func TestChildCheckVerdicts(t *testing.T) {
	sh := func(script string) CheckFunc { return ChildCheck(2*time.Second, nil, "sh", "-c", script) }
	if err := sh(`echo ok`)("f"); err != nil {
		t.Fatalf("ok: %v", err)
	}
	if err := sh(`echo locked`)("f"); !errors.Is(err, ErrLocked) {
		t.Fatalf("locked: %v", err)
	}
	for name, script := range map[string]string{
		"crash":          `echo 'panic: freepages: multiple references' >&2; kill -ABRT $$`,
		"exit 2":         `echo ok; exit 2`,
		"corrupt":        `echo 'corrupt: checksum error'; exit 1`,
		"silent":         `exit 0`,
		"hang":           `exec sleep 30`,
		"path in answer": `echo "$0"`,
	} {
		err := sh(script)("f")
		if err == nil || errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "corrupt") {
			t.Errorf("%s: got %v, want a corrupt verdict", name, err)
		}
	}
}

// TestOpenMovesAsideOnFailedCheck: a file the check calls corrupt is moved
// aside and replaced by a new epoch; one it calls locked is left alone.
func TestOpenMovesAsideOnFailedCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	b, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	epoch := b.Epoch()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	locked := func(string) error { return ErrLocked }
	if _, err := Open(path, Options{Check: locked}); !errors.Is(err, ErrLocked) {
		t.Fatalf("locked check: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("a locked outbox was touched: %v", err)
	}
	corrupt := func(string) error { return errors.New("check outbox: corrupt: child crashed") }
	b, err = Open(path, Options{Check: corrupt})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.MovedAside() == "" || b.Epoch() == epoch {
		t.Fatalf("moved aside %q, epoch %s (old %s)", b.MovedAside(), b.Epoch(), epoch)
	}
}
