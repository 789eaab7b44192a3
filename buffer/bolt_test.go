package buffer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	bolt "go.etcd.io/bbolt"

	"github.com/hallrate/hallrate/internal/fsfloor"
	"github.com/hallrate/hallrate/internal/quantile"
)

func build(s Slot) ([]byte, []byte, error) {
	return []byte(fmt.Sprintf("%s:%d", s.Epoch, s.Seq)), nil, nil
}

func openT(t *testing.T, path string) *Bolt {
	t.Helper()
	b, err := Open(path, Options{LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func appendN(t *testing.T, o Outbox, n int) []uint64 {
	t.Helper()
	var seqs []uint64
	for i := 0; i < n; i++ {
		s, err := o.Append(build, nil)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, s)
	}
	return seqs
}

func TestOutboxContract(t *testing.T) {
	mem, err := NewMemory()
	if err != nil {
		t.Fatal(err)
	}
	for name, o := range map[string]Outbox{
		"bolt":   openT(t, filepath.Join(t.TempDir(), "outbox.db")),
		"memory": mem,
	} {
		t.Run(name, func(t *testing.T) {
			defer o.Close()
			if got := appendN(t, o, 5); fmt.Sprint(got) != "[1 2 3 4 5]" {
				t.Fatalf("seqs %v", got)
			}
			if o.LastSeq() != 5 || o.Len() != 5 {
				t.Fatalf("last %d len %d", o.LastSeq(), o.Len())
			}
			p, err := o.Pending(2, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(p) != 2 || p[0].Seq != 3 || p[1].Seq != 4 || string(p[0].Data) != o.Epoch()+":3" {
				t.Fatalf("pending %+v", p)
			}
			if err := o.Ack(1, 3, 99); err != nil {
				t.Fatal(err)
			}
			if o.Len() != 3 {
				t.Fatalf("len after ack %d", o.Len())
			}
			p, _ = o.Pending(0, 10)
			if len(p) != 3 || p[0].Seq != 2 || p[1].Seq != 4 || p[2].Seq != 5 {
				t.Fatalf("pending after ack %+v", p)
			}
			if _, err := o.Append(build, []byte("state-1")); err != nil {
				t.Fatal(err)
			}
			if st, _ := o.State(); string(st) != "state-1" {
				t.Fatalf("state %q", st)
			}
			if err := o.SaveState([]byte("state-2")); err != nil {
				t.Fatal(err)
			}
			if st, _ := o.State(); string(st) != "state-2" {
				t.Fatalf("state %q", st)
			}
		})
	}
}

func TestSeqSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := openT(t, path)
	epoch := o.Epoch()
	appendN(t, o, 3)
	if err := o.Ack(1, 2, 3); err != nil {
		t.Fatal(err)
	}
	o.Close()
	o = openT(t, path)
	defer o.Close()
	if o.Epoch() != epoch {
		t.Fatalf("epoch changed on reopen: %s -> %s", epoch, o.Epoch())
	}
	// Acknowledging everything must not reset the sequence.
	if s := appendN(t, o, 1)[0]; s != 4 {
		t.Fatalf("seq after reopen %d, want 4", s)
	}
	if o.Len() != 1 {
		t.Fatalf("len %d", o.Len())
	}
}

func TestBuildErrorStoresNothing(t *testing.T) {
	o := openT(t, filepath.Join(t.TempDir(), "outbox.db"))
	defer o.Close()
	_, err := o.Append(func(Slot) ([]byte, []byte, error) { return nil, nil, errors.New("boom") }, []byte("s"))
	if err == nil {
		t.Fatal("no error")
	}
	if o.Len() != 0 || o.LastSeq() != 0 {
		t.Fatalf("len %d last %d", o.Len(), o.LastSeq())
	}
	if st, _ := o.State(); st != nil {
		t.Fatalf("state written by a failed append: %q", st)
	}
	if s := appendN(t, o, 1)[0]; s != 1 {
		t.Fatalf("seq %d after failed append, want 1 (no gap)", s)
	}
}

func TestChainCarriedAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	mem, _ := NewMemory()
	for name, o := range map[string]Outbox{"bolt": openT(t, path), "memory": mem} {
		t.Run(name, func(t *testing.T) {
			var seen []string
			link := func(s Slot) ([]byte, []byte, error) {
				seen = append(seen, string(s.Chain))
				return []byte("r"), []byte(fmt.Sprintf("after-%d", s.Seq)), nil
			}
			for i := 0; i < 2; i++ {
				if _, err := o.Append(link, nil); err != nil {
					t.Fatal(err)
				}
			}
			if b, ok := o.(*Bolt); ok {
				b.Close()
				o = openT(t, path)
			}
			defer o.Close()
			if _, err := o.Append(link, nil); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(seen) != "[ after-1 after-2]" {
				t.Fatalf("chain values seen %q", seen)
			}
		})
	}
}

func TestNewFileNewEpoch(t *testing.T) {
	dir := t.TempDir()
	a := openT(t, filepath.Join(dir, "a.db"))
	b := openT(t, filepath.Join(dir, "b.db"))
	defer a.Close()
	defer b.Close()
	if a.Epoch() == b.Epoch() || len(a.Epoch()) != 8 {
		t.Fatalf("epochs %q %q", a.Epoch(), b.Epoch())
	}
}

func TestCorruptFileMovedAside(t *testing.T) {
	for name, content := range map[string][]byte{
		"garbage":   []byte(strings.Repeat("not a bolt file ", 1000)),
		"truncated": nil,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "outbox.db")
			if content == nil {
				o := openT(t, path)
				appendN(t, o, 50)
				o.Close()
				raw, _ := os.ReadFile(path)
				// Keep the first page, lose the second meta page and data:
				// what a power cut in the middle of a write can leave.
				content = append(raw[:4096:4096], make([]byte, 4096)...)
			}
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			o, err := Open(path, Options{Clock: clockwork.NewFakeClockAt(time.Date(2026, 11, 24, 1, 2, 3, 0, time.UTC))})
			if err != nil {
				t.Fatalf("corrupt file not recovered: %v", err)
			}
			defer o.Close()
			want := path + ".corrupt-20261124T010203Z"
			if o.MovedAside() != want {
				t.Fatalf("moved aside to %q, want %q", o.MovedAside(), want)
			}
			if kept, err := os.ReadFile(want); err != nil || len(kept) != len(content) {
				t.Fatalf("moved file not kept whole: %v", err)
			}
			if s := appendN(t, o, 1)[0]; s != 1 {
				t.Fatalf("new epoch starts at seq %d", s)
			}
		})
	}
}

func TestSecondOpenerFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := openT(t, path)
	defer o.Close()
	_, err := Open(path, Options{LockTimeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	if _, serr := os.Stat(path); serr != nil {
		t.Fatalf("locked file was touched: %v", serr)
	}
}

// BenchmarkAppend is a press's record made durable: one frame written to
// the journal and fdatasynced (a fold into the file every 64 records).
func BenchmarkAppend(b *testing.B) { benchAppend(b, 0) }

// BenchmarkAppendDirect is the same without a journal: each record a
// commit of the bbolt file (two fdatasyncs), as before 2026-12-04.
func BenchmarkAppendDirect(b *testing.B) { benchAppend(b, -1) }

func benchAppend(b *testing.B, journal int64) {
	o, err := Open(filepath.Join(b.TempDir(), "outbox.db"), Options{JournalSize: journal})
	if err != nil {
		b.Fatal(err)
	}
	defer o.Close()
	payload := []byte(strings.Repeat("x", 420)) // the size of a typical record
	state := []byte(strings.Repeat("s", 200))
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := o.Append(func(Slot) ([]byte, []byte, error) { return payload, payload[:32], nil }, state); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.ReportMetric(quantile.Micros(quantile.Of(lat, 0.5)), "p50-µs")
	b.ReportMetric(quantile.Micros(quantile.Of(lat, 0.99)), "p99-µs")
}

// BenchmarkFsyncFloor is what the disk allows: two 4 KiB writes each
// followed by fsync, as one bbolt commit does (data pages, then the meta
// page), in the same directory as the outbox would be.
func BenchmarkFsyncFloor(b *testing.B) {
	fl, err := fsfloor.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer fl.Close()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d, err := fl.Measure()
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, d)
	}
	b.ReportMetric(quantile.Micros(quantile.Of(lat, 0.5)), "p50-µs")
	b.ReportMetric(quantile.Micros(quantile.Of(lat, 0.99)), "p99-µs")
}

func TestOpenRefusesADirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	if err := os.Mkdir(path, 0o750); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path, Options{})
	if !errors.Is(err, ErrNotFile) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Open of a directory: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || !fi.IsDir() {
		t.Fatalf("the directory was moved: %v", err)
	}
	if m, _ := filepath.Glob(path + ".corrupt-*"); len(m) != 0 {
		t.Fatalf("moved aside: %v", m)
	}
}

// inFile reports whether the file still holds the record seq.
func inFile(t *testing.T, b *Bolt, seq uint64) bool {
	t.Helper()
	var in bool
	if err := b.db.View(func(tx *bolt.Tx) error {
		in = tx.Bucket(bucketRecords).Get(u64(seq)) != nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return in
}

// Without a journal, each press is a commit of the file, and the
// acknowledgements ride on it.
func TestAckRidesOnTheNextCommit(t *testing.T) {
	b, err := Open(filepath.Join(t.TempDir(), "outbox.db"), Options{AckDelay: time.Hour, JournalSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	appendN(t, b, 3)
	if err := b.Ack(1, 3, 99); err != nil {
		t.Fatal(err)
	}
	// No longer pending at once, still in the file until a commit.
	if es, _ := b.Pending(0, 10); len(es) != 1 || es[0].Seq != 2 || b.Len() != 1 {
		t.Fatalf("pending %v, len %d", es, b.Len())
	}
	if !inFile(t, b, 1) || !inFile(t, b, 3) {
		t.Fatal("acknowledged records left the file without a commit")
	}
	// Acknowledging again changes nothing.
	if err := b.Ack(1); err != nil || b.Len() != 1 {
		t.Fatalf("second ack: %v, len %d", err, b.Len())
	}
	// The next press's commit takes them out.
	appendN(t, b, 1)
	if inFile(t, b, 1) || inFile(t, b, 3) || !inFile(t, b, 2) || b.Len() != 2 {
		t.Fatalf("after the next commit: 1 %v, 3 %v, 2 %v, len %d", inFile(t, b, 1), inFile(t, b, 3), inFile(t, b, 2), b.Len())
	}
	// A ticket state's commit does too.
	if err := b.Ack(2); err != nil {
		t.Fatal(err)
	}
	if err := b.SaveState([]byte("s")); err != nil || inFile(t, b, 2) {
		t.Fatalf("save state: %v, 2 in file %v", err, inFile(t, b, 2))
	}
}

func TestAckWithoutPressesLeavesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	b, err := Open(path, Options{AckDelay: 20 * time.Millisecond, AckBatch: 3})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, b, 6)
	// AckBatch records at once: their own commit, before Ack returns.
	if err := b.Ack(1, 2, 3); err != nil {
		t.Fatal(err)
	}
	if inFile(t, b, 1) || inFile(t, b, 2) || inFile(t, b, 3) {
		t.Fatal("a full batch of acknowledgements is still in the file")
	}
	// Fewer: within AckDelay.
	if err := b.Ack(4); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for inFile(t, b, 4) {
		if time.Now().After(deadline) {
			t.Fatal("an acknowledged record stayed in the file past AckDelay")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Close removes what is left.
	if err := b.Ack(5); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = openT(t, path)
	defer b.Close()
	if es, _ := b.Pending(0, 10); len(es) != 1 || es[0].Seq != 6 || b.Len() != 1 {
		t.Fatalf("after reopen: pending %v, len %d", es, b.Len())
	}
}

func TestReleaseKeepsTheRecords(t *testing.T) {
	b := openT(t, filepath.Join(t.TempDir(), "outbox.db"))
	defer b.Close()
	appendN(t, b, 200)
	before, err := b.Pending(0, 500)
	if err != nil || len(before) != 200 {
		t.Fatalf("pending %d %v", len(before), err)
	}
	b.release()
	after, err := b.Pending(0, 500)
	if err != nil || len(after) != 200 {
		t.Fatalf("pending after release %d %v", len(after), err)
	}
	for i := range before {
		if string(before[i].Data) != string(after[i].Data) {
			t.Fatalf("record %d changed: %q -> %q", before[i].Seq, before[i].Data, after[i].Data)
		}
	}
}
