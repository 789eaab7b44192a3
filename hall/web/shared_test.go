package web

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Screens refreshing at once share reads, and each gets data read after
// it asked.
func TestSharedReads(t *testing.T) {
	var s shared
	var reads atomic.Int64
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	load := func(context.Context) (hallData, error) {
		n := reads.Add(1)
		started <- struct{}{}
		<-release
		return hallData{Now: time.Unix(n, 0)}, nil
	}
	// The first caller's read starts and blocks; ten more arrive while it
	// runs: they must not get its (possibly older) data, and share one
	// read after it.
	first := make(chan hallData, 1)
	go func() {
		d, _ := s.do(context.Background(), load)
		first <- d
	}()
	<-started
	var wg sync.WaitGroup
	got := make([]hallData, 10)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], _ = s.do(context.Background(), load)
		}()
	}
	// Wait until all ten wait on the pending read.
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		waiting := 0
		if s.next != nil {
			waiting = s.next.callers
		}
		s.mu.Unlock()
		if waiting == len(got) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d callers wait on the pending read after 10s", waiting, len(got))
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if d := <-first; d.Now.Unix() != 1 {
		t.Fatalf("first caller got read %d", d.Now.Unix())
	}
	for i, d := range got {
		if d.Now.Unix() < 2 {
			t.Errorf("caller %d got the read that began before it asked", i)
		}
	}
	if n := reads.Load(); n != 2 {
		t.Errorf("%d reads for 11 callers", n)
	}
}
