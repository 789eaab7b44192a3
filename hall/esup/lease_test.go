package esup

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hallrate/hallrate/hall/store"
)

// TestSlowEndpointTwoCollectors: an e-supervision endpoint that answers
// each POST after 60% of the lease, and two collectors delivering from one
// store. Every POST must end inside its lease, so that the other collector
// never takes over an evaluation still being sent: each evaluation is
// POSTed exactly once, with no crash anywhere.
func TestSlowEndpointTwoCollectors(t *testing.T) {
	for name, open := range map[string]func(testing.TB) *store.DB{"sqlite": openSQLite, "postgres": openPG} {
		t.Run(name, func(t *testing.T) {
			const n = 24
			lease := 4 * time.Second
			db := open(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			storeRatings(t, db, n, true)
			j := NewJoiner(JoinConfig{Store: db, Location: sh, AreaCode: "620100", PF: "5", MatchWindow: time.Hour, Sink: SinkHTTP})
			if err := j.Pass(ctx); err != nil {
				t.Fatal(err)
			}
			// The endpoint sees a double send as two POSTs of one key at
			// once, or a POST of a key it has answered already. A POST its
			// client gave up on (a timeout) was not answered and may come
			// again.
			var mu sync.Mutex
			answered, inflight := map[string]int{}, map[string]int{}
			var doubles []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				key := r.Header.Get("Idempotency-Key")
				mu.Lock()
				if inflight[key] > 0 || answered[key] > 0 {
					doubles = append(doubles, key)
				}
				inflight[key]++
				mu.Unlock()
				defer func() { mu.Lock(); inflight[key]--; mu.Unlock() }()
				select {
				case <-time.After(lease * 6 / 10):
				case <-r.Context().Done():
					return
				}
				mu.Lock()
				answered[key]++
				mu.Unlock()
			}))
			defer srv.Close()
			var wg sync.WaitGroup
			ds := map[string]*Deliverer{}
			for _, owner := range []string{"c1", "c2"} {
				d := NewDeliverer(DeliverConfig{Store: db, Owner: owner, Lease: lease, Timeout: lease - LeaseMargin(lease),
					Sink: &HTTPSink{URL: srv.URL, Client: srv.Client()}, MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second})
				ds[owner] = d
				wg.Go(func() { d.Run(ctx, nil, 50*time.Millisecond) })
			}
			deadline := time.Now().Add(2 * time.Minute)
			for {
				b, err := db.Backlog(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if b.States[store.Delivered] == n {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("not delivered in 2 minutes: %+v", b)
				}
				time.Sleep(50 * time.Millisecond)
			}
			cancel()
			wg.Wait()
			mu.Lock()
			defer mu.Unlock()
			if len(answered) != n || len(doubles) > 0 {
				t.Fatalf("%d evaluations answered, want %d; sent twice: %v", len(answered), n, doubles)
			}
			t.Logf("c1 %+v, c2 %+v", ds["c1"].Stats(), ds["c2"].Stats())
		})
	}
}

// TestLeaseTooShort: a lease that cannot cover one POST and its margin is
// refused by Once with one line.
func TestLeaseTooShort(t *testing.T) {
	d := NewDeliverer(DeliverConfig{Store: openSQLite(t), Owner: "c1", Lease: time.Minute, Timeout: 50 * time.Second})
	if _, err := d.Once(context.Background()); err == nil {
		t.Fatal("a lease of 1m for POSTs of 50s was accepted")
	}
	if PostsPerLease(2*time.Minute, 30*time.Second) != 3 {
		t.Fatalf("defaults: %d POSTs per lease, want 3", PostsPerLease(2*time.Minute, 30*time.Second))
	}
}
