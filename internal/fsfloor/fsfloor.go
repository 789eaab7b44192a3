// Package fsfloor measures the floor of a durable commit on a disk: two 4 KiB
// page writes, each followed by fdatasync, which is what one bbolt commit
// needs (its pages, then its meta page). Benchmarks compare the outbox's
// commits and the press's whole way to the broker with it.
package fsfloor

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Floor is an open file to measure the floor with.
type Floor struct {
	f    *os.File
	page []byte
	n    int64
}

// Open creates the measuring file in dir, which should be on the disk the
// outbox is on.
func Open(dir string) (*Floor, error) {
	f, err := os.Create(filepath.Join(dir, "fsfloor"))
	if err != nil {
		return nil, fmt.Errorf("fsfloor: %w", err)
	}
	return &Floor{f: f, page: make([]byte, 4096)}, nil
}

// Measure writes two pages, each followed by fdatasync, and returns how
// long that took. Successive calls write over 64 slots of the file, as a
// bbolt file reuses its pages.
func (fl *Floor) Measure() (time.Duration, error) {
	start := time.Now()
	off := (fl.n % 64) * 8192
	fl.n++
	for j := int64(0); j < 2; j++ {
		if _, err := fl.f.WriteAt(fl.page, off+j*4096); err != nil {
			return 0, fmt.Errorf("fsfloor: %w", err)
		}
		if err := syscall.Fdatasync(int(fl.f.Fd())); err != nil {
			return 0, fmt.Errorf("fsfloor: fdatasync: %w", err)
		}
	}
	return time.Since(start), nil
}

// Close removes the measuring file.
func (fl *Floor) Close() error {
	err := fl.f.Close()
	if rerr := os.Remove(fl.f.Name()); err == nil {
		err = rerr
	}
	return err
}
