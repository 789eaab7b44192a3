package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/hallrate/hallrate/hall/ingest"
)

// committer stores the records the embedded broker hands over before it
// acknowledges them. The broker calls Commit from each publisher's
// connection; what several publishers hand over at once is stored in one
// transaction.
type committer struct {
	in   batchHandler
	reqs chan commitReq
	done chan struct{}
}

type commitReq struct {
	msg ingest.Message
	err chan error
}

// maxCommitBatch bounds the messages of one transaction.
const maxCommitBatch = 256

var errCommitterStopped = errors.New("collector stopping")

func newCommitter(in batchHandler) *committer {
	// Requests queue while a transaction runs: the next takes them all.
	return &committer{in: in, reqs: make(chan commitReq, maxCommitBatch), done: make(chan struct{})}
}

// Commit stores one message durably, or says why not.
func (c *committer) Commit(ctx context.Context, topic string, payload []byte) error {
	r := commitReq{msg: ingest.Message{Topic: topic, Payload: bytes.Clone(payload)}, err: make(chan error, 1)}
	select {
	case c.reqs <- r:
	case <-ctx.Done():
		return fmt.Errorf("commit: %w", ctx.Err())
	case <-c.done:
		return fmt.Errorf("commit: %w", errCommitterStopped)
	}
	select {
	case err := <-r.err:
		return err
	case <-ctx.Done():
		// The batch may still commit; the publisher then sends the record
		// again and it is stored once.
		return fmt.Errorf("commit: %w", ctx.Err())
	case <-c.done:
		// Stopped with the request queued, not taken: not stored.
		select {
		case err := <-r.err:
			return err
		default:
			return fmt.Errorf("commit: %w", errCommitterStopped)
		}
	}
}

// run stores what Commit hands over until ctx ends.
func (c *committer) run(ctx context.Context) {
	defer close(c.done)
	batch := make([]commitReq, 0, maxCommitBatch)
	msgs := make([]ingest.Message, 0, maxCommitBatch)
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-c.reqs:
			batch = append(batch[:0], r)
		}
	more:
		for len(batch) < maxCommitBatch {
			select {
			case r := <-c.reqs:
				batch = append(batch, r)
			default:
				break more
			}
		}
		msgs = msgs[:0]
		for _, r := range batch {
			msgs = append(msgs, r.msg)
		}
		err := c.in.Handle(context.WithoutCancel(ctx), msgs)
		for _, r := range batch {
			r.err <- err
		}
	}
}
