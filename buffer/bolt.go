package buffer

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jonboulle/clockwork"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

var (
	bucketMeta    = []byte("meta")
	bucketRecords = []byte("records")
	// bucketUnconfirmed holds the records the broker acknowledged and the
	// hall has not yet said it stored: seq -> acknowledged at (Unix ms, 8
	// bytes) followed by the record.
	bucketUnconfirmed = []byte("unconfirmed")
	keyEpoch          = []byte("epoch")
	keyNextSeq        = []byte("next_seq")
	keyCreated        = []byte("created")
	keyBinding        = []byte("binding")
	keyChain          = []byte("chain")
	// keyJournalGen is the last generation of the journal whose frames a
	// commit holds (see journal.go).
	keyJournalGen = []byte("journal_gen")
)

// The defaults of [Options.AckDelay] and [Options.AckBatch].
const (
	defaultAckDelay = 2 * time.Second
	defaultAckBatch = 256
)

// ErrLocked is returned by [Open] when another process holds the outbox.
var ErrLocked = errors.New("outbox is locked by another process (is another agent running?)")

// ErrNotFile is returned by [Open] when buffer.path names a directory or
// anything else but a regular file.
var ErrNotFile = errors.New("not a regular file (buffer.path must name the outbox file, not its directory)")

// Options configures [Open].
type Options struct {
	// LockTimeout bounds the wait for the file lock; default 2s.
	LockTimeout time.Duration
	// Logger receives the report of a file moved aside; default discards.
	Logger *slog.Logger
	// Clock stamps the name of a file moved aside and the acknowledgements,
	// and runs the AckDelay timer; default the real clock.
	Clock clockwork.Clock
	// Check, when set, validates an existing file before it is opened
	// (see [ChildCheck]); a failed check moves the file aside.
	Check CheckFunc
	// AckDelay bounds how long an acknowledged record may stay in the file
	// when no other commit comes to remove it; default 2s. See [Bolt.Ack].
	AckDelay time.Duration
	// AckBatch is how many acknowledged records are removed in a commit of
	// their own at once, without waiting for AckDelay; default 256.
	AckBatch int
	// KeepUnconfirmed, when above 0, keeps each acknowledged record, moved
	// to the records awaiting confirmation, until [Bolt.Confirm] covers it;
	// at most this many, the oldest leaving first. 0 removes a record on
	// its acknowledgement.
	KeepUnconfirmed int64
	// KeepUnconfirmedAge bounds how long a record awaits confirmation;
	// 0 keeps it until KeepUnconfirmed pushes it out.
	KeepUnconfirmedAge time.Duration
	// JournalSize is the size of the write-ahead journal beside the file
	// (PATH.journal); 0 is [DefaultJournalSize], below 0 none: each record
	// is then a commit of the bbolt file of its own.
	JournalSize int64
}

// Bolt is the bbolt-backed [Outbox].
type Bolt struct {
	db      *bolt.DB
	epoch   string
	lastSeq atomic.Uint64
	count   atomic.Int64
	moved   string
	log     *slog.Logger

	ackDelay time.Duration
	ackBatch int
	clock    clockwork.Clock
	keep     int64
	keepAge  time.Duration
	ackMu    sync.Mutex
	// acked are records the broker acknowledged (and when, Unix ms) that
	// are still among the pending in the file: no longer pending, moved or
	// removed by the next commit.
	acked map[uint64]int64
	// confirmed are records the hall stored, removed by the next commit.
	confirmed   map[uint64]struct{}
	unconfirmed atomic.Int64
	// dropped counts the records that left unconfirmed: pushed out by
	// KeepUnconfirmed or KeepUnconfirmedAge.
	dropped  atomic.Int64
	ackTimer clockwork.Timer
	closed   bool
	// tail are the records in the journal not yet folded into the file,
	// in seq order (under ackMu; changed only under mu too).
	tail []frame

	// mu orders the writes: appends, commits, Close.
	mu sync.Mutex
	// j is the journal (nil: none).
	j *journal
	// chain is the last record's chain value, in the journal or the file.
	chain []byte
}

// Open opens the outbox at path, creating it with a new epoch if needed.
//
// A file that bbolt cannot open, or whose pages fail a consistency check
// (a power cut during a write can do that), is renamed to
// path.corrupt-TIMESTAMP, reported, and replaced by a new outbox with a new
// epoch; [Bolt.MovedAside] tells the caller. A file locked by another
// process is not touched: Open fails with [ErrLocked].
func Open(path string, opts Options) (*Bolt, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	b, err := open(path, opts)
	if err != nil {
		return nil, err
	}
	b.log = opts.Logger
	// Opening checked every page of the file.
	b.release()
	if opts.AckDelay > 0 {
		b.ackDelay = opts.AckDelay
	}
	if opts.AckBatch > 0 {
		b.ackBatch = opts.AckBatch
	}
	b.clock = opts.Clock
	b.keep, b.keepAge = opts.KeepUnconfirmed, opts.KeepUnconfirmedAge
	if err := b.replay(path+".journal", opts.JournalSize); err != nil {
		_ = b.db.Close() // the journal's error is the one to report
		return nil, fmt.Errorf("open outbox %s: %w", path, err)
	}
	return b, nil
}

// replay folds into the file the records of the journal that no commit
// holds yet (the agent stopped without folding them: a crash, a power
// cut), and opens the journal for the next ones.
func (b *Bolt) replay(path string, size int64) error {
	none := size < 0
	if size <= 0 {
		size = DefaultJournalSize
	}
	size = (size + journalPage - 1) / journalPage * journalPage
	var folded uint64
	err := b.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		b.chain = clone(meta.Get(keyChain))
		if v := meta.Get(keyJournalGen); len(v) == 8 {
			folded = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read outbox meta: %w", err)
	}
	content, err := readJournal(path)
	if err != nil {
		return err
	}
	frames, stop := readFrames(content)
	if len(frames) > 0 && frames[0].gen <= folded {
		frames = nil // folded before: the file holds them
	}
	if len(frames) > 0 && (frames[0].epoch != b.epoch || frames[0].seq != b.lastSeq.Load()+1) {
		aside := fmt.Sprintf("%s.corrupt-%s", path, b.clock.Now().UTC().Format("20060102T150405Z"))
		b.log.Error("outbox journal does not continue the outbox file: moved aside, its records not taken",
			"path", path, "moved_to", aside, "journal_epoch", frames[0].epoch, "journal_first_seq", frames[0].seq,
			"outbox_epoch", b.epoch, "outbox_next_seq", b.lastSeq.Load()+1)
		if err := os.Rename(path, aside); err != nil {
			return fmt.Errorf("move journal aside: %w", err)
		}
		frames = nil
	}
	gen := folded + 1
	if len(frames) > 0 {
		if stop != nil {
			// A write the power cut short: its press was never reported
			// recorded, so it is not a record lost.
			b.log.Warn("outbox journal ends with a write cut short", "path", path, "at", stop)
		}
		b.log.Info("outbox journal: records taken into the outbox after an unclean stop",
			"count", len(frames), "first_seq", frames[0].seq, "last_seq", frames[len(frames)-1].seq)
		b.tail = frames
		last := frames[len(frames)-1]
		b.chain = last.chain
		b.lastSeq.Store(last.seq)
		b.count.Add(int64(len(frames)))
		b.j = &journal{gen: frames[0].gen, written: true}
		if err := b.fold(nil, nil); err != nil {
			return fmt.Errorf("fold journal: %w", err)
		}
		gen = b.j.gen
		b.j = nil
	}
	if none {
		return nil
	}
	j, err := openJournal(path, size, gen)
	if err != nil {
		// The outbox works without it, one commit of the file per record.
		b.log.Error("outbox journal unavailable: each press is committed to the outbox file directly", "path", path, "err", err)
		return nil
	}
	b.j = j
	return nil
}

func open(path string, opts Options) (*Bolt, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("open outbox %s: %w", path, err)
	}
	// Only a regular file can be a damaged outbox to move aside; anything
	// else at path (a directory, a device) is a configuration mistake.
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("open outbox %s: %w", path, ErrNotFile)
	}
	var b *Bolt
	var err error
	if opts.Check != nil && needsCheck(path) {
		err = opts.Check(path)
	}
	if err == nil {
		b, err = openBolt(path, opts.LockTimeout)
	}
	if err == nil || errors.Is(err, ErrLocked) || errors.Is(err, os.ErrPermission) {
		return b, err
	}
	aside := fmt.Sprintf("%s.corrupt-%s", path, opts.Clock.Now().UTC().Format("20060102T150405Z"))
	if rerr := os.Rename(path, aside); rerr != nil {
		return nil, fmt.Errorf("open outbox %s: %w (and moving it aside failed: %v)", path, err, rerr)
	}
	opts.Logger.Error("outbox unreadable: moved aside, starting a new epoch",
		"path", path, "moved_to", aside, "err", err)
	// Its journal goes with it: its records continue that file, not the
	// new one.
	if jerr := os.Rename(path+".journal", aside+".journal"); jerr != nil && !errors.Is(jerr, os.ErrNotExist) {
		return nil, fmt.Errorf("open outbox %s: %w (and moving its journal aside failed: %v)", path, err, jerr)
	}
	b, err2 := openBolt(path, opts.LockTimeout)
	if err2 != nil {
		return nil, err2
	}
	b.moved = aside
	return b, nil
}

func openBolt(path string, lockTimeout time.Duration) (b *Bolt, err error) {
	// bbolt panics, or faults on its memory map, on some kinds of page
	// corruption (a file cut short by a power loss points past its end).
	// Such an outbox must be treated as unreadable, not crash the agent.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	var db *bolt.DB
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				_ = db.Close() // the file is being given up; its close error adds nothing
			}
			b, err = nil, fmt.Errorf("open outbox %s: corrupt: %v", path, r)
		}
	}()
	// The freelist is rebuilt by a scan at open instead of written with
	// every commit: one page less to write per press.
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open outbox %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open outbox %s: %w", path, err)
	}
	b = &Bolt{db: db, acked: map[uint64]int64{}, confirmed: map[uint64]struct{}{}, clock: clockwork.NewRealClock(), ackDelay: defaultAckDelay, ackBatch: defaultAckBatch,
		log: slog.New(slog.DiscardHandler)}
	if err := b.init(); err != nil {
		_ = db.Close() // reporting the init error matters more
		return nil, fmt.Errorf("open outbox %s: %w", path, err)
	}
	return b, nil
}

func (b *Bolt) init() error {
	return b.db.Update(func(tx *bolt.Tx) error {
		if err := firstError(tx.Check()); err != nil {
			return fmt.Errorf("corrupt: %w", err)
		}
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		recs, err := tx.CreateBucketIfNotExists(bucketRecords)
		if err != nil {
			return err
		}
		// An outbox made before records awaited confirmation gains the
		// bucket on its first open.
		unc, err := tx.CreateBucketIfNotExists(bucketUnconfirmed)
		if err != nil {
			return err
		}
		b.unconfirmed.Store(int64(unc.Stats().KeyN))
		if e := meta.Get(keyEpoch); e != nil {
			b.epoch = string(e)
			next := meta.Get(keyNextSeq)
			if len(next) != 8 {
				return errors.New("corrupt: next_seq missing")
			}
			b.lastSeq.Store(binary.BigEndian.Uint64(next) - 1)
			b.count.Store(int64(recs.Stats().KeyN))
			return nil
		}
		epoch, err := NewEpoch()
		if err != nil {
			return err
		}
		b.epoch = epoch
		if err := meta.Put(keyEpoch, []byte(epoch)); err != nil {
			return err
		}
		if err := meta.Put(keyCreated, []byte(time.Now().UTC().Format(time.RFC3339))); err != nil {
			return err
		}
		return meta.Put(keyNextSeq, u64(1))
	})
}

// MovedAside returns where an unreadable outbox file was moved by [Open],
// or "" if the file opened cleanly.
func (b *Bolt) MovedAside() string { return b.moved }

// Path returns the file of the outbox.
func (b *Bolt) Path() string { return b.db.Path() }

// Append implements [Outbox]. The record, its chain value and the
// binding state are written as one frame to the journal and fdatasynced:
// one flush of the disk. The journal's records are folded into the file
// in one commit when AckDelay has passed since the first of them, when the
// journal is full, or at Close; by then most are acknowledged and go
// straight to those awaiting the hall's confirmation. Without a journal
// (or for a record too large for it) the record and what waits for a
// commit are committed to the file at once: two flushes.
func (b *Bolt) Append(build BuildFunc, state []byte) (uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	seq := b.lastSeq.Load() + 1
	data, chain, err := build(Slot{Epoch: b.epoch, Seq: seq, Chain: clone(b.chain)})
	if err != nil {
		return 0, fmt.Errorf("append to outbox: build record: %w", err)
	}
	fr := frame{seq: seq, epoch: b.epoch, data: data, chain: chain, state: state, hasState: state != nil}
	if err := b.journalAppend(&fr); err != nil {
		if errors.Is(err, errNotJournaled) {
			err = b.fold(&fr, nil)
		}
		if err != nil {
			return 0, fmt.Errorf("append to outbox: %w", err)
		}
	}
	b.chain = chain
	b.lastSeq.Store(seq)
	b.count.Add(1)
	return seq, nil
}

// errNotJournaled is journalAppend's answer for a record it did not write:
// the caller commits it to the file instead.
var errNotJournaled = errors.New("not journaled")

// journalAppend writes fr to the journal, folding the journal first when
// it is full, and adds it to the tail. The caller holds mu.
func (b *Bolt) journalAppend(fr *frame) error {
	if b.j == nil {
		return errNotJournaled
	}
	fr.gen = b.j.gen
	buf := fr.encode()
	if int64(len(buf)) > b.j.size {
		return errNotJournaled
	}
	if !b.j.fits(len(buf)) {
		if err := b.fold(nil, nil); err != nil {
			return err
		}
		fr.gen = b.j.gen
		buf = fr.encode()
	}
	if err := b.j.write(buf); err != nil {
		// Whether the frame reached the disk is unknown: the commit
		// that takes the record instead retires its generation.
		b.log.Error("outbox journal write failed: committing the record to the outbox file", "seq", fr.seq, "err", err)
		return errNotJournaled
	}
	b.ackMu.Lock()
	b.tail = append(b.tail, *fr)
	b.scheduleLocked()
	b.ackMu.Unlock()
	return nil
}

// fold commits to the file, in one commit, the journal's records (and
// extra after them, when not nil: a record that is not journaled), the
// binding state (when not nil), the acknowledged and the confirmed
// records; the journal's generation is then retired. The caller holds mu.
func (b *Bolt) fold(extra *frame, state []byte) error {
	b.ackMu.Lock()
	tail := slices.Clone(b.tail)
	b.ackMu.Unlock()
	if extra != nil {
		tail = append(tail, *extra)
	}
	retire := b.j != nil && b.j.written
	var removed done
	err := b.db.Update(func(tx *bolt.Tx) error {
		meta, recs := tx.Bucket(bucketMeta), tx.Bucket(bucketRecords)
		// Records are only ever appended at the end: pages split full, not
		// half full, so a backlog takes half the file and half the writes.
		recs.FillPercent = 0.9
		for _, fr := range tail {
			if err := recs.Put(u64(fr.seq), fr.data); err != nil {
				return err
			}
			if fr.hasState {
				if err := meta.Put(keyBinding, fr.state); err != nil {
					return err
				}
			}
		}
		if len(tail) > 0 {
			last := tail[len(tail)-1]
			if err := meta.Put(keyChain, last.chain); err != nil {
				return err
			}
			if err := meta.Put(keyNextSeq, u64(last.seq+1)); err != nil {
				return err
			}
		}
		if state != nil {
			if err := meta.Put(keyBinding, state); err != nil {
				return err
			}
		}
		if retire {
			if err := meta.Put(keyJournalGen, u64(b.j.gen)); err != nil {
				return err
			}
		}
		var err error
		removed, err = b.removeAcked(tx)
		return err
	})
	if err != nil {
		return err
	}
	b.ackMu.Lock()
	b.tail = nil
	b.ackMu.Unlock()
	if retire {
		b.j.retire()
	}
	b.forget(removed)
	return nil
}

// SaveState implements [Outbox]: one commit, which takes the journal's
// records too (the state saved must not be overwritten by an older one
// folded later).
func (b *Bolt) SaveState(state []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.fold(nil, state); err != nil {
		return fmt.Errorf("save binding state: %w", err)
	}
	return nil
}

// State implements [Outbox]. It reads the file (a read that fails tells
// that the outbox cannot be used), unless the journal holds a newer state.
func (b *Bolt) State() ([]byte, error) {
	var out []byte
	err := b.db.View(func(tx *bolt.Tx) error {
		out = clone(tx.Bucket(bucketMeta).Get(keyBinding))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read binding state: %w", err)
	}
	b.ackMu.Lock()
	defer b.ackMu.Unlock()
	for _, fr := range b.tail {
		if fr.hasState {
			out = clone(fr.state)
		}
	}
	return out, nil
}

// Pending implements [Outbox].
func (b *Bolt) Pending(after uint64, limit int) ([]Entry, error) {
	var out []Entry
	b.ackMu.Lock()
	defer b.ackMu.Unlock()
	seen := after
	err := b.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRecords).Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			seq := binary.BigEndian.Uint64(k)
			seen = seq
			if _, gone := b.acked[seq]; gone {
				continue
			}
			out = append(out, Entry{Seq: seq, Data: append([]byte(nil), v...)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read pending records: %w", err)
	}
	// Then the journal's, above those of the file (a commit folding them
	// may have put them in both for a moment).
	for _, fr := range b.tail {
		if len(out) >= limit {
			break
		}
		if _, gone := b.acked[fr.seq]; gone || fr.seq <= seen {
			continue
		}
		out = append(out, Entry{Seq: fr.seq, Data: fr.data})
	}
	return out, nil
}

// inTail returns the journal's record seq, if it is there. The caller
// holds ackMu.
func (b *Bolt) inTail(seq uint64) ([]byte, bool) {
	if len(b.tail) == 0 || seq < b.tail[0].seq || seq > b.tail[len(b.tail)-1].seq {
		return nil, false
	}
	return b.tail[seq-b.tail[0].seq].data, true
}

// Ack implements [Outbox]. An acknowledged record is no longer pending at
// once, and leaves the pending records of the file with the next commit:
// the journal's fold, or one of its own when AckBatch records are waiting
// or AckDelay has passed. No press waits for a commit of acknowledgements.
// The cost: after a crash, the
// records acknowledged in the last AckDelay (at most AckBatch) and not yet
// removed are pending again and sent again; consumers keep each record once
// by its id.
func (b *Bolt) Ack(seqs ...uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	at := b.clock.Now().UnixMilli()
	b.ackMu.Lock()
	var added int64
	err := b.db.View(func(tx *bolt.Tx) error {
		recs := tx.Bucket(bucketRecords)
		for _, s := range seqs {
			if _, ok := b.acked[s]; ok {
				continue
			}
			if _, ok := b.inTail(s); !ok && recs.Get(u64(s)) == nil {
				continue
			}
			b.acked[s] = at
			added++
		}
		return nil
	})
	b.count.Add(-added)
	full := b.scheduleLocked()
	b.ackMu.Unlock()
	if err != nil {
		return fmt.Errorf("ack records: %w", err)
	}
	if full {
		return b.Flush()
	}
	return nil
}

// scheduleLocked arms the AckDelay timer for what waits for a commit, and
// reports whether so much waits that it should be committed now.
func (b *Bolt) scheduleLocked() bool {
	n := len(b.acked) + len(b.confirmed)
	full := n >= b.ackBatch
	if !full && n+len(b.tail) > 0 && b.ackTimer == nil && !b.closed {
		b.ackTimer = b.clock.AfterFunc(b.ackDelay, b.flushLater)
	}
	return full
}

// flushLater runs on the AckDelay timer.
func (b *Bolt) flushLater() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ackMu.Lock()
	b.ackTimer = nil
	closed := b.closed
	b.ackMu.Unlock()
	if closed {
		return
	}
	if err := b.flush(); err != nil {
		// They stay in memory (and the journal); the next commit tries again.
		b.log.Error("journal and acknowledgements not yet committed to the outbox file", "err", err)
	}
}

// Flush commits to the file now, in one commit, the journal's records and
// the acknowledged and confirmed ones.
func (b *Bolt) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flush()
}

func (b *Bolt) flush() error {
	b.ackMu.Lock()
	n := len(b.acked) + len(b.confirmed) + len(b.tail)
	b.ackMu.Unlock()
	if n == 0 && (b.j == nil || !b.j.written) {
		return nil
	}
	if err := b.fold(nil, nil); err != nil {
		return fmt.Errorf("commit outbox: %w", err)
	}
	// A backlog is drained by such commits: what it read is done with.
	b.release()
	return nil
}

// release drops the file's pages from the agent's resident set. bbolt
// reads the file through a shared read-only map, and every page read
// stays counted in the process's memory until the kernel needs it back:
// opening a large outbox (the consistency check reads every page) or
// draining a backlog would leave the whole file there. The pages stay in
// the page cache; a later read maps them again.
func (b *Bolt) release() {
	// In a read transaction, bbolt cannot remap the file meanwhile. An
	// error leaves the pages mapped, which costs memory and nothing else.
	_ = b.db.View(func(tx *bolt.Tx) error {
		if tx.Size() <= 0 {
			return nil
		}
		_, _, errno := syscall.Syscall(syscall.SYS_MADVISE, b.db.Info().Data, uintptr(tx.Size()), syscall.MADV_DONTNEED)
		if errno != 0 {
			return errno
		}
		return nil
	})
}

// done is what a commit took out of the pending records and out of those
// awaiting confirmation, forgotten once it is committed.
type done struct{ acked, confirmed []uint64 }

// removeAcked moves the acknowledged records in tx to those awaiting
// confirmation (or deletes them, when none are kept), deletes the
// confirmed ones, and pushes out the oldest awaiting records past the
// bounds.
func (b *Bolt) removeAcked(tx *bolt.Tx) (done, error) {
	b.ackMu.Lock()
	var d done
	acked := make(map[uint64]int64, len(b.acked))
	for s, at := range b.acked {
		acked[s] = at
		d.acked = append(d.acked, s)
	}
	for s := range b.confirmed {
		d.confirmed = append(d.confirmed, s)
	}
	b.ackMu.Unlock()
	recs, unc := tx.Bucket(bucketRecords), tx.Bucket(bucketUnconfirmed)
	var moved int64
	for _, s := range d.acked {
		if b.keep > 0 {
			if _, ok := b.confirmedNow(s); !ok {
				v := recs.Get(u64(s))
				if v == nil {
					continue
				}
				val := make([]byte, 8+len(v))
				binary.BigEndian.PutUint64(val, uint64(acked[s]))
				copy(val[8:], v)
				unc.FillPercent = 0.9
				if err := unc.Put(u64(s), val); err != nil {
					return done{}, err
				}
				moved++
			}
		}
		if err := recs.Delete(u64(s)); err != nil {
			return done{}, err
		}
	}
	var removed int64
	for _, s := range d.confirmed {
		if unc.Get(u64(s)) == nil {
			continue
		}
		if err := unc.Delete(u64(s)); err != nil {
			return done{}, err
		}
		removed++
	}
	dropped, err := b.bound(unc, b.unconfirmed.Load()+moved-removed)
	if err != nil {
		return done{}, err
	}
	tx.OnCommit(func() {
		b.unconfirmed.Add(moved - removed - dropped)
		if dropped > 0 {
			b.dropped.Add(dropped)
			b.log.Error("records left the outbox without the hall's confirmation that it stored them",
				"count", dropped, "keep_unconfirmed", b.keep, "keep_unconfirmed_age", b.keepAge,
				"dropped_total", b.dropped.Load())
		}
	})
	return d, nil
}

// confirmedNow reports whether the hall confirmed seq already.
func (b *Bolt) confirmedNow(seq uint64) (struct{}, bool) {
	b.ackMu.Lock()
	defer b.ackMu.Unlock()
	v, ok := b.confirmed[seq]
	return v, ok
}

// bound deletes the oldest records awaiting confirmation while there are
// more than KeepUnconfirmed or they are older than KeepUnconfirmedAge, and
// returns how many it deleted.
func (b *Bolt) bound(unc *bolt.Bucket, n int64) (int64, error) {
	if b.keep <= 0 {
		return 0, nil
	}
	var oldest int64
	if b.keepAge > 0 {
		oldest = b.clock.Now().Add(-b.keepAge).UnixMilli()
	}
	var dropped int64
	c := unc.Cursor()
	for k, v := c.First(); k != nil; k, v = c.First() {
		old := len(v) >= 8 && int64(binary.BigEndian.Uint64(v)) < oldest
		if n-dropped <= b.keep && !old {
			break
		}
		if err := c.Delete(); err != nil {
			return 0, err
		}
		dropped++
	}
	return dropped, nil
}

func (b *Bolt) forget(d done) {
	if len(d.acked)+len(d.confirmed) == 0 {
		return
	}
	b.ackMu.Lock()
	for _, s := range d.acked {
		delete(b.acked, s)
	}
	for _, s := range d.confirmed {
		delete(b.confirmed, s)
	}
	b.ackMu.Unlock()
}

// Confirmation is what the hall says it stored of this outbox's epoch:
// every seq up to Through, and every one above it up to Highest but those
// in Missing.
type Confirmation struct {
	Through, Highest uint64
	Missing          []uint64
	// Beyond asks for the records above Highest to be offered too; without
	// it Confirm does not read them (a backlog awaiting confirmation can be
	// long, and acknowledgements come every second while it drains).
	Beyond bool
}

// covers reports whether the hall stored seq; missing is c.Missing as a set.
func (c Confirmation) covers(seq uint64, missing map[uint64]bool) bool {
	return seq <= c.Through || (seq <= c.Highest && !missing[seq])
}

// Unconfirmed is a record awaiting the hall's confirmation.
type Unconfirmed struct {
	Entry
	// AckedAt is when the broker acknowledged it.
	AckedAt time.Time
	// Missing says the hall listed it as missing.
	Missing bool
}

// Confirm takes what the hall stored: the records it covers no longer
// await confirmation (they leave the file with the next commit). It
// returns up to limit of those still awaiting that resend selects, lowest
// seq first: the caller publishes them again.
func (b *Bolt) Confirm(c Confirmation, limit int, resend func(Unconfirmed) bool) ([]Unconfirmed, error) {
	if b.keep <= 0 {
		return nil, nil // none is kept: none awaits
	}
	missing := make(map[uint64]bool, len(c.Missing))
	for _, s := range c.Missing {
		missing[s] = true
	}
	var out []Unconfirmed
	b.ackMu.Lock()
	// Those acknowledged since the last commit are still among the pending
	// in the file or the journal, with their time in memory; the others
	// are in the bucket.
	recent := make([]uint64, 0, len(b.acked))
	for s := range b.acked {
		recent = append(recent, s)
	}
	slices.Sort(recent)
	err := b.db.View(func(tx *bolt.Tx) error {
		take := func(seq uint64, at int64, data func() []byte) {
			if _, ok := b.confirmed[seq]; ok {
				return
			}
			if c.covers(seq, missing) {
				b.confirmed[seq] = struct{}{}
				return
			}
			u := Unconfirmed{Entry: Entry{Seq: seq}, AckedAt: time.UnixMilli(at), Missing: missing[seq]}
			if len(out) < limit && resend(u) {
				if u.Data = data(); u.Data != nil {
					out = append(out, u)
				}
			}
		}
		cur := tx.Bucket(bucketUnconfirmed).Cursor()
		for k, v := cur.First(); k != nil; k, v = cur.Next() {
			if !c.Beyond && binary.BigEndian.Uint64(k) > c.Highest {
				break
			}
			if len(v) >= 8 {
				take(binary.BigEndian.Uint64(k), int64(binary.BigEndian.Uint64(v)), func() []byte { return clone(v[8:]) })
			}
		}
		recs := tx.Bucket(bucketRecords)
		for _, s := range recent {
			if !c.Beyond && s > c.Highest {
				break
			}
			take(s, b.acked[s], func() []byte {
				if v, ok := b.inTail(s); ok {
					return v
				}
				return clone(recs.Get(u64(s)))
			})
		}
		return nil
	})
	slices.SortFunc(out, func(x, y Unconfirmed) int { return cmp.Compare(x.Seq, y.Seq) })
	full := b.scheduleLocked()
	b.ackMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("confirm records: %w", err)
	}
	if full {
		return out, b.Flush()
	}
	return out, nil
}

// Unconfirmed returns how many records await the hall's confirmation,
// and how many left the outbox unconfirmed since it was opened.
func (b *Bolt) Unconfirmed() (waiting, dropped int64) {
	if b.keep <= 0 {
		return 0, b.dropped.Load()
	}
	b.ackMu.Lock()
	// The acknowledged await too, until a commit moves them; the confirmed
	// are either among them or in the bucket.
	n := int64(len(b.acked) - len(b.confirmed))
	b.ackMu.Unlock()
	return max(b.unconfirmed.Load()+n, 0), b.dropped.Load()
}

// Epoch implements [Outbox].
func (b *Bolt) Epoch() string { return b.epoch }

// LastSeq implements [Outbox].
func (b *Bolt) LastSeq() uint64 { return b.lastSeq.Load() }

// Len implements [Outbox].
func (b *Bolt) Len() int64 { return b.count.Load() }

// Size returns the size of the outbox file in bytes (it never shrinks).
func (b *Bolt) Size() int64 {
	var n int64
	// A failed View leaves n at 0, which a metric can show as "unknown".
	_ = b.db.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	return n
}

// Close implements [Outbox]. The journal's records are folded into the
// file and the acknowledged ones leave it first.
func (b *Bolt) Close() error {
	b.ackMu.Lock()
	b.closed = true
	if b.ackTimer != nil {
		b.ackTimer.Stop()
		b.ackTimer = nil
	}
	b.ackMu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	ferr := b.flush()
	if b.j != nil {
		if err := b.j.close(); err != nil && ferr == nil {
			ferr = err
		}
		b.j = nil
	}
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("close outbox: %w", err)
	}
	if ferr != nil {
		return fmt.Errorf("close outbox: %w", ferr)
	}
	return nil
}

// firstError returns the first error of a bbolt check and drains the rest,
// so that the goroutine writing them ends.
func firstError(errs <-chan error) error {
	var first error
	for err := range errs {
		if first == nil {
			first = err
		}
	}
	return first
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

func u64(v uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], v)
	return k[:]
}
