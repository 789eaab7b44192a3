package esup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/internal/throttle"
	"github.com/jonboulle/clockwork"
)

// Verdict is what an answer of the receiver means for an evaluation.
type Verdict int

// The verdicts of [HTTPSink.Send].
const (
	// Accepted: delivered.
	Accepted Verdict = iota + 1
	// Retry: 408, 429, 5xx or a network error; sent again after a backoff.
	Retry
	// Refused: any other answer; kept with its body and shown, sent again
	// only when someone asks.
	Refused
)

// Answer is the result of one POST.
type Answer struct {
	Verdict Verdict
	Status  int
	Body    string
	Err     error
}

// HTTPSink POSTs evaluations to the e-supervision system.
type HTTPSink struct {
	URL string
	// Wrap, when set, POSTs {"<Wrap>": evaluation} instead of the bare
	// evaluation.
	Wrap string
	// OKField and OKValue, when set, make a 2xx a delivery only when the
	// dotted field of the JSON answer equals OKValue.
	OKField, OKValue string
	Client           *http.Client
}

// maxBody bounds the part of an answer read and kept.
const maxBody = 64 << 10

// Send POSTs one evaluation with its rating id as the Idempotency-Key.
func (h *HTTPSink) Send(ctx context.Context, e store.Evaluation) Answer {
	body := e.Payload
	if h.Wrap != "" {
		body = append(append([]byte(`{`+jsonString(h.Wrap)+`:`), e.Payload...), '}')
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return Answer{Verdict: Refused, Err: fmt.Errorf("esup: request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Idempotency-Key", e.RatingID)
	resp, err := h.Client.Do(req)
	if err != nil {
		return Answer{Verdict: Retry, Err: fmt.Errorf("esup: post %s: %w", e.RatingID, err)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	a := Answer{Status: resp.StatusCode, Body: string(b)}
	switch {
	case err != nil:
		a.Verdict, a.Err = Retry, fmt.Errorf("esup: read answer: %w", err)
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		a.Verdict, a.Err = Retry, fmt.Errorf("esup: answer %d", resp.StatusCode)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		a.Verdict, a.Err = Refused, fmt.Errorf("esup: answer %d", resp.StatusCode)
	default:
		a.Verdict, a.Err = h.checkOK(b)
	}
	return a
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// checkOK applies ok_field and ok_value to a 2xx answer.
func (h *HTTPSink) checkOK(body []byte) (Verdict, error) {
	if h.OKField == "" {
		return Accepted, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return Refused, fmt.Errorf("esup: answer is not JSON, cannot check %s", h.OKField)
	}
	for _, k := range strings.Split(h.OKField, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return Refused, fmt.Errorf("esup: answer lacks %s", h.OKField)
		}
		if v, ok = m[k]; !ok {
			return Refused, fmt.Errorf("esup: answer lacks %s", h.OKField)
		}
	}
	if got := fmt.Sprint(v); got != h.OKValue {
		return Refused, fmt.Errorf("esup: answer %s = %s, want %s", h.OKField, got, h.OKValue)
	}
	return Accepted, nil
}

// Sender sends one evaluation; [HTTPSink] is one.
type Sender interface {
	Send(ctx context.Context, e store.Evaluation) Answer
}

// DeliverStore is what a [Deliverer] asks of the store: the queue of
// evaluations, claimed under a lease, answered, or released.
type DeliverStore interface {
	ClaimDue(ctx context.Context, owner string, nowMS, leaseUntilMS int64, n int) ([]store.Evaluation, error)
	RecordOutcome(ctx context.Context, o store.Outcome) error
	ReleaseClaims(ctx context.Context, owner string, ratingIDs []string) (int64, error)
}

// DeliverConfig configures a [Deliverer].
type DeliverConfig struct {
	Store DeliverStore
	Sink  Sender
	// Owner names this collector in the leases of the queue.
	Owner string
	// Lease is how long a claimed evaluation is this collector's. Every
	// POST ends (by Timeout) a margin of a fifth of the lease before the
	// lease does, so that its outcome is recorded while the lease holds.
	Lease time.Duration
	// Timeout bounds one POST; default 30s.
	Timeout time.Duration
	// Workers POST at once; Batch are claimed at a time.
	Workers, Batch int
	// MinBackoff and MaxBackoff bound the wait before a retry: it doubles
	// from MinBackoff with each attempt, up to MaxBackoff, with jitter.
	MinBackoff, MaxBackoff time.Duration
	Logger                 *slog.Logger
	Clock                  clockwork.Clock
	// Jitter returns a number in [0, 1).
	Jitter func() float64
}

// Deliverer hands the queued evaluations to the sink. It runs apart from
// ingest: a slow or failing receiver never holds back the broker.
type Deliverer struct {
	cfg                                    DeliverConfig
	log                                    *slog.Logger
	delivered, rejected, retried, attempts atomic.Int64
}

// NewDeliverer returns a deliverer.
func NewDeliverer(cfg DeliverConfig) *Deliverer {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	if cfg.Jitter == nil {
		cfg.Jitter = rand.Float64
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 2 * time.Minute
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Workers < 1 {
		cfg.Workers = 4
	}
	if cfg.Batch < 1 {
		cfg.Batch = 32
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(5*time.Minute, cfg.MinBackoff)
	}
	return &Deliverer{cfg: cfg, log: cfg.Logger}
}

// DeliverStats are the deliverer's counters.
type DeliverStats struct {
	Attempts, Delivered, Rejected, Retried int64
}

// Stats returns the counters.
func (d *Deliverer) Stats() DeliverStats {
	return DeliverStats{d.attempts.Load(), d.delivered.Load(), d.rejected.Load(), d.retried.Load()}
}

// Backoff returns the wait before attempt n+1 after n failed attempts.
func (d *Deliverer) Backoff(n int) time.Duration {
	w := d.cfg.MinBackoff
	for i := 1; i < n && w < d.cfg.MaxBackoff; i++ {
		w *= 2
	}
	w = min(w, d.cfg.MaxBackoff)
	// Half fixed, half random: collectors and evaluations that failed
	// together do not come back together.
	return w/2 + time.Duration(d.cfg.Jitter()*float64(w/2))
}

// LeaseMargin is the part of a lease kept after the deadline of the last
// POST made under it, to record that POST's outcome.
func LeaseMargin(lease time.Duration) time.Duration { return lease / 5 }

// PostsPerLease is how many POSTs bounded by timeout one worker makes one
// after the other within a lease, margin kept; 0 means the lease cannot
// cover a single POST, a configuration to refuse.
func PostsPerLease(lease, timeout time.Duration) int {
	if timeout <= 0 {
		return 0
	}
	return int((lease - LeaseMargin(lease)) / timeout)
}

// Once claims the evaluations due now, as many as its workers can POST
// within the lease, sends them and records the outcomes. An evaluation
// whose POST could no longer get half its timeout inside the lease (its
// margin kept) is not sent: its lease is released for the next round, as are those left when
// ctx ends. It returns how many it claimed.
func (d *Deliverer) Once(ctx context.Context) (int, error) {
	per := PostsPerLease(d.cfg.Lease, d.cfg.Timeout)
	if per < 1 {
		return 0, fmt.Errorf("esup: lease %s cannot cover a POST of up to %s and its margin of %s", d.cfg.Lease, d.cfg.Timeout, LeaseMargin(d.cfg.Lease))
	}
	now := d.cfg.Clock.Now()
	leaseEnd := now.Add(d.cfg.Lease)
	es, err := d.cfg.Store.ClaimDue(ctx, d.cfg.Owner, now.UnixMilli(), leaseEnd.UnixMilli(), min(d.cfg.Batch, d.cfg.Workers*per))
	if err != nil {
		return 0, fmt.Errorf("esup: claim: %w", err)
	}
	// A POST must end by sendEnd; one that would get under half its
	// timeout is not started.
	sendEnd := leaseEnd.Add(-LeaseMargin(d.cfg.Lease))
	work := make(chan store.Evaluation)
	var mu sync.Mutex
	var unsent []string
	var wg sync.WaitGroup
	for range min(d.cfg.Workers, len(es)) {
		wg.Go(func() {
			for e := range work {
				left := min(sendEnd.Sub(d.cfg.Clock.Now()), d.cfg.Timeout)
				if ctx.Err() != nil || left < d.cfg.Timeout/2 || !d.deliver(ctx, e, left, leaseEnd) {
					mu.Lock()
					unsent = append(unsent, e.RatingID)
					mu.Unlock()
				}
			}
		})
	}
	for _, e := range es {
		work <- e
	}
	close(work)
	wg.Wait()
	if len(unsent) > 0 {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := d.cfg.Store.ReleaseClaims(rctx, d.cfg.Owner, unsent); err != nil {
			return len(es), fmt.Errorf("esup: %d evaluations not sent within their lease: %w", len(unsent), err)
		}
		d.log.Debug("evaluations not sent within their lease released", "count", len(unsent))
	}
	return len(es), nil
}

// deliver POSTs e within timeout (which ends inside the lease) and records
// the outcome.
// It returns false when e was left without an outcome (stopping), for its
// lease to be released.
func (d *Deliverer) deliver(ctx context.Context, e store.Evaluation, timeout time.Duration, leaseEnd time.Time) bool {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	a := d.cfg.Sink.Send(pctx, e)
	cancel()
	if ctx.Err() != nil && a.Verdict != Accepted {
		// Stopping. An accepted evaluation is recorded all the same, or it
		// would be sent a second time.
		return false
	}
	d.attempts.Add(1)
	now := d.cfg.Clock.Now()
	o := store.Outcome{RatingID: e.RatingID, Owner: d.cfg.Owner, Status: a.Status, Body: a.Body, AtMS: now.UnixMilli()}
	if a.Err != nil {
		o.Error = a.Err.Error()
	}
	switch a.Verdict {
	case Accepted:
		o.State = store.Delivered
	case Refused:
		o.State = store.Rejected
	default:
		o.State = store.Pending
		o.NextMS = now.Add(d.Backoff(e.Attempts + 1)).UnixMilli()
	}
	if err := d.record(o, leaseEnd); err != nil {
		d.log.Error("record delivery outcome", "rating", e.RatingID, "state", o.State, "err", err)
		return true // the lease runs out: releasing it would not be safer
	}
	switch o.State {
	case store.Delivered:
		d.delivered.Add(1)
		d.log.Debug("evaluation delivered", "rating", e.RatingID, "projectNo", e.ProjectNo)
	case store.Rejected:
		d.rejected.Add(1)
		d.log.Warn("evaluation rejected by the e-supervision system", "rating", e.RatingID,
			"status", a.Status, "err", o.Error, "body", truncate(a.Body, 200))
	default:
		d.retried.Add(1)
		if n := d.retried.Load(); throttle.Refusals().Log(n) {
			d.log.Warn("evaluation not delivered; will retry", "rating", e.RatingID, "attempts", e.Attempts+1,
				"next", time.UnixMilli(o.NextMS).Format(time.RFC3339), "err", o.Error, "retries_total", n)
		}
	}
	return true
}

// record records an outcome. While the store is away (PostgreSQL
// restarting) it tries again until the lease runs out: an answer that is
// not recorded makes the evaluation go out again, with the same key, once
// the lease has expired, and the contract allows that only to a collector
// that crashed.
func (d *Deliverer) record(o store.Outcome, leaseEnd time.Time) error {
	wait := 50 * time.Millisecond
	var err error
	for attempt := 1; attempt <= maxRecordAttempts; attempt++ {
		ctx, cancel := context.WithDeadline(context.Background(), leaseEnd)
		err = d.cfg.Store.RecordOutcome(ctx, o)
		cancel()
		if err == nil || errors.Is(err, store.ErrWrongState) || !d.cfg.Clock.Now().Add(wait).Before(leaseEnd) {
			return err
		}
		if attempt == 1 {
			d.log.Warn("delivery outcome not recorded; will retry", "rating", o.RatingID, "state", o.State, "err", err)
		}
		time.Sleep(wait)
		wait = min(2*wait, 2*time.Second)
	}
	return err
}

// maxRecordAttempts bounds the attempts to record an outcome: about a
// minute of a store that does not answer.
const maxRecordAttempts = 35

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Run delivers until ctx ends: at once when nudged, else every poll.
func (d *Deliverer) Run(ctx context.Context, nudge <-chan struct{}, poll time.Duration) {
	t := time.NewTicker(poll)
	defer t.Stop()
	failures := 0
	for ctx.Err() == nil {
		n, err := d.Once(ctx)
		if err != nil && !errors.Is(err, context.Canceled) {
			failures++
			if throttle.Failures().Log(int64(failures)) {
				d.log.Error("delivery failed", "err", err, "failures", failures)
			}
		}
		if n > 0 && err == nil {
			continue // more may be due
		}
		select {
		case <-ctx.Done():
		case <-nudge:
		case <-t.C:
		}
	}
}

// Publisher publishes a message with QoS 1.
type Publisher interface {
	Publish(ctx context.Context, topic string, payload []byte, retained bool) error
}

// Alerter publishes the alerts of new follow-ups on {prefix}/{hall}/alert.
type Alerter struct {
	Store     AlertStore
	Publisher Publisher
	Prefix    string
	Logger    *slog.Logger
	Clock     clockwork.Clock
	// Lease is how long a claimed alert is this collector's to publish;
	// default 30s, more than a publish may take (10s).
	Lease time.Duration
	sent  atomic.Int64
}

// AlertStore is what an [Alerter] asks of the store.
type AlertStore interface {
	ClaimAlerts(ctx context.Context, nowMS, leaseUntilMS int64, n int) ([]store.Followup, error)
	MarkAlertSent(ctx context.Context, id, nowMS int64) error
	ReleaseAlert(ctx context.Context, id int64) error
}

// alertPublishTimeout bounds the wait for one alert's PUBACK.
const alertPublishTimeout = 10 * time.Second

// Sent returns how many alerts were published.
func (a *Alerter) Sent() int64 { return a.sent.Load() }

// Once publishes the alerts not yet published: each is leased, published,
// and marked sent only once the broker acknowledged it, so a collector
// that dies in between leaves it to be published again when the lease
// ends. An alert whose publishing fails is released for the next round.
func (a *Alerter) Once(ctx context.Context) error {
	lease := a.Lease
	if lease <= 0 {
		lease = 30 * time.Second
	}
	if a.Clock == nil {
		a.Clock = clockwork.NewRealClock()
	}
	now := a.Clock.Now()
	fs, err := a.Store.ClaimAlerts(ctx, now.UnixMilli(), now.Add(lease).UnixMilli(), 100)
	if err != nil {
		return fmt.Errorf("esup: alerts: %w", err)
	}
	for i, f := range fs {
		pctx, cancel := context.WithTimeout(ctx, alertPublishTimeout)
		err := a.Publisher.Publish(pctx, a.Prefix+"/"+f.Hall+"/alert", f.AlertMessage(), false)
		cancel()
		if err == nil {
			err = a.Store.MarkAlertSent(context.WithoutCancel(ctx), f.ID, a.Clock.Now().UnixMilli())
			if err == nil {
				a.sent.Add(1)
				a.Logger.Info("bad rating alert published", "rating", f.RatingID, "counter", f.Counter,
					"satisfaction", f.Satisfaction, "due", f.Due)
				continue
			}
			// Published but not marked: it goes out again after the lease,
			// which the subscriber de-duplicates on ratingId.
			i++
		}
		for _, r := range fs[i:] {
			if rerr := a.Store.ReleaseAlert(context.WithoutCancel(ctx), r.ID); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
		return fmt.Errorf("esup: publish alert of %s: %w", f.RatingID, err)
	}
	return nil
}

// Run publishes alerts when nudged and every poll until ctx ends.
func (a *Alerter) Run(ctx context.Context, nudge <-chan struct{}, poll time.Duration) {
	t := time.NewTicker(poll)
	defer t.Stop()
	failures := 0
	for ctx.Err() == nil {
		if err := a.Once(ctx); err != nil && ctx.Err() == nil {
			failures++
			if throttle.Failures().Log(int64(failures)) {
				a.Logger.Warn("alerts not published; will retry", "err", err, "failures", failures)
			}
		}
		select {
		case <-ctx.Done():
		case <-nudge:
		case <-t.C:
		}
	}
}
