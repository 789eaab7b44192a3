package buffer

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// crash leaves b as a power cut would: the files closed where they are,
// nothing folded or committed.
func crash(t *testing.T, b *Bolt) {
	t.Helper()
	b.ackMu.Lock()
	b.closed = true
	if b.ackTimer != nil {
		b.ackTimer.Stop()
	}
	b.ackMu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.j != nil {
		b.j.f.Close()
	}
	if err := b.db.Close(); err != nil {
		t.Fatal(err)
	}
}

// chained builds a record that names its chain value, and chains the next
// to it.
// crashReopen crashes b and opens its outbox again.
func crashReopen(t *testing.T, b *Bolt, path string, opts Options) (*Bolt, *bytes.Buffer) {
	t.Helper()
	crash(t, b)
	return openLog(t, path, opts)
}

func chained(s Slot) ([]byte, []byte, error) {
	return []byte(fmt.Sprintf("%s:%d:%s", s.Epoch, s.Seq, s.Chain)), []byte(fmt.Sprintf("c%d", s.Seq)), nil
}

func openLog(t *testing.T, path string, opts Options) (*Bolt, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	opts.LockTimeout = 200 * time.Millisecond
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	if opts.AckDelay == 0 {
		opts.AckDelay = time.Hour // folds only when a test asks
	}
	b, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b, &logs
}

func pendingSeqs(t *testing.T, b *Bolt) string {
	t.Helper()
	es, err := b.Pending(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, e := range es {
		s = append(s, fmt.Sprint(e.Seq))
	}
	return strings.Join(s, " ")
}

// A record is durable in the journal alone: after a crash before any
// commit of the file, the records, their chain and the binding state are
// all there, and the next record continues them.
func TestJournalSurvivesACrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	b, _ := openLog(t, path, Options{})
	for i := 1; i <= 5; i++ {
		if _, err := b.Append(chained, []byte(fmt.Sprintf("state-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if inFile(t, b, 1) {
		t.Fatal("a journaled record was committed to the file at once")
	}
	if got := pendingSeqs(t, b); got != "1 2 3 4 5" {
		t.Fatalf("pending before the crash: %s", got)
	}
	epoch := b.Epoch()
	crash(t, b)

	b, logs := openLog(t, path, Options{})
	defer b.Close()
	if got := pendingSeqs(t, b); got != "1 2 3 4 5" || b.Len() != 5 || b.LastSeq() != 5 || b.Epoch() != epoch {
		t.Fatalf("after the crash: pending %q, len %d, last %d, epoch %s (was %s)", got, b.Len(), b.LastSeq(), b.Epoch(), epoch)
	}
	if !inFile(t, b, 5) {
		t.Fatal("the journal's records were not folded into the file at open")
	}
	if !strings.Contains(logs.String(), "records taken into the outbox after an unclean stop") {
		t.Fatalf("no log line of the replay: %s", logs.String())
	}
	if st, _ := b.State(); string(st) != "state-5" {
		t.Fatalf("state %q, want state-5", st)
	}
	seq, err := b.Append(chained, nil)
	if err != nil || seq != 6 {
		t.Fatalf("next append: seq %d, %v", seq, err)
	}
	es, _ := b.Pending(5, 1)
	if want := epoch + ":6:c5"; len(es) != 1 || string(es[0].Data) != want {
		t.Fatalf("record 6 %v, want %q (chained to 5)", es, want)
	}
}

// Frames a commit of the file holds are not taken again: not after a
// fold, not after a clean close, not after records were acknowledged.
func TestJournalFoldedIsNotReplayed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	b, _ := openLog(t, path, Options{})
	appendN(t, b, 3)
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	appendN(t, b, 2)
	crash(t, b)

	b, _ = openLog(t, path, Options{})
	if got := pendingSeqs(t, b); got != "1 2 3 4 5" {
		t.Fatalf("after fold, two more and a crash: pending %q", got)
	}
	if err := b.Ack(1, 2, 3, 4, 5); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	b, _ = crashReopen(t, b, path, Options{})
	if got := pendingSeqs(t, b); got != "" || b.Len() != 0 {
		t.Fatalf("acknowledged records came back from the journal: %q", got)
	}
	appendN(t, b, 1)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ = openLog(t, path, Options{})
	defer b.Close()
	if got := pendingSeqs(t, b); got != "6" {
		t.Fatalf("after a clean close: pending %q, want 6", got)
	}
}

// A full journal is folded before the next frame; a record too large for
// it is committed to the file directly. Nothing is lost or doubled.
func TestJournalFullAndOversized(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	b, _ := openLog(t, path, Options{JournalSize: 3 * journalPage})
	appendN(t, b, 7)
	if !inFile(t, b, 6) || inFile(t, b, 7) {
		t.Fatalf("a journal of 3 pages: 6 in the file %v (want true), 7 %v (want false)", inFile(t, b, 6), inFile(t, b, 7))
	}
	big := bytes.Repeat([]byte("x"), 5*journalPage)
	seq, err := b.Append(func(Slot) ([]byte, []byte, error) { return big, nil, nil }, nil)
	if err != nil || seq != 8 || !inFile(t, b, 7) || !inFile(t, b, 8) {
		t.Fatalf("oversized record: seq %d, %v; 7 and 8 in the file: %v %v", seq, err, inFile(t, b, 7), inFile(t, b, 8))
	}
	appendN(t, b, 2)
	b, _ = crashReopen(t, b, path, Options{JournalSize: 3 * journalPage})
	defer b.Close()
	if got := pendingSeqs(t, b); got != "1 2 3 4 5 6 7 8 9 10" {
		t.Fatalf("after the crash: pending %q", got)
	}
	es, _ := b.Pending(7, 1)
	if len(es) != 1 || !bytes.Equal(es[0].Data, big) {
		t.Fatal("the oversized record changed")
	}
}

// A write cut short ends the journal there: the frames before it are
// taken, and open says where it stopped.
func TestJournalWriteCutShort(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	b, _ := openLog(t, path, Options{})
	appendN(t, b, 3)
	crash(t, b)
	f, err := os.OpenFile(path+".journal", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("garbage"), 2*journalPage+40); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b, logs := openLog(t, path, Options{})
	defer b.Close()
	if got := pendingSeqs(t, b); got != "1 2" {
		t.Fatalf("pending %q, want 1 2", got)
	}
	if !strings.Contains(logs.String(), "journal ends with a write cut short") {
		t.Fatalf("no warning: %s", logs.String())
	}
	if seq, err := b.Append(build, nil); err != nil || seq != 3 {
		t.Fatalf("next seq %d, %v; want 3", seq, err)
	}
}

// A journal that does not continue its outbox file (copied from another
// terminal, or left by a file replaced) is moved aside, not taken.
func TestJournalOfAnotherOutbox(t *testing.T) {
	dir := t.TempDir()
	a, _ := openLog(t, filepath.Join(dir, "a.db"), Options{})
	appendN(t, a, 2)
	crash(t, a)
	c, _ := openLog(t, filepath.Join(dir, "b.db"), Options{})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	j, err := os.ReadFile(filepath.Join(dir, "a.db.journal"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "b.db.journal"), j, 0o600); err != nil {
		t.Fatal(err)
	}
	c, logs := openLog(t, filepath.Join(dir, "b.db"), Options{})
	defer c.Close()
	if c.Len() != 0 {
		t.Fatalf("another outbox's records were taken: %d", c.Len())
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "b.db.journal.corrupt-*")); len(m) != 1 {
		t.Fatalf("journal not moved aside: %v; %s", m, logs.String())
	}
	if !strings.Contains(logs.String(), "does not continue the outbox file") {
		t.Fatalf("no error line: %s", logs.String())
	}
}

// An outbox file moved aside as unreadable takes its journal with it.
func TestJournalGoesAsideWithItsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	b, _ := openLog(t, path, Options{})
	appendN(t, b, 2)
	crash(t, b)
	if err := os.WriteFile(path, bytes.Repeat([]byte{0xff}, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ = openLog(t, path, Options{})
	defer b.Close()
	if b.MovedAside() == "" || b.Len() != 0 {
		t.Fatalf("moved aside %q, len %d", b.MovedAside(), b.Len())
	}
	if _, err := os.Stat(b.MovedAside() + ".journal"); err != nil {
		t.Fatalf("the journal did not go with its file: %v", err)
	}
}

// A journal write that fails commits the record to the file instead; the
// frame that may have reached the disk is never taken again.
func TestJournalWriteFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	b, logs := openLog(t, path, Options{})
	appendN(t, b, 2)
	b.j.f.Close() // every write to it fails from now on
	seq, err := b.Append(build, nil)
	if err != nil || seq != 3 || !inFile(t, b, 3) || !inFile(t, b, 1) {
		t.Fatalf("append with a failing journal: seq %d, %v", seq, err)
	}
	if !strings.Contains(logs.String(), "outbox journal write failed") {
		t.Fatalf("no error line: %s", logs.String())
	}
	b, _ = crashReopen(t, b, path, Options{})
	defer b.Close()
	if got := pendingSeqs(t, b); got != "1 2 3" {
		t.Fatalf("pending %q, want 1 2 3", got)
	}
}

// Records acknowledged while in the journal go straight to those awaiting
// confirmation at the fold (or leave, when none are kept).
func TestJournalAcknowledged(t *testing.T) {
	for _, keep := range []int64{0, 10} {
		t.Run(fmt.Sprint("keep ", keep), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "outbox.db")
			b, _ := openLog(t, path, Options{KeepUnconfirmed: keep})
			appendN(t, b, 3)
			if err := b.Ack(1, 3); err != nil {
				t.Fatal(err)
			}
			if got := pendingSeqs(t, b); got != "2" || b.Len() != 1 {
				t.Fatalf("pending %q, len %d", got, b.Len())
			}
			re, err := b.Confirm(Confirmation{Beyond: true}, 10, all)
			if want := map[int64]string{0: "[]", 10: "[1 3]"}[keep]; err != nil || seqsOf(re) != want {
				t.Fatalf("offered again %s, %v; want %s", seqsOf(re), err, want)
			}
			if err := b.Flush(); err != nil {
				t.Fatal(err)
			}
			if inFile(t, b, 1) || inFile(t, b, 3) || !inFile(t, b, 2) {
				t.Fatal("the acknowledged records are among the pending in the file")
			}
			want := int64(0)
			if keep > 0 {
				want = 2
			}
			if w, _ := b.Unconfirmed(); w != want {
				t.Fatalf("%d awaiting confirmation, want %d", w, want)
			}
			b, _ = crashReopen(t, b, path, Options{KeepUnconfirmed: keep})
			defer b.Close()
			if got := pendingSeqs(t, b); got != "2" {
				t.Fatalf("after a crash: pending %q", got)
			}
		})
	}
}

// The journal's frames survive an encode and decode, and what readFrames
// takes from any bytes is whole frames of one generation in order.
func FuzzJournalFrames(f *testing.F) {
	f.Add(frame{gen: 1, seq: 1, epoch: "0a1b2c3d", data: []byte("{}"), chain: []byte("c"), state: []byte("s"), hasState: true}.encode())
	f.Add([]byte("HRJ1\x00\x00\x00\x00\xff\xff\xff\xff"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		frames, _ := readFrames(b)
		for i, fr := range frames {
			if i > 0 && (fr.gen != frames[0].gen || fr.seq != frames[i-1].seq+1) {
				t.Fatalf("frame %d: gen %d seq %d after gen %d seq %d", i, fr.gen, fr.seq, frames[0].gen, frames[i-1].seq)
			}
			back, n, err := decodeFrame(fr.encode())
			if err != nil || n%journalPage != 0 || back.seq != fr.seq || !bytes.Equal(back.data, fr.data) || !bytes.Equal(back.state, fr.state) {
				t.Fatalf("frame %d does not survive encode and decode: %v", i, err)
			}
		}
	})
}

// A journal larger than the one this build makes (an earlier version's)
// is read whole at open, then made again at this build's size.
func TestJournalOfAnotherSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	b, _ := openLog(t, path, Options{JournalSize: 8 * journalPage})
	appendN(t, b, 7)
	b, _ = crashReopen(t, b, path, Options{JournalSize: 3 * journalPage})
	defer b.Close()
	if got := pendingSeqs(t, b); got != "1 2 3 4 5 6 7" {
		t.Fatalf("pending %q", got)
	}
	if fi, err := os.Stat(path + ".journal"); err != nil || fi.Size() != 3*journalPage {
		t.Fatalf("journal after open: %v, %v", fi, err)
	}
}
