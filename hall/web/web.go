// Package web is the collector's HTTP side: the JSON API under /api/v1,
// /healthz and /metrics. Every request passes one guard: an allowed Host,
// and for requests that change data a JSON (or CSV) body within a limit,
// the same origin, and the bearer token when one is configured (otherwise
// loopback only).
package web

import (
	"bufio"
	"context"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hallrate/hallrate/hall/esup"
	"github.com/hallrate/hallrate/hall/report"
	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/hall/tickets"
	"github.com/hallrate/hallrate/record"
)

// Store is what the API asks of the store.
type Store interface {
	FigureStore
	BacklogStore
	SaveCaseSeq(ctx context.Context, seq iter.Seq2[store.Case, error]) (int, error)
	UpdateCase(ctx context.Context, c store.Case, by string, nowMS int64) (store.CaseChange, error)
	CaseChanges(ctx context.Context, projectNo string) ([]store.CaseChange, error)
	RetryEvaluation(ctx context.Context, ratingID string, nowMS int64) error
	Evaluations(ctx context.Context, state string, n int) ([]store.Evaluation, error)
	Ratings(ctx context.Context, f store.RatingFilter) ([]store.StoredRating, error)
	Audit(ctx context.Context) (store.Audit, error)
	Followups(ctx context.Context, openOnly bool, n int) ([]store.Followup, error)
	CloseFollowup(ctx context.Context, id int64, note string, nowMS int64) (store.Followup, error)
	Ping(ctx context.Context) error
}

// FigureStore is what the monthly report asks of the store: the one
// aggregation of ratings into figures, and the reasons given.
type FigureStore interface {
	Figures(ctx context.Context, q store.FigureQuery) (store.Figures, error)
	ReasonCounts(ctx context.Context, hall string, fromMS, toMS int64) ([]store.ReasonCount, error)
}

// BacklogStore is what the metrics ask of the store at each scrape.
type BacklogStore interface {
	Backlog(ctx context.Context) (store.Backlog, error)
}

// Config configures a [Server].
type Config struct {
	Store    Store
	Hall     string
	Location *time.Location
	// Token, when set, is the bearer token requests that change data must
	// carry.
	Token string
	// Hosts are the names (host or host:port) requests may carry in Host
	// besides the address they reached and localhost (http.hosts).
	Hosts []string
	// Missing returns what keeps the collector from being healthy, such as
	// "subscriptions"; empty when healthy.
	Missing func() []string
	// Registry is served on /metrics.
	Registry *prometheus.Registry
	// CasesAdded is called after cases were stored.
	CasesAdded func()
	// EvaluationQueued is called after a rejected evaluation was queued
	// again.
	EvaluationQueued func()
	Points           [5]float64
	Logger           *slog.Logger
	Clock            clockwork.Clock
	// Tickets publishes the queue system's tickets for the counters; nil
	// answers the ticket routes with 503.
	Tickets TicketGateway
	// Assigner joins an ambiguous rating with the case the duty manager
	// chose; nil answers the assign route with 501.
	Assigner Assigner
}

// Assigner is what the assign route asks of [esup.Joiner].
type Assigner interface {
	Assign(ctx context.Context, ratingID, projectNo, by string) (store.Evaluation, error)
}

// TicketGateway is what the ticket routes ask of [tickets.Gateway].
type TicketGateway interface {
	Publish(ctx context.Context, counter string, body []byte, via string) (record.Ticket, error)
	Clear(ctx context.Context, counter, via string) error
}

// Server serves the API.
type Server struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux
	ref refusals
}

// maxBody bounds a request body: a day's cases of a large hall fit.
const maxBody = 32 << 20

// New returns the API server.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	if cfg.Missing == nil {
		cfg.Missing = func() []string { return nil }
	}
	for _, f := range []*func(){&cfg.CasesAdded, &cfg.EvaluationQueued} {
		if *f == nil {
			*f = func() {}
		}
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(),
		ref: refusals{last: map[string]time.Time{}, n: map[string]int{}}}
	s.mux.HandleFunc("GET /healthz", s.healthz)
	if cfg.Registry != nil {
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{}))
	}
	s.mux.HandleFunc("POST /api/v1/cases", s.postCases)
	s.mux.HandleFunc("PUT /api/v1/cases/{projectNo}", s.putCase)
	s.mux.HandleFunc("GET /api/v1/cases/{projectNo}/changes", s.caseChanges)
	s.mux.HandleFunc("GET /api/v1/ratings", s.ratings)
	s.mux.HandleFunc("GET /api/v1/evaluations", s.evaluations)
	s.mux.HandleFunc("GET /api/v1/evaluations/{ratingId}", s.evaluation)
	s.mux.HandleFunc("POST /api/v1/evaluations/{ratingId}/retry", s.retry)
	s.mux.HandleFunc("GET /api/v1/backlog", s.backlog)
	s.mux.HandleFunc("GET /api/v1/audit", s.audit)
	s.mux.HandleFunc("GET /api/v1/followups", s.followups)
	s.mux.HandleFunc("POST /api/v1/followups/{id}/close", s.closeFollowup)
	s.mux.HandleFunc("GET /api/v1/report", s.report)
	s.mux.HandleFunc("POST /api/v1/ratings/{id}/assign", s.assign)
	s.mux.HandleFunc("POST /api/v1/counters/{counter}/ticket", s.postTicket)
	s.mux.HandleFunc("DELETE /api/v1/counters/{counter}/ticket", s.deleteTicket)
	return s
}

// assign joins an ambiguous rating with one of its candidate cases.
func (s *Server) assign(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Assigner == nil {
		s.fail(w, http.StatusNotImplemented, "assignments are not supported here")
		return
	}
	var body struct {
		ProjectNo string `json:"projectNo"`
		By        string `json:"by"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "body: not a JSON object: " + err.Error(), Field: "body"})
		return
	}
	if body.ProjectNo == "" {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "projectNo: required", Field: "projectNo"})
		return
	}
	lim, _ := record.CaseLimit("staffName")
	if err := record.CheckText("by", body.By, lim); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{Error: err.Error(), Field: "by"})
		return
	}
	by := body.By
	if by == "" {
		by = "api " + r.RemoteAddr
	}
	id := r.PathValue("id")
	e, err := s.cfg.Assigner.Assign(r.Context(), id, body.ProjectNo, by)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.fail(w, http.StatusNotFound, err.Error())
	case errors.Is(err, esup.ErrNotCandidate):
		writeJSON(w, http.StatusBadRequest, apiError{Error: err.Error(), Field: "projectNo"})
	case errors.Is(err, store.ErrWrongState):
		s.fail(w, http.StatusConflict, err.Error())
	case err != nil:
		s.internal(w, r, err)
	default:
		s.log.Info("rating assigned to a case", "rating", id, "projectNo", body.ProjectNo, "by", by, "remote", r.RemoteAddr)
		writeJSON(w, http.StatusOK, map[string]any{"ratingId": id, "projectNo": e.ProjectNo, "state": store.Joined,
			"assigned_by": by, "evaluation": json.RawMessage(e.Payload)})
	}
}

// postTicket publishes a queue system's ticket message for a counter and
// answers once the broker acknowledged it.
func (s *Server) postTicket(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, record.MaxTicketPayload+1))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "body: " + err.Error(), Field: "body"})
		return
	}
	if s.cfg.Tickets == nil {
		s.unavailable(w, "no broker link to publish tickets on")
		return
	}
	counter := r.PathValue("counter")
	t, err := s.cfg.Tickets.Publish(r.Context(), counter, body, tickets.ViaHTTP)
	if s.ticketFailed(w, r, err) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"counter": counter, "ticket": t.Ticket, "state": t.State, "published": true})
}

// deleteTicket clears a counter: it publishes an idle ticket message.
func (s *Server) deleteTicket(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Tickets == nil {
		s.unavailable(w, "no broker link to publish tickets on")
		return
	}
	counter := r.PathValue("counter")
	if s.ticketFailed(w, r, s.cfg.Tickets.Clear(r.Context(), counter, tickets.ViaHTTP)) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"counter": counter, "state": record.Idle, "published": true})
}

// ticketFailed answers a failed ticket publish and reports whether it did.
func (s *Server) ticketFailed(w http.ResponseWriter, r *http.Request, err error) bool {
	var fe *tickets.FieldError
	switch {
	case err == nil:
		return false
	case errors.As(err, &fe):
		writeJSON(w, http.StatusBadRequest, apiError{Error: fe.Error(), Field: fe.Field})
	case errors.Is(err, tickets.ErrUnavailable):
		s.log.Warn("ticket not published", "path", r.URL.Path, "err", err)
		s.unavailable(w, err.Error())
	default:
		s.internal(w, r, err)
	}
	return true
}

// unavailable answers 503: the caller tries again later.
func (s *Server) unavailable(w http.ResponseWriter, reason string) {
	w.Header().Set("Retry-After", "5")
	s.fail(w, http.StatusServiceUnavailable, reason)
}

// Handler returns the HTTP handler: the router behind the guard every
// request passes (see guard.go).
func (s *Server) Handler() http.Handler { return s.guard(s.mux) }

// Mux returns the router, where the dashboard adds its pages.
func (s *Server) Mux() *http.ServeMux { return s.mux }

// Serve serves on l until ctx ends.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			return fmt.Errorf("web: shutdown: %w", err)
		}
		return nil
	case err := <-done:
		return fmt.Errorf("web: serve: %w", err)
	}
}

// apiError is the body of every error answer.
type apiError struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
	Index *int   `json:"index,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away: nothing to do
}

func (s *Server) fail(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, apiError{Error: msg})
}

func (s *Server) internal(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	s.fail(w, http.StatusInternalServerError, "internal error; see the collector's log")
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	var missing []string
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := s.cfg.Store.Ping(ctx); err != nil {
		missing = append(missing, "store: "+err.Error())
	}
	missing = append(missing, s.cfg.Missing()...)
	if len(missing) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unhealthy", "missing": missing})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
}

func (s *Server) postCases(w http.ResponseWriter, r *http.Request) {
	sp, err := s.spoolCases(r)
	if sp != nil {
		defer sp.remove()
	}
	if err != nil {
		s.caseError(w, r, err)
		return
	}
	n, err := s.cfg.Store.SaveCaseSeq(r.Context(), sp.cases())
	var ce *store.CaseConflictError
	if errors.As(err, &ce) {
		writeJSON(w, http.StatusConflict, apiError{Error: ce.Error() + " (PUT /api/v1/cases/" + ce.ProjectNo + "); nothing stored",
			Field: "projectNo"})
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	s.cfg.CasesAdded()
	writeJSON(w, http.StatusOK, map[string]any{"stored": n})
}

// eachCase reads the cases of a JSON or CSV body one at a time into fn.
func (s *Server) eachCase(r *http.Request, fn func(store.Case) error) (int, error) {
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "text/csv" {
		return esup.EachCSVCase(r.Body, params["charset"], s.cfg.Location, s.cfg.Clock.Now(), fn)
	}
	return esup.EachCase(r.Body, s.cfg.Location, s.cfg.Clock.Now(), fn)
}

// caseSpool holds the checked cases of a request in a temporary file until
// they are stored: a request of 100,000 cases costs disk, not memory, and
// the database transaction starts only once the whole body has arrived, so
// a slow client never holds it.
type caseSpool struct {
	f *os.File
	n int
}

func (s *Server) spoolCases(r *http.Request) (*caseSpool, error) {
	f, err := os.CreateTemp("", "hallrate-cases-*")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errSpool, err)
	}
	sp := &caseSpool{f: f}
	bw := bufio.NewWriter(f)
	enc := gob.NewEncoder(bw)
	sp.n, err = s.eachCase(r, func(c store.Case) error {
		if err := enc.Encode(c); err != nil {
			return fmt.Errorf("%w: %w", errSpool, err)
		}
		return nil
	})
	if err != nil {
		return sp, err
	}
	if err := bw.Flush(); err != nil {
		return sp, fmt.Errorf("%w: %w", errSpool, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return sp, fmt.Errorf("%w: %w", errSpool, err)
	}
	return sp, nil
}

// cases yields the spooled cases in order.
func (sp *caseSpool) cases() iter.Seq2[store.Case, error] {
	return func(yield func(store.Case, error) bool) {
		dec := gob.NewDecoder(bufio.NewReader(sp.f))
		for range sp.n {
			var c store.Case
			if err := dec.Decode(&c); err != nil {
				yield(store.Case{}, fmt.Errorf("read spooled cases: %w", err))
				return
			}
			if !yield(c, nil) {
				return
			}
		}
	}
}

func (sp *caseSpool) remove() {
	sp.f.Close()
	os.Remove(sp.f.Name())
}

// caseError answers a request whose cases could not be read.
func (s *Server) caseError(w http.ResponseWriter, r *http.Request, err error) {
	var fe *esup.FieldError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		s.fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body: more than %d bytes", mbe.Limit))
	case errors.As(err, &fe):
		i := fe.Index
		writeJSON(w, http.StatusBadRequest, apiError{Error: fe.Error(), Field: fe.Field, Index: &i})
	case errors.Is(err, errOneCase):
		writeJSON(w, http.StatusBadRequest, apiError{Error: "body: want one case object", Field: "body"})
	case errors.Is(err, errSpool):
		s.internal(w, r, err)
	default:
		s.fail(w, http.StatusBadRequest, err.Error())
	}
}

var (
	errOneCase = errors.New("more than one case")
	errSpool   = errors.New("spool cases")
)

// putCase changes a stored case: the one explicit, audited way to.
func (s *Server) putCase(w http.ResponseWriter, r *http.Request) {
	no := r.PathValue("projectNo")
	var cs []store.Case
	_, err := s.eachCase(r, func(c store.Case) error {
		if len(cs) > 0 {
			return errOneCase
		}
		cs = append(cs, c)
		return nil
	})
	if err != nil {
		s.caseError(w, r, err)
		return
	}
	if len(cs) != 1 || cs[0].ProjectNo != no {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "body: want one case object with projectNo " + no, Field: "projectNo"})
		return
	}
	by := "api " + r.RemoteAddr
	if s.cfg.Token != "" {
		by += " (bearer token)"
	}
	ch, err := s.cfg.Store.UpdateCase(r.Context(), cs[0], by, s.cfg.Clock.Now().UnixMilli())
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.fail(w, http.StatusNotFound, "no case "+no+"; add it with POST /api/v1/cases")
	case err != nil:
		s.internal(w, r, err)
	default:
		s.log.Info("case changed", "projectNo", no, "by", by)
		s.cfg.CasesAdded()
		writeJSON(w, http.StatusOK, ch)
	}
}

func (s *Server) caseChanges(w http.ResponseWriter, r *http.Request) {
	chs, err := s.cfg.Store.CaseChanges(r.Context(), r.PathValue("projectNo"))
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"changes": nonNil(chs)})
}

func limitParam(r *http.Request) int {
	n, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	return n
}

func (s *Server) ratings(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	rs, err := s.cfg.Store.Ratings(r.Context(), store.RatingFilter{JoinState: q.Get("join_state"),
		Disposition: q.Get("disposition"), Trust: q.Get("trust"), Limit: limitParam(r)})
	if err != nil {
		s.internal(w, r, err)
		return
	}
	if err := s.addCandidates(r.Context(), rs); err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ratings": nonNil(rs)})
}

// addCandidates fills in the candidate cases of the ambiguous ratings.
func (s *Server) addCandidates(ctx context.Context, rs []store.StoredRating) error {
	cs, ok := s.cfg.Store.(interface {
		Candidates(context.Context, []string) (map[string][]store.Case, error)
	})
	if !ok {
		return nil
	}
	var ids []string
	for _, r := range rs {
		if r.JoinState == store.Ambiguous {
			ids = append(ids, r.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	by, err := cs.Candidates(ctx, ids)
	if err != nil {
		return err
	}
	for i := range rs {
		rs[i].Candidates = by[rs[i].ID]
	}
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// evaluationView is an evaluation with its national payload as JSON.
type evaluationView struct {
	store.Evaluation
	National json.RawMessage `json:"evaluation"`
}

func view(es []store.Evaluation) []evaluationView {
	out := make([]evaluationView, len(es))
	for i, e := range es {
		out[i] = evaluationView{e, json.RawMessage(e.Payload)}
	}
	return out
}

func (s *Server) evaluations(w http.ResponseWriter, r *http.Request) {
	es, err := s.cfg.Store.Evaluations(r.Context(), r.URL.Query().Get("state"), limitParam(r))
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"evaluations": view(es)})
}

func (s *Server) evaluation(w http.ResponseWriter, r *http.Request) {
	es, ok := s.cfg.Store.(interface {
		Evaluation(context.Context, string) (store.Evaluation, error)
	})
	if !ok {
		s.fail(w, http.StatusNotImplemented, "not supported by this store")
		return
	}
	e, err := es.Evaluation(r.Context(), r.PathValue("ratingId"))
	if errors.Is(err, store.ErrNotFound) {
		s.fail(w, http.StatusNotFound, "no evaluation of rating "+r.PathValue("ratingId"))
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, view([]store.Evaluation{e})[0])
}

func (s *Server) retry(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("ratingId")
	err := s.cfg.Store.RetryEvaluation(r.Context(), id, s.cfg.Clock.Now().UnixMilli())
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.fail(w, http.StatusNotFound, "no evaluation of rating "+id)
	case errors.Is(err, store.ErrWrongState):
		s.fail(w, http.StatusConflict, "evaluation of "+id+" is not rejected: "+err.Error())
	case err != nil:
		s.internal(w, r, err)
	default:
		s.log.Info("rejected evaluation queued again", "rating", id, "remote", r.RemoteAddr)
		s.cfg.EvaluationQueued()
		writeJSON(w, http.StatusAccepted, map[string]any{"ratingId": id, "state": store.Pending})
	}
}

// BacklogView is the queue's state as the API shows it.
type BacklogView struct {
	store.Backlog
	OldestUndeliveredAgeSeconds float64 `json:"oldest_undelivered_age_seconds"`
}

func (s *Server) backlog(w http.ResponseWriter, r *http.Request) {
	b, err := s.cfg.Store.Backlog(r.Context())
	if err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, BacklogView{b, Age(b, s.cfg.Clock.Now())})
}

// Age returns the age in seconds of the oldest undelivered evaluation.
func Age(b store.Backlog, now time.Time) float64 {
	if b.OldestUndeliveredMS == 0 {
		return 0
	}
	return max(0, now.Sub(time.UnixMilli(b.OldestUndeliveredMS)).Seconds())
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request) {
	a, err := s.cfg.Store.Audit(r.Context())
	if err != nil {
		s.internal(w, r, err)
		return
	}
	a.Streams, a.Devices = nonNil(a.Streams), nonNil(a.Devices)
	writeJSON(w, http.StatusOK, a)
}

// FollowupView is a follow-up with its state: open, overdue or closed.
type FollowupView struct {
	store.Followup
	State string `json:"state"`
}

func (s *Server) followups(w http.ResponseWriter, r *http.Request) {
	want := r.URL.Query().Get("state")
	switch want {
	case "", "open", "overdue", "closed":
	default:
		writeJSON(w, http.StatusBadRequest, apiError{Error: "state: not one of open, overdue, closed", Field: "state"})
		return
	}
	fs, err := s.cfg.Store.Followups(r.Context(), want == "open" || want == "overdue", limitParam(r))
	if err != nil {
		s.internal(w, r, err)
		return
	}
	today := s.cfg.Clock.Now().In(s.cfg.Location).Format(time.DateOnly)
	out := []FollowupView{}
	for _, f := range fs {
		st := "open"
		switch {
		case f.ClosedMS != nil:
			st = "closed"
		case f.Due < today:
			st = "overdue"
		}
		// "open" lists every open one, overdue or not.
		if want == "" || want == st || want == "open" && st == "overdue" {
			out = append(out, FollowupView{f, st})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"followups": out})
}

func (s *Server) closeFollowup(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "id: not a number", Field: "id"})
		return
	}
	var body struct {
		Note string `json:"note"`
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err == nil && !utf8.Valid(raw) {
		err = errors.New("not valid UTF-8")
	}
	if err == nil {
		err = json.Unmarshal(raw, &body)
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "body: want {\"note\": \"...\"}", Field: "body"})
		return
	}
	if strings.TrimSpace(body.Note) == "" {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "note: required", Field: "note"})
		return
	}
	if err := record.CheckNote("note", body.Note, record.MaxNoteText); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{Error: err.Error(), Field: "note"})
		return
	}
	f, err := s.cfg.Store.CloseFollowup(r.Context(), id, body.Note, s.cfg.Clock.Now().UnixMilli())
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.fail(w, http.StatusNotFound, "no follow-up "+r.PathValue("id"))
	case errors.Is(err, store.ErrWrongState):
		s.fail(w, http.StatusConflict, "follow-up "+r.PathValue("id")+" is closed already")
	case err != nil:
		s.internal(w, r, err)
	default:
		writeJSON(w, http.StatusOK, FollowupView{f, "closed"})
	}
}

func (s *Server) report(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	month := q.Get("month")
	if month == "" {
		month = s.cfg.Clock.Now().In(s.cfg.Location).Format("2006-01")
	}
	rep, err := Report(r.Context(), s.cfg.Store, month, s.cfg.Hall, s.cfg.Location, s.cfg.Points)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{Error: err.Error(), Field: "month"})
		return
	}
	part := q.Get("part")
	if part != "" && part != "reasons" {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "part: not reasons", Field: "part"})
		return
	}
	switch q.Get("format") {
	case "csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		write := rep.WriteCSV
		if part == "reasons" {
			write = rep.WriteReasonsCSV
		}
		if err := write(w); err != nil {
			s.log.Warn("write report", "err", err)
		}
	case "", "json":
		writeJSON(w, http.StatusOK, rep)
	default:
		writeJSON(w, http.StatusBadRequest, apiError{Error: "format: not one of csv, json", Field: "format"})
	}
}

// Report makes the report of a month from the store.
func Report(ctx context.Context, st FigureStore, month, hall string, loc *time.Location, points [5]float64) (report.Report, error) {
	from, to, err := report.Month(month, loc)
	if err != nil {
		return report.Report{}, err
	}
	fig, err := st.Figures(ctx, store.FigureQuery{Hall: hall, FromMS: from.UnixMilli(), ToMS: to.UnixMilli()})
	if err != nil {
		return report.Report{}, err
	}
	reasons, err := st.ReasonCounts(ctx, hall, from.UnixMilli(), to.UnixMilli())
	if err != nil {
		return report.Report{}, err
	}
	rep := report.Make(month, hall, fig.Rows, points)
	rep.Reasons = report.MakeReasons(reasons)
	return rep, nil
}
