package buffer

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	bolt "go.etcd.io/bbolt"
)

func openKeep(t *testing.T, path string, keep int64, age time.Duration, clock clockwork.Clock) *Bolt {
	t.Helper()
	b, err := Open(path, Options{LockTimeout: 200 * time.Millisecond, KeepUnconfirmed: keep, KeepUnconfirmedAge: age, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func seqsOf(us []Unconfirmed) string {
	var s []uint64
	for _, u := range us {
		s = append(s, u.Seq)
	}
	return fmt.Sprint(s)
}

func all(Unconfirmed) bool { return true }

// An acknowledged record awaits the hall's confirmation across a restart,
// is listed for resending while the hall misses it, and leaves the file
// once confirmed.
func TestAcknowledgedAwaitConfirmation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	b := openKeep(t, path, 100, 0, clockwork.NewRealClock())
	appendN(t, b, 6)
	if err := b.Ack(1, 2, 3, 4, 5); err != nil {
		t.Fatal(err)
	}
	if w, _ := b.Unconfirmed(); w != 5 || b.Len() != 1 {
		t.Fatalf("after the PUBACKs: %d awaiting, %d pending; want 5 and 1", w, b.Len())
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openKeep(t, path, 100, 0, clockwork.NewRealClock())
	defer b.Close()
	if w, _ := b.Unconfirmed(); w != 5 || b.Len() != 1 {
		t.Fatalf("after a restart: %d awaiting, %d pending; want 5 and 1", w, b.Len())
	}
	p, _ := b.Pending(0, 10)
	if len(p) != 1 || p[0].Seq != 6 {
		t.Fatalf("pending %v, want seq 6 only", p)
	}
	// Stored through 1, and 3 above it; 2 missing; 4 and 5 not seen yet,
	// and not read unless asked for.
	re, err := b.Confirm(Confirmation{Through: 1, Highest: 3, Missing: []uint64{2}}, 10, all)
	if err != nil || seqsOf(re) != "[2]" {
		t.Fatalf("offered for resending %s, %v; want [2]", seqsOf(re), err)
	}
	re, err = b.Confirm(Confirmation{Through: 1, Highest: 3, Missing: []uint64{2}, Beyond: true}, 10, all)
	if err != nil {
		t.Fatal(err)
	}
	if got := seqsOf(re); got != "[2 4 5]" {
		t.Fatalf("offered for resending %s, want [2 4 5]", got)
	}
	if !re[0].Missing || re[1].Missing || string(re[0].Data) != b.Epoch()+":2" {
		t.Fatalf("resend entries %+v", re)
	}
	if w, _ := b.Unconfirmed(); w != 3 {
		t.Fatalf("%d awaiting after the confirmation, want 3", w)
	}
	// A press's commit takes the confirmed out of the file.
	appendN(t, b, 1)
	if w, _ := b.Unconfirmed(); w != 3 {
		t.Fatalf("%d awaiting after the commit, want 3", w)
	}
	re, err = b.Confirm(Confirmation{Through: 5, Highest: 5}, 10, all)
	if err != nil || len(re) != 0 {
		t.Fatalf("after all stored: %v %v", re, err)
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if w, d := b.Unconfirmed(); w != 0 || d != 0 {
		t.Fatalf("%d awaiting, %d dropped; want none", w, d)
	}
	n := 0
	b.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucketUnconfirmed).Stats().KeyN; return nil })
	if n != 0 {
		t.Fatalf("%d records left in the unconfirmed bucket", n)
	}
}

// A record confirmed before a commit moved it is never kept.
func TestConfirmedBeforeTheMove(t *testing.T) {
	b := openKeep(t, filepath.Join(t.TempDir(), "outbox.db"), 100, 0, clockwork.NewRealClock())
	defer b.Close()
	appendN(t, b, 2)
	b.Ack(1, 2)
	if _, err := b.Confirm(Confirmation{Through: 2, Highest: 2}, 10, all); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if w, _ := b.Unconfirmed(); w != 0 || b.Len() != 0 {
		t.Fatalf("%d awaiting, %d pending", w, b.Len())
	}
}

// Keeping is bounded by count and age; what leaves unconfirmed is counted.
func TestUnconfirmedBounds(t *testing.T) {
	clock := clockwork.NewFakeClockAt(time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC))
	b := openKeep(t, filepath.Join(t.TempDir(), "outbox.db"), 3, time.Hour, clock)
	defer b.Close()
	appendN(t, b, 5)
	b.Ack(1, 2, 3, 4, 5)
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if w, d := b.Unconfirmed(); w != 3 || d != 2 {
		t.Fatalf("count bound: %d awaiting, %d dropped; want 3 and 2", w, d)
	}
	re, _ := b.Confirm(Confirmation{Beyond: true}, 10, all)
	if got := seqsOf(re); got != "[3 4 5]" {
		t.Fatalf("kept %s, want the newest [3 4 5]", got)
	}
	clock.Advance(2 * time.Hour)
	appendN(t, b, 1)
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if w, d := b.Unconfirmed(); w != 0 || d != 5 {
		t.Fatalf("age bound: %d awaiting, %d dropped; want 0 and 5", w, d)
	}
}

// Without keeping, an acknowledged record leaves at once, as before.
func TestNoKeepingRemovesOnAck(t *testing.T) {
	b := openT(t, filepath.Join(t.TempDir(), "outbox.db"))
	defer b.Close()
	appendN(t, b, 3)
	b.Ack(1, 2, 3)
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if w, _ := b.Unconfirmed(); w != 0 || b.Len() != 0 {
		t.Fatalf("%d awaiting, %d pending", w, b.Len())
	}
}

// An outbox written before the unconfirmed bucket existed opens with its
// pending records, and keeps what is acknowledged from then on.
func TestOldOutboxGainsTheBucket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	b := openT(t, path)
	appendN(t, b, 3)
	if err := b.db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketUnconfirmed) }); err != nil {
		t.Fatal(err)
	}
	b.Close()
	b = openKeep(t, path, 10, 0, clockwork.NewRealClock())
	defer b.Close()
	if b.Len() != 3 {
		t.Fatalf("pending %d, want 3", b.Len())
	}
	b.Ack(1)
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if w, _ := b.Unconfirmed(); w != 1 {
		t.Fatalf("%d awaiting, want 1", w)
	}
}
