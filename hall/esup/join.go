// Package esup joins counted ratings with the cases (办件) of the
// e-supervision system (电子监察系统), makes one evaluation per case with the
// national field names, and hands the evaluations to that system: POSTed to
// its URL (the http sink) or left in a table for it to read.
package esup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/internal/throttle"
	"github.com/hallrate/hallrate/record"
	"github.com/jonboulle/clockwork"
)

// Sink names.
const (
	SinkHTTP  = "http"
	SinkTable = "table"
	SinkNone  = "none"
)

// JoinStore is what a [Joiner] asks of the store: one unit of work in
// which ratings meet their cases.
type JoinStore interface {
	Join(ctx context.Context, fn func(*store.JoinTx) error) error
}

var (
	_ JoinStore    = (*store.DB)(nil)
	_ DeliverStore = (*store.DB)(nil)
	_ AlertStore   = (*store.DB)(nil)
)

// JoinConfig configures a [Joiner].
type JoinConfig struct {
	Store    JoinStore
	Location *time.Location
	AreaCode string
	PF       string
	// MatchWindow is how long a counted rating waits for its case, and how
	// long after a case's finishedAt a rating still belongs to it.
	MatchWindow time.Duration
	// Sink decides the state new evaluations start in.
	Sink   string
	Logger *slog.Logger
	Clock  clockwork.Clock
	// OnEvaluation is told of every evaluation made. It must return
	// promptly.
	OnEvaluation func(store.Evaluation)
}

// Joiner joins waiting ratings with their cases.
type Joiner struct {
	cfg                                 JoinConfig
	log                                 *slog.Logger
	joined, duplicates, unmatched, runs atomic.Int64
}

// NewJoiner returns a joiner.
func NewJoiner(cfg JoinConfig) *Joiner {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.OnEvaluation == nil {
		cfg.OnEvaluation = func(store.Evaluation) {}
	}
	return &Joiner{cfg: cfg, log: cfg.Logger}
}

// JoinStats are the joiner's counters.
type JoinStats struct {
	Joined, Duplicates, Unmatched int64
}

// Stats returns the counters.
func (j *Joiner) Stats() JoinStats {
	return JoinStats{j.joined.Load(), j.duplicates.Load(), j.unmatched.Load()}
}

// joinBatch bounds the ratings one transaction joins; maxBatches bounds
// the transactions of one pass.
const (
	joinBatch  = 500
	maxBatches = 1000
)

// Pass joins every rating that can join now and marks unmatched those that
// waited longer than the match window.
func (j *Joiner) Pass(ctx context.Context) error {
	j.runs.Add(1)
	for range maxBatches {
		var made []store.Evaluation
		n := 0
		err := j.cfg.Store.Join(ctx, func(tx *store.JoinTx) error {
			made = made[:0]
			ws, err := tx.Joinable(joinBatch, j.cfg.Clock.Now().UnixMilli())
			if err != nil {
				return err
			}
			n = len(ws)
			for _, w := range ws {
				e, err := j.joinOne(tx, w)
				if err != nil {
					return err
				}
				if e != nil {
					made = append(made, *e)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("esup: join: %w", err)
		}
		for _, e := range made {
			j.cfg.OnEvaluation(e)
		}
		if n < joinBatch {
			break
		}
	}
	before := j.cfg.Clock.Now().Add(-j.cfg.MatchWindow).UnixMilli()
	made, err := j.timePass(ctx, before)
	for _, e := range made {
		j.cfg.OnEvaluation(e)
	}
	if err != nil {
		return err
	}
	return j.cfg.Store.Join(ctx, func(tx *store.JoinTx) error {
		n, err := tx.ExpireWaiting(before)
		if err != nil {
			return fmt.Errorf("esup: %w", err)
		}
		if n > 0 {
			j.unmatched.Add(n)
			j.log.Info("ratings unmatched: no case within the match window", "count", n, "match_window", j.cfg.MatchWindow)
		}
		return nil
	})
}

// joinOne joins one waiting rating, or notes what it examined. It returns
// the evaluation made, if any.
func (j *Joiner) joinOne(tx *store.JoinTx, w store.WaitingRating) (*store.Evaluation, error) {
	var c store.Case
	if w.ProjectNo != "" {
		// The ticket named its case: no join needed; the other fields come
		// from the case when it is known.
		known, ok, err := tx.CaseByNo(w.ProjectNo)
		if err != nil {
			return nil, err
		}
		c = store.Case{ProjectNo: w.ProjectNo}
		if ok {
			c = known
		}
	} else {
		cs, err := tx.Cases(w.Hall, w.Counter, w.Ticket, w.ServiceDay)
		if err != nil {
			return nil, err
		}
		var ok bool
		c, ok = ChooseCase(cs, w.PressedMS, j.cfg.MatchWindow)
		if !ok {
			var mark int64
			for _, c := range cs {
				mark = max(mark, c.ID)
			}
			return nil, tx.Examined(w.ID, mark)
		}
	}
	return j.add(tx, w, c)
}

// ChooseCase picks a rating's case among the cases of its hall, counter,
// ticket and service day: the only one, or else the one whose [acceptedAt,
// finishedAt + window] holds pressedMS (the latest accepted when several
// do). It reports false when there is none to choose yet.
func ChooseCase(cs []store.Case, pressedMS int64, window time.Duration) (store.Case, bool) {
	switch len(cs) {
	case 0:
		return store.Case{}, false
	case 1:
		return cs[0], true
	}
	var best store.Case
	found := false
	for _, c := range cs {
		if c.AcceptedMS != nil && pressedMS < *c.AcceptedMS {
			continue
		}
		if c.FinishedMS != nil && pressedMS > *c.FinishedMS+window.Milliseconds() {
			continue
		}
		if !found || accepted(c) > accepted(best) {
			best, found = c, true
		}
	}
	return best, found
}

func accepted(c store.Case) int64 {
	if c.AcceptedMS == nil {
		return -1 << 62
	}
	return *c.AcceptedMS
}

// Payload is an evaluation with the national field names, in the order of
// the contract.
type Payload struct {
	V            int    `json:"v"`
	RatingID     string `json:"ratingId"`
	ProjectNo    string `json:"projectNo"`
	TaskCode     string `json:"taskCode"`
	TaskName     string `json:"taskName"`
	DeptCode     string `json:"deptCode"`
	DeptName     string `json:"deptName"`
	AreaCode     string `json:"areaCode"`
	ProManager   string `json:"proManager"`
	PF           string `json:"pf"`
	Satisfaction string `json:"satisfaction"`
	AssessTime   string `json:"assessTime"`
	AssessNumber int    `json:"assessNumber"`
	Hall         string `json:"hall"`
	Counter      string `json:"counter"`
	Ticket       string `json:"ticket"`
	Device       string `json:"device"`
	Verified     bool   `json:"verified"`
	// ReasonCode and ReasonText are the reason the citizen gave for a 差评
	// on the terminal (such as "speed" and 办事效率), absent when none was
	// given.
	ReasonCode string `json:"reasonCode,omitempty"`
	ReasonText string `json:"reasonText,omitempty"`
}

// AssessTimeLayout is how assessTime is written, in hall-local time.
const AssessTimeLayout = "2006-01-02 15:04:05"

func (j *Joiner) evaluation(w store.WaitingRating, c store.Case) (store.Evaluation, error) {
	staff := c.Staff
	if staff == "" {
		staff = w.Staff
	}
	p := Payload{
		V: record.Version, RatingID: w.ID, ProjectNo: c.ProjectNo, TaskCode: c.TaskCode, TaskName: c.TaskName,
		DeptCode: c.DeptCode, DeptName: c.DeptName, AreaCode: j.cfg.AreaCode, ProManager: staff, PF: j.cfg.PF,
		Satisfaction: strconv.Itoa(w.Satisfaction),
		AssessTime:   time.UnixMilli(w.PressedMS).In(j.cfg.Location).Format(AssessTimeLayout),
		AssessNumber: 1, Hall: w.Hall, Counter: w.Counter, Ticket: w.Ticket, Device: w.Device, Verified: w.Verified,
		ReasonCode: w.ReasonCode, ReasonText: w.ReasonText,
	}
	b, err := json.Marshal(p)
	if err != nil {
		return store.Evaluation{}, fmt.Errorf("evaluation of %s: %w", w.ID, err)
	}
	state := store.Pending
	switch j.cfg.Sink {
	case SinkTable:
		state = store.InTable
	case SinkNone:
		state = store.Held
	}
	return store.Evaluation{RatingID: w.ID, ProjectNo: c.ProjectNo, Hall: w.Hall, Counter: w.Counter, Ticket: w.Ticket,
		Device: w.Device, ProManager: staff, Satisfaction: p.Satisfaction, AssessTime: p.AssessTime, Payload: b,
		State: state, CreatedMS: j.cfg.Clock.Now().UnixMilli()}, nil
}

// Run makes a pass at once, then whenever nudged and every interval, until
// ctx ends. A failed pass is logged and tried again at the next.
func (j *Joiner) Run(ctx context.Context, nudge <-chan struct{}, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	failures := 0
	for {
		if err := j.Pass(ctx); err != nil && !errors.Is(err, context.Canceled) {
			failures++
			if throttle.Failures().Log(int64(failures)) {
				j.log.Error("join pass failed", "err", err, "failures", failures)
			}
		} else {
			failures = 0
		}
		select {
		case <-ctx.Done():
			return
		case <-nudge:
		case <-t.C:
		}
	}
}
