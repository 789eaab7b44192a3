package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// The journal is the outbox's write-ahead file, beside the bbolt file
// (PATH.journal). A record is durable once its frame is written there and
// fdatasynced: one flush of the disk, where a bbolt commit takes two (its
// pages, then its meta page). The records in the journal are folded into
// the bbolt file later, many in one commit (see [Bolt.Append]); the fold
// also records the journal's generation it took, so frames of that
// generation are never applied again.
//
// The file has a fixed size, written with zeros and synced when it is
// made, so a frame overwrites blocks that are already allocated and the
// fdatasync has no file metadata to write. Frames start on page
// boundaries and are laid one after the other from the start of the file;
// after a fold the next generation starts again at offset 0.
//
// A frame:
//
//	0   "HRJ1"
//	4   CRC-32C of bytes 8 to 12+n
//	8   n, the body's length (uint32)
//	12  body: gen (uint64), seq (uint64), epoch (uint8 length, bytes),
//	    data (uint32 length, bytes), chain (uint32 length, bytes),
//	    state (uint8 present, uint32 length, bytes)
//
// all integers big-endian, padded with zeros to a multiple of 4 KiB.
const (
	// DefaultJournalSize is the size of the journal file: 64 pages, each
	// press one (a signed record and its binding state take about 1 KiB).
	DefaultJournalSize = 256 << 10
	journalPage        = 4096
	frameMagic         = "HRJ1"
	frameHead          = 12
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frame is one record in the journal, with what its commit would have
// stored beside it.
type frame struct {
	gen, seq    uint64
	epoch       string
	data, chain []byte
	// state is the binding state, when the press changed it.
	state    []byte
	hasState bool
}

// encode returns the frame padded to whole pages.
func (fr frame) encode() []byte {
	body := 8 + 8 + 1 + len(fr.epoch) + 4 + len(fr.data) + 4 + len(fr.chain) + 1 + 4 + len(fr.state)
	n := frameHead + body
	buf := make([]byte, (n+journalPage-1)/journalPage*journalPage)
	copy(buf, frameMagic)
	binary.BigEndian.PutUint32(buf[8:], uint32(body))
	p := buf[frameHead:frameHead]
	p = binary.BigEndian.AppendUint64(p, fr.gen)
	p = binary.BigEndian.AppendUint64(p, fr.seq)
	p = append(p, byte(len(fr.epoch)))
	p = append(p, fr.epoch...)
	p = binary.BigEndian.AppendUint32(p, uint32(len(fr.data)))
	p = append(p, fr.data...)
	p = binary.BigEndian.AppendUint32(p, uint32(len(fr.chain)))
	p = append(p, fr.chain...)
	if fr.hasState {
		p = append(p, 1)
	} else {
		p = append(p, 0)
	}
	p = binary.BigEndian.AppendUint32(p, uint32(len(fr.state)))
	_ = append(p, fr.state...)
	binary.BigEndian.PutUint32(buf[4:], crc32.Checksum(buf[8:n], castagnoli))
	return buf
}

var errNoFrame = errors.New("no frame")

// decodeFrame reads the frame at the start of b, and returns it and the
// length it takes with its padding. Anything but a whole frame with its
// checksum right is errNoFrame or an error saying what is wrong.
func decodeFrame(b []byte) (frame, int, error) {
	if len(b) < frameHead || string(b[:4]) != frameMagic {
		return frame{}, 0, errNoFrame
	}
	body := int(binary.BigEndian.Uint32(b[8:]))
	if body > len(b)-frameHead {
		return frame{}, 0, fmt.Errorf("frame of %d bytes runs past the journal's end", body)
	}
	n := frameHead + body
	if crc32.Checksum(b[8:n], castagnoli) != binary.BigEndian.Uint32(b[4:]) {
		return frame{}, 0, errors.New("frame checksum does not match (a write cut short)")
	}
	r := reader{b: b[frameHead:n]}
	fr := frame{gen: r.u64(), seq: r.u64()}
	fr.epoch = string(r.bytes(int(r.u8())))
	fr.data = r.bytes(int(r.u32()))
	fr.chain = r.bytes(int(r.u32()))
	fr.hasState = r.u8() == 1
	fr.state = r.bytes(int(r.u32()))
	if r.bad || len(r.b) != 0 {
		return frame{}, 0, errors.New("frame body malformed")
	}
	if !fr.hasState {
		fr.state = nil
	}
	return fr, (n + journalPage - 1) / journalPage * journalPage, nil
}

// reader takes fields off a frame's body; a read past its end sets bad.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) bytes(n int) []byte {
	if n > len(r.b) {
		r.bad = true
		r.b = nil
		return nil
	}
	v := append([]byte(nil), r.b[:n]...)
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() uint8 {
	if v := r.bytes(1); len(v) == 1 {
		return v[0]
	}
	return 0
}

func (r *reader) u32() uint32 {
	if v := r.bytes(4); len(v) == 4 {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if v := r.bytes(8); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// readFrames returns the frames of one generation from the start of the
// journal's content b, in order, each seq one above the one before; it
// stops at the first thing that is not such a frame (the end of what was
// written, a frame of an older generation, a write cut short), and says
// why it stopped there when that was not plain zeros.
func readFrames(b []byte) (frames []frame, stop error) {
	off := 0
	for off < len(b) {
		fr, n, err := decodeFrame(b[off:])
		if err != nil {
			if errors.Is(err, errNoFrame) {
				return frames, nil
			}
			return frames, fmt.Errorf("at offset %d: %w", off, err)
		}
		if len(frames) > 0 {
			last := frames[len(frames)-1]
			if fr.gen != last.gen {
				return frames, nil // an older generation's frame
			}
			if fr.seq != last.seq+1 || fr.epoch != last.epoch {
				return frames, fmt.Errorf("at offset %d: seq %d of epoch %s follows seq %d of epoch %s", off, fr.seq, fr.epoch, last.seq, last.epoch)
			}
		}
		frames = append(frames, fr)
		off += n
	}
	return frames, nil
}

// journal is the open journal file.
type journal struct {
	f    *os.File
	size int64
	// off is where the next frame goes; gen is the generation of the
	// frames written now.
	off int64
	gen uint64
	// written is set once a frame of gen was (or may have been) written:
	// the next fold must then retire gen.
	written bool
}

// maxJournalRead bounds what is read of a journal at open: far more than
// any journal this package makes, whatever size an earlier version gave it.
const maxJournalRead = 64 << 20

// readJournal returns the content of the journal at path (nil if there is
// none).
func readJournal(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxJournalRead))
	if err != nil {
		return nil, fmt.Errorf("read journal %s: %w", path, err)
	}
	return b, nil
}

// createJournal makes the journal file at path anew: size bytes of zeros,
// synced with its directory, so that later frames overwrite allocated
// blocks. Frames are written from gen.
func createJournal(path string, size int64, gen uint64) (*journal, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create journal: %w", err)
	}
	if _, err := f.Write(make([]byte, size)); err != nil {
		f.Close()
		return nil, fmt.Errorf("create journal %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("create journal %s: sync: %w", path, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		f.Close()
		return nil, fmt.Errorf("create journal %s: %w", path, err)
	}
	return &journal{f: f, size: size, gen: gen}, nil
}

// openJournal opens an existing journal of the right size for writing
// from gen, or makes it anew.
func openJournal(path string, size int64, gen uint64) (*journal, error) {
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Size() == size {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("open journal: %w", err)
		}
		return &journal{f: f, size: size, gen: gen}, nil
	}
	return createJournal(path, size, gen)
}

// fits reports whether a frame of n bytes fits after the frames written.
func (j *journal) fits(n int) bool { return j.off+int64(n) <= j.size }

// write writes one encoded frame after the others and makes it durable.
func (j *journal) write(buf []byte) error {
	j.written = true
	if _, err := j.f.WriteAt(buf, j.off); err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	if err := syscall.Fdatasync(int(j.f.Fd())); err != nil {
		return fmt.Errorf("write journal: fdatasync: %w", err)
	}
	j.off += int64(len(buf))
	return nil
}

// retire starts the next generation at the file's start, once a commit of
// the bbolt file holds every frame of the present one.
func (j *journal) retire() {
	if j.written {
		j.gen++
		j.off, j.written = 0, false
	}
}

func (j *journal) close() error {
	if err := j.f.Close(); err != nil {
		return fmt.Errorf("close journal: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
