package e2e

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallrate/hallrate/buffer"
	"github.com/hallrate/hallrate/internal/mqtttest"
)

// TestCorruptOutboxKinds starts the real agent on outboxes damaged the ways
// a power cut or a failing SD card damages them. Some of these make bbolt
// panic in a goroutine of its own while it rebuilds the freelist, which no
// recover can catch: the agent checks the file in a child process first.
// Every one must end with the file moved aside, a new epoch, and the next
// press recorded; a sound file with the same history must be kept.
func TestCorruptOutboxKinds(t *testing.T) {
	cases := []struct {
		name    string
		corrupt func(t *testing.T, f *boltFile)
	}{
		{"torn meta pages", func(t *testing.T, f *boltFile) {
			r := rand.New(rand.NewPCG(1, 2))
			for i := range 2 {
				p := f.page(uint64(i))
				for j := 40; j < 80; j++ { // root, freelist, pgid, txid, checksum
					p[j] = byte(r.Uint32())
				}
			}
		}},
		{"page pointed at twice", func(t *testing.T, f *boltFile) {
			br := f.recordsBranch(t)
			f.setBranchChild(br, 1, f.branchChild(br, 0))
		}},
		{"branch pointing past the end", func(t *testing.T, f *boltFile) {
			br := f.recordsBranch(t)
			f.setBranchChild(br, f.count(br)-1, 1<<40)
		}},
		{"truncated file", func(t *testing.T, f *boltFile) {
			f.b = f.b[:len(f.b)/3]
		}},
		{"random bytes in a leaf", func(t *testing.T, f *boltFile) {
			leaf := f.page(f.branchChild(f.recordsBranch(t), 0))
			r := rand.New(rand.NewPCG(3, 4))
			for j := 16; j < 16+16*8; j++ { // the element headers: positions and sizes
				leaf[j] = byte(r.Uint32())
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "outbox.db")
			oldEpoch := makeOutbox(t, path, 200, false)
			f := readBoltFile(t, path)
			tc.corrupt(t, f)
			if err := os.WriteFile(path, f.b, 0o600); err != nil {
				t.Fatal(err)
			}
			c := mqtttest.NewCollector()
			b := mqtttest.StartEmbedded(t, c.Add)
			a := startAgent(t, writeConfig(t, dir, "w05-a", b.URL(), ""))
			a.waitLog(1, wait, "outbox unreadable: moved aside, starting a new epoch")
			a.press(1)
			got := assertComplete(t, c.Wait(t, wait, "a record of the new epoch", countDistinct(1)), 1)
			if got[0].Epoch == oldEpoch || got[0].Seq != 1 {
				t.Fatalf("record after the corrupt outbox: epoch %s seq %d, want a new epoch (not %s) at seq 1", got[0].Epoch, got[0].Seq, oldEpoch)
			}
			// The file, and its journal with it.
			matches, _ := filepath.Glob(path + ".corrupt-*")
			if len(matches) != 2 || matches[1] != matches[0]+".journal" {
				t.Fatalf("moved-aside files: %v, want the outbox and its journal", matches)
			}
			if n := a.count("check outbox"); n != 1 {
				t.Fatalf("want the child's verdict logged once, have %d lines:\n%s", n, a.log())
			}
			a.stop()
		})
	}
	t.Run("sound file kept", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "outbox.db")
		oldEpoch := makeOutbox(t, path, 200, true)
		c := mqtttest.NewCollector()
		b := mqtttest.StartEmbedded(t, c.Add)
		a := startAgent(t, writeConfig(t, dir, "w05-a", b.URL(), ""))
		a.press(1)
		got := distinct(t, presses(t, c.Wait(t, wait, "the next record", countDistinct(1))))
		if got[0].Epoch != oldEpoch || got[0].Seq != 201 {
			t.Fatalf("record after a sound outbox: epoch %s seq %d, want epoch %s seq 201", got[0].Epoch, got[0].Seq, oldEpoch)
		}
		if matches, _ := filepath.Glob(path + ".corrupt-*"); len(matches) != 0 || a.count("outbox unreadable") != 0 {
			t.Fatalf("a sound outbox was moved aside: %v\n%s", matches, a.log())
		}
		a.stop()
	})
}

// makeOutbox writes an outbox of n records of about 300 bytes (acknowledged
// again when acked, so that nothing is published) and returns its epoch.
func makeOutbox(t *testing.T, path string, n int, acked bool) string {
	t.Helper()
	ob, err := buffer.Open(path, buffer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		data := fmt.Appendf(nil, "record %d %s", i, strings.Repeat("x", 300))
		seq, err := ob.Append(func(buffer.Slot) ([]byte, []byte, error) { return data, []byte("chain"), nil }, nil)
		if err != nil {
			t.Fatal(err)
		}
		if acked {
			if err := ob.Ack(seq); err != nil {
				t.Fatal(err)
			}
		}
	}
	epoch := ob.Epoch()
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	return epoch
}

// boltFile is a bbolt file in memory, with just enough of its page layout
// (bbolt's internal/common: page header of 16 bytes, meta at 16, branch
// and leaf elements of 16 bytes each) to damage it in a chosen place.
type boltFile struct {
	b        []byte
	pageSize int
}

func readBoltFile(t *testing.T, path string) *boltFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return &boltFile{b: b, pageSize: int(binary.LittleEndian.Uint32(b[16+8:]))}
}

func (f *boltFile) page(id uint64) []byte {
	return f.b[int(id)*f.pageSize : int(id+1)*f.pageSize]
}

func (f *boltFile) flags(p []byte) uint16 { return binary.LittleEndian.Uint16(p[8:]) }
func (f *boltFile) count(p []byte) int    { return int(binary.LittleEndian.Uint16(p[10:])) }

func (f *boltFile) branchChild(p []byte, i int) uint64 {
	return binary.LittleEndian.Uint64(p[16+16*i+8:])
}

func (f *boltFile) setBranchChild(p []byte, i int, id uint64) {
	binary.LittleEndian.PutUint64(p[16+16*i+8:], id)
}

// recordsBranch returns the root page of the records bucket, which must be
// a branch (the outbox holds many leaves of records).
func (f *boltFile) recordsBranch(t *testing.T) []byte {
	t.Helper()
	// The current meta is the one with the higher txid.
	m0, m1 := f.page(0)[16:], f.page(1)[16:]
	m := m0
	if binary.LittleEndian.Uint64(m1[48:]) > binary.LittleEndian.Uint64(m0[48:]) {
		m = m1
	}
	root := f.page(binary.LittleEndian.Uint64(m[16:]))
	if f.flags(root) != 0x02 {
		t.Fatalf("root bucket page is not a leaf (flags %#x)", f.flags(root))
	}
	for i := range f.count(root) {
		e := root[16+16*i:]
		pos := binary.LittleEndian.Uint32(e[4:])
		ksize := binary.LittleEndian.Uint32(e[8:])
		k := e[pos : pos+ksize]
		if string(k) != "records" {
			continue
		}
		v := e[pos+ksize:]
		p := f.page(binary.LittleEndian.Uint64(v))
		if f.flags(p) != 0x01 || f.count(p) < 3 {
			t.Fatalf("records bucket root is not a branch of 3 or more pages (flags %#x, count %d)", f.flags(p), f.count(p))
		}
		return p
	}
	t.Fatal("no records bucket in the root")
	return nil
}
