package web

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// shared makes the screens that refresh at the same moment share one read
// of the hall's data: a caller joins the read that has not started yet, or
// starts one, so every caller gets data read after it asked, and ten
// screens cost one or two reads rather than ten.
type shared struct {
	mu sync.Mutex
	// next is the read callers arriving now will get; nil when none waits
	// to start.
	next *sharedRead
	// turn lets one read run at a time.
	turn sync.Mutex
}

type sharedRead struct {
	done chan struct{}
	data hallData
	err  error
	// callers counts who waits for it (under shared.mu).
	callers int
}

// loadTimeout bounds a shared read: no caller's context ends it.
const loadTimeout = 30 * time.Second

func (s *shared) do(ctx context.Context, load func(context.Context) (hallData, error)) (hallData, error) {
	s.mu.Lock()
	c := s.next
	if c == nil {
		c = &sharedRead{done: make(chan struct{})}
		s.next = c
		go s.run(c, load)
	}
	c.callers++
	s.mu.Unlock()
	select {
	case <-c.done:
		return c.data, c.err
	case <-ctx.Done():
		return hallData{}, fmt.Errorf("read the hall: %w", ctx.Err())
	}
}

func (s *shared) run(c *sharedRead, load func(context.Context) (hallData, error)) {
	s.turn.Lock()
	defer s.turn.Unlock()
	// From here on, a new caller needs a new read: this one may have
	// begun before what it wants to see was stored.
	s.mu.Lock()
	s.next = nil
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	c.data, c.err = load(ctx)
	close(c.done)
}
