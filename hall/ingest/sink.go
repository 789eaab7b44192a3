package ingest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
)

// Sink is an export of stored records, such as the JSONL file of --out.
// Append returns only when the records are durable; Each reads back
// everything appended, in order.
type Sink interface {
	Append(records [][]byte) error
	Each(fn func(record []byte) error) error
}

var (
	_ Sink = (*JSONL)(nil)
	_ Sink = (*Memory)(nil)
)

// MaxLine bounds one record in a JSONL file.
const MaxLine = 1 << 20

// JSONL is a [Sink] that appends each record as one line of JSON to a file
// and fsyncs once per Append.
type JSONL struct {
	mu   sync.Mutex
	f    *os.File
	path string
	size int64
	// Repaired is the number of bytes of an incomplete last line (a write
	// cut short by a crash) that OpenJSONL removed.
	Repaired int64
}

// OpenJSONL opens or creates the file at path, 0640: an existing file that
// others may read loses those bits (it holds who rated whom). An incomplete
// last line is cut off: its record was never acknowledged, so the broker
// delivers it again.
func OpenJSONL(path string) (*JSONL, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open records file: %w", err)
	}
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm()&0o007 != 0 {
		if err := f.Chmod(fi.Mode().Perm() &^ 0o007); err != nil {
			f.Close()
			return nil, fmt.Errorf("open records file: others may read it and chmod failed: %w", err)
		}
	}
	j := &JSONL{f: f, path: path}
	if err := j.repair(); err != nil {
		f.Close()
		return nil, err
	}
	return j, nil
}

// repair truncates the file after its last newline.
func (j *JSONL) repair() error {
	fi, err := j.f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", j.path, err)
	}
	size := fi.Size()
	end := size
	buf := make([]byte, 4096)
	for end > 0 {
		n := min(int64(len(buf)), end)
		if _, err := j.f.ReadAt(buf[:n], end-n); err != nil {
			return fmt.Errorf("read %s: %w", j.path, err)
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			end = end - n + int64(i) + 1
			break
		}
		end -= n
	}
	if end < size {
		if err := j.f.Truncate(end); err != nil {
			return fmt.Errorf("cut incomplete last line of %s: %w", j.path, err)
		}
		if err := j.f.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", j.path, err)
		}
		j.Repaired = size - end
	}
	j.size = end
	return nil
}

// Each calls fn with every line of the file, in order, and stops at the
// first error fn returns.
func (j *JSONL) Each(fn func([]byte) error) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	sc := bufio.NewScanner(io.NewSectionReader(j.f, 0, j.size))
	sc.Buffer(make([]byte, 64*1024), MaxLine)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		if err := fn(sc.Bytes()); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", j.path, err)
	}
	return nil
}

// Append writes records, one a line, and fsyncs the file. A record must be
// compact JSON: it must not contain a newline.
func (j *JSONL) Append(records [][]byte) error {
	if len(records) == 0 {
		return nil
	}
	var b bytes.Buffer
	for _, r := range records {
		if bytes.IndexByte(r, '\n') >= 0 {
			return errors.New("append record: contains a newline")
		}
		b.Write(r)
		b.WriteByte('\n')
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := j.f.Write(b.Bytes()); err != nil {
		// Leave no torn line for the next append to continue.
		if terr := j.f.Truncate(j.size); terr != nil {
			err = errors.Join(err, terr)
		}
		return fmt.Errorf("append to %s: %w", j.path, err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", j.path, err)
	}
	j.size += int64(b.Len())
	return nil
}

// Close closes the file.
func (j *JSONL) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", j.path, err)
	}
	return nil
}

// Memory is a [Sink] that keeps records in memory, for tests.
type Memory struct {
	mu      sync.Mutex
	records [][]byte
}

// Append keeps copies of records.
func (m *Memory) Append(records [][]byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range records {
		m.records = append(m.records, slices.Clone(r))
	}
	return nil
}

// Each calls fn with every record, in order.
func (m *Memory) Each(fn func([]byte) error) error {
	m.mu.Lock()
	recs := slices.Clone(m.records)
	m.mu.Unlock()
	for _, r := range recs {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// Len returns the number of records kept.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.records)
}
