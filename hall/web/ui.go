package web

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hallrate/hallrate/hall/live"
	"github.com/hallrate/hallrate/hall/report"
	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/record"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// DashboardStore is what the dashboard reads beyond the API's [Store];
// [store.DB] has it.
type DashboardStore interface {
	Store
	UnverifiedRatings(ctx context.Context, hall string, n int) ([]store.LatestRating, error)
	Candidates(ctx context.Context, ratingIDs []string) (map[string][]store.Case, error)
}

var _ DashboardStore = (*store.DB)(nil)

// dashboard serves the hall's screens: the live view, the monthly report
// page, their fragments and the event stream.
type dashboard struct {
	s    *Server
	st   DashboardStore
	hub  *live.Hub
	tmpl *template.Template
	// gather is how long the event stream collects events before it
	// renders what changed.
	gather time.Duration
	// shared is the load of the hall's data that screens refreshing at
	// once share.
	shared shared
	// done ends the event streams: the server's shutdown waits for
	// handlers, and a stream would never end by itself.
	done <-chan struct{}
}

// AddDashboard adds the hall's screens to the server: the live view on /,
// the monthly report on /report, the event stream on /events, fragments
// on /fragment/{name} and the embedded assets on /static/. Every page is
// read-only; the actions on them call the API, which checks the token.
// The event streams end when ctx does, so cancel it before the server
// shuts down (the collector's signal context does).
func (s *Server) AddDashboard(ctx context.Context, hub *live.Hub) error {
	st, ok := s.cfg.Store.(DashboardStore)
	if !ok {
		return errors.New("web: dashboard: the store cannot list level counts")
	}
	if hub == nil {
		return errors.New("web: dashboard: no event hub")
	}
	tmpl, err := template.New("").Funcs(template.FuncMap{"pct": pct, "score": score, "args": args}).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return fmt.Errorf("web: dashboard templates: %w", err)
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return fmt.Errorf("web: dashboard assets: %w", err)
	}
	d := &dashboard{s: s, st: st, hub: hub, tmpl: tmpl, gather: 100 * time.Millisecond, done: ctx.Done()}
	s.mux.HandleFunc("GET /{$}", d.hallPage)
	s.mux.HandleFunc("GET /report", d.reportPage)
	s.mux.HandleFunc("GET /events", d.events)
	s.mux.HandleFunc("GET /fragment/{name}", d.fragment)
	s.mux.HandleFunc("GET /api/v1/hall", d.hallJSON)
	s.mux.HandleFunc("GET /api/v1/counters", d.countersJSON)
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	return nil
}

// Level is a satisfaction code with its name and colour class.
type Level struct {
	Code  int    `json:"code"`
	Name  string `json:"name"`
	Class string `json:"-"`
}

func level(code int, t dict) Level {
	if code < 1 || code > 5 {
		return Level{Code: code, Name: "?", Class: "l0"}
	}
	return Level{Code: code, Name: t[fmt.Sprintf("l%d", code)], Class: fmt.Sprintf("l%d", code)}
}

// TicketView is a counter's ticket as a tile shows it.
type TicketView struct {
	ID    string `json:"id"`
	State string `json:"state"`
	Staff string `json:"staff"`
	Item  string `json:"item,omitempty"`
	// Live is true when it came from the ticket topic, false when it is
	// the ticket of the counter's last rating.
	Live bool `json:"live"`
	// ProjectNo is the case number the queue system gave, if any.
	ProjectNo string `json:"projectNo,omitempty"`
	// Source is "queue" or "staff" (the staff key on the terminal), and
	// Via how a live queue ticket reached the broker: "http" or "sql"
	// through this collector, "mqtt" from the queue system itself.
	Source string `json:"source"`
	Via    string `json:"via,omitempty"`
	// ChangedAt is when the collector heard the live ticket change.
	ChangedAt string `json:"changed_at,omitempty"`
}

// SourceKey names the ticket's source in the dictionary.
func (t TicketView) SourceKey() string {
	switch {
	case t.Source == record.SourceStaff:
		return "src_staff"
	case t.Via != "":
		return "src_" + t.Via
	}
	return "src_queue"
}

// LastView is the last rating of a counter.
type LastView struct {
	ID          string `json:"id"`
	Level       Level  `json:"level"`
	Disposition string `json:"disposition"`
	At          string `json:"at"`
	// Kind, on a press that is not the counter's rating, says why (a key
	// of the dictionary: press_repeat, press_late, press_no_ticket,
	// press_held, press_other).
	Kind string `json:"kind,omitempty"`
}

// Tile is one counter on the live view.
type Tile struct {
	Counter    string      `json:"counter"`
	Devices    []string    `json:"devices"`
	Known      bool        `json:"known"`
	Online     bool        `json:"online"`
	StatusAt   string      `json:"status_at,omitempty"`
	Pending    uint64      `json:"pending"`
	OutboxFull bool        `json:"outbox_full"`
	Ticket     *TicketView `json:"ticket"`
	// Last is the counter's last rated rating; LastPress a newer press
	// that does not count (a repeat, a late press, one held out by
	// verification), shown as such.
	Last      *LastView `json:"last"`
	LastPress *LastView `json:"last_press,omitempty"`
	// Today counts today's rated ratings per level, index 0 = level 1.
	Today    [5]int64 `json:"today"`
	Rated    int64    `json:"rated"`
	GoodRate float64  `json:"good_rate"`
	// ClockUnsynced is true when the counter's last record was pressed
	// with the clock not synchronised. Failed counts today's records that
	// failed verification (a warning); Unverified those that could not be
	// verified because the hall holds no trusted key for the device (a
	// note: nothing is wrong with them, the keys file lacks the device).
	ClockUnsynced bool   `json:"clock_unsynced"`
	Failed        int64  `json:"failed_verification"`
	Unverified    int64  `json:"unverified"`
	Missing       string `json:"missing,omitempty"`
	// Levels is Today, level 5 first, with names, for the tile.
	Levels []LevelCount `json:"-"`
}

// LevelCount is a level with its count.
type LevelCount struct {
	Level
	N int64
}

// RankRow is a line of the 不满意率 ranking.
type RankRow struct {
	Rank      int
	Key       string
	Rated     int64
	Rate      float64
	Bar       float64
	LastPlace bool
}

// FollowupRow is an open follow-up on the page.
type FollowupRow struct {
	store.Followup
	Level    Level
	DaysLeft int
	Overdue  bool
}

// hallView is everything the live view shows.
type hallView struct {
	Lang, Other string
	T           dict
	Hall        string
	Today       string
	Month       string
	Generated   string
	Tiles       []Tile
	// Charts.
	TodayCounter, TodayStaff, MonthCounter, MonthStaff Bars
	Trend                                              Trend
	Ranking, StaffRanking                              []RankRow
	Followups                                          []FollowupRow
	Audit                                              auditView
	// Reasons is the month's 不满意原因分布.
	Reasons report.Reasons
}

type auditView struct {
	Gaps      []string
	Unmatched []store.StoredRating
	// Ambiguous are the ratings to assign to one of their candidate
	// cases.
	Ambiguous []store.StoredRating
	Rejected  []store.Evaluation
	// Failed are the newest records that failed verification; Unverified
	// those without a trusted key to verify them.
	Failed     []store.LatestRating
	Unverified []store.LatestRating
	Flagged    int64
	Duplicate  int64
	// Parked are the newest parked messages, at most 10; ParkedTotal how
	// many are kept.
	Parked      []parkedRow
	ParkedTotal int64
	// Conflicts are the newest copies kept as evidence, at most 10.
	Conflicts []store.Conflict
}

type parkedRow struct {
	Time, Topic, Reason string
	Size                int
}

// hallData is what the live view shows, read from the store once per
// refresh and shared by every screen open ([shared]). The view is a pure
// function of it ([buildView]).
type hallData struct {
	// Now is the time of the read, in the hall's time zone.
	Now time.Time
	// Figures are the month's, with each counter's last rating.
	Figures    store.Figures
	Audit      store.Audit
	Followups  []store.Followup
	Unmatched  []store.StoredRating
	Rejected   []store.Evaluation
	Unverified []store.LatestRating
	// Ambiguous are the ratings to assign, with their candidates.
	Ambiguous []store.StoredRating
	// Reasons are the month's reasons of 差评.
	Reasons []store.ReasonCount
	// Tickets are the counters' current tickets as the hub heard them.
	Tickets map[string]live.CurrentTicket
}

// load reads the hall's data from the store.
func (d *dashboard) load(ctx context.Context) (hallData, error) {
	cfg := d.s.cfg
	data := hallData{Now: cfg.Clock.Now().In(cfg.Location), Tickets: map[string]live.CurrentTicket{}}
	from, to, err := report.Month(data.Now.Format("2006-01"), cfg.Location)
	if err != nil {
		return data, err
	}
	if data.Figures, err = d.st.Figures(ctx, store.FigureQuery{Hall: cfg.Hall, FromMS: from.UnixMilli(), ToMS: to.UnixMilli(), Last: true}); err != nil {
		return data, err
	}
	if data.Reasons, err = d.st.ReasonCounts(ctx, cfg.Hall, from.UnixMilli(), to.UnixMilli()); err != nil {
		return data, err
	}
	if data.Audit, err = d.st.Audit(ctx); err != nil {
		return data, err
	}
	if data.Followups, err = d.st.Followups(ctx, true, 200); err != nil {
		return data, err
	}
	if data.Unmatched, err = d.st.Ratings(ctx, store.RatingFilter{JoinState: store.Unmatched, Limit: 20}); err != nil {
		return data, err
	}
	if data.Rejected, err = d.st.Evaluations(ctx, store.Rejected, 20); err != nil {
		return data, err
	}
	if data.Ambiguous, err = d.st.Ratings(ctx, store.RatingFilter{JoinState: store.Ambiguous, Limit: 50}); err != nil {
		return data, err
	}
	if err := d.s.addCandidates(ctx, data.Ambiguous); err != nil {
		return data, err
	}
	if data.Unverified, err = d.st.UnverifiedRatings(ctx, cfg.Hall, 20); err != nil {
		return data, err
	}
	// Also the counters heard only through their ticket topic.
	for _, c := range append(counters(data, cfg.Hall), d.hub.Counters(cfg.Hall)...) {
		if ct, ok := d.hub.Ticket(cfg.Hall, c); ok {
			data.Tickets[c] = ct
		}
	}
	return data, nil
}

// counters are the counters of the hall the data knows of.
func counters(data hallData, hall string) []string {
	seen := map[string]bool{}
	for _, r := range data.Figures.Rows {
		seen[r.Counter] = true
	}
	for c := range data.Figures.Last {
		seen[c] = true
	}
	for c := range data.Figures.LastPress {
		seen[c] = true
	}
	for _, dev := range data.Audit.Devices {
		if dev.Hall == hall {
			seen[dev.Counter] = true
		}
	}
	return sortedKeys(seen)
}

// view reads the hall's data (shared with the other screens refreshing at
// the same time) and builds the view in lang.
func (d *dashboard) view(ctx context.Context, lang string) (hallView, error) {
	data, err := d.shared.do(ctx, d.load)
	if err != nil {
		return hallView{}, err
	}
	return buildView(data, d.s.cfg.Hall, d.s.cfg.Location, lang), nil
}

// buildView makes the live view of the data: tiles, charts, rankings,
// follow-ups and audit. Only ratings of class rated ([store.ClassRated])
// count toward levels, rates and rankings; a tile's last rating is its
// last rated one, and a newer press that does not count is shown as what
// it is.
func buildView(data hallData, hall string, loc *time.Location, lang string) hallView {
	t := dicts[lang]
	now := data.Now.In(loc)
	today := now.Format(time.DateOnly)
	month := now.Format("2006-01")
	v := hallView{Lang: lang, Other: t["lang_param"], T: t, Hall: hall, Today: today, Month: month,
		Generated: now.Format("2006-01-02 15:04:05")}
	from, to, _ := report.Month(month, loc)
	tiles := map[string]*Tile{}
	tile := func(c string) *Tile {
		if tiles[c] == nil {
			tiles[c] = &Tile{Counter: c}
		}
		return tiles[c]
	}
	for _, dev := range data.Audit.Devices {
		if dev.Hall != hall {
			continue
		}
		tl := tile(dev.Counter)
		tl.Devices = append(tl.Devices, dev.Device)
		// The Last Will has no time; an earlier status left its version.
		if dev.StatusAt != "" || dev.Online || dev.Version != "" || dev.Audited {
			tl.Known = true
		}
		tl.Online = tl.Online || dev.Online
		tl.StatusAt = max(tl.StatusAt, dev.StatusAt)
		tl.Pending += dev.Pending
		tl.OutboxFull = tl.OutboxFull || dev.OutboxFull
		if len(dev.Missing) > 0 {
			tl.Missing = strings.TrimPrefix(tl.Missing+", "+dev.Device+" "+dev.Missing.String(), ", ")
		}
	}
	for c, r := range data.Figures.Last {
		tile(c).Last = &LastView{ID: r.ID, Level: level(r.Satisfaction, t), Disposition: r.Disposition, At: clock(r.PressedAt, loc)}
	}
	for c, r := range data.Figures.LastPress {
		if last, ok := data.Figures.Last[c]; ok && r.PressedAt < last.PressedAt {
			continue
		}
		tile(c).LastPress = &LastView{ID: r.ID, Level: level(r.Satisfaction, t), Disposition: r.Disposition,
			At: clock(r.PressedAt, loc), Kind: pressKind(r)}
	}
	// The clock warning and the ticket come from the counter's newest
	// record, counted or not.
	for _, c := range sortedKeys(tiles) {
		r, ok := data.Figures.LastPress[c]
		if !ok {
			if r, ok = data.Figures.Last[c]; !ok {
				continue
			}
		}
		tl := tiles[c]
		tl.ClockUnsynced = !r.ClockSynced
		if r.Ticket != "" {
			src := r.TicketSource
			if src == "" {
				src = record.SourceQueue
			}
			tl.Ticket = &TicketView{ID: r.Ticket, State: "", Staff: r.Staff, Source: src}
		}
	}
	for _, c := range sortedKeys(data.Tickets) {
		ct := data.Tickets[c]
		tl := tile(c)
		if ct.State == record.Idle && tl.Ticket != nil && tl.Ticket.Source == record.SourceStaff {
			// A counter run by the staff key: an idle queue ticket says
			// nothing about it.
			continue
		}
		tl.Ticket = &TicketView{ID: ct.Ticket.Ticket, State: string(ct.State), Staff: ct.Staff, Item: ct.Item, Live: true,
			ProjectNo: ct.ProjectNo, Source: record.SourceQueue, Via: ct.Via,
			ChangedAt: ct.Received.In(loc).Format(time.RFC3339)}
		if ct.State == record.Idle {
			tl.Ticket.ID, tl.Ticket.Staff = "", ""
		}
	}
	type agg struct{ counter, staff map[string][5]int64 }
	todayAgg := agg{map[string][5]int64{}, map[string][5]int64{}}
	monthAgg := agg{map[string][5]int64{}, map[string][5]int64{}}
	days := to.AddDate(0, 0, -1).Day()
	dayLevels := make([][5]int64, days)
	for _, c := range data.Figures.Rows {
		staff := c.Staff
		if staff == "" {
			staff = "-"
		}
		if c.Day == today {
			if c.Class == store.ClassFailedVerification {
				tile(c.Counter).Failed += c.N
			} else {
				tile(c.Counter).Unverified += c.Unverified
			}
		}
		switch c.Class {
		case store.ClassNotCounted:
			v.Audit.Flagged += c.N
		case store.ClassDuplicateCase:
			v.Audit.Duplicate += c.N
		}
		if !c.Rated() {
			continue
		}
		i := c.Satisfaction - 1
		for _, a := range []struct {
			m   map[string][5]int64
			key string
			on  bool
		}{
			{todayAgg.counter, c.Counter, c.Day == today}, {todayAgg.staff, staff, c.Day == today},
			{monthAgg.counter, c.Counter, true}, {monthAgg.staff, staff, true},
		} {
			if !a.on {
				continue
			}
			l := a.m[a.key]
			l[i] += c.N
			a.m[a.key] = l
		}
		if day, err := time.ParseInLocation(time.DateOnly, c.Day, loc); err == nil && day.Month() == from.Month() {
			dayLevels[day.Day()-1][i] += c.N
		}
	}
	for c, l := range todayAgg.counter {
		tl := tile(c)
		tl.Today = l
		tl.Rated = sum(l)
		if tl.Rated > 0 {
			tl.GoodRate = float64(l[3]+l[4]) / float64(tl.Rated)
		}
	}
	for _, c := range sortedKeys(tiles) {
		tl := tiles[c]
		for lv := 5; lv >= 1; lv-- {
			tl.Levels = append(tl.Levels, LevelCount{level(lv, t), tl.Today[lv-1]})
		}
		if tl.Devices == nil {
			tl.Devices = []string{}
		}
		v.Tiles = append(v.Tiles, *tl)
	}
	v.TodayCounter = stackedBars(sortedKeys(todayAgg.counter), todayAgg.counter, t)
	v.TodayStaff = stackedBars(sortedKeys(todayAgg.staff), todayAgg.staff, t)
	v.MonthCounter = stackedBars(sortedKeys(monthAgg.counter), monthAgg.counter, t)
	v.MonthStaff = stackedBars(sortedKeys(monthAgg.staff), monthAgg.staff, t)
	rates, dayCounts := make([]float64, days), make([]int64, days)
	for i, l := range dayLevels {
		dayCounts[i] = sum(l)
		rates[i] = -1
		if dayCounts[i] > 0 && i < now.Day() {
			rates[i] = float64(l[3]+l[4]) / float64(dayCounts[i])
		}
	}
	v.Trend = trend(rates, dayCounts, t)
	v.Ranking = ranking(monthAgg.counter)
	v.StaffRanking = ranking(monthAgg.staff)
	v.Reasons = report.MakeReasons(data.Reasons)
	v.Followups = followupRows(data.Followups, hall, t, now)
	v.Audit = auditRows(v.Audit, data, hall, loc)
	return v
}

// pressKind names, as a key of the dictionary, why a press is not the
// counter's rating.
func pressKind(r store.LatestRating) string {
	switch {
	case r.Trust == store.TrustFlagged || r.JoinState == store.Excluded:
		return "press_held"
	case r.Disposition != string(record.Counted):
		return "press_" + r.Disposition
	}
	return "press_other"
}

func followupRows(fs []store.Followup, hall string, t dict, now time.Time) []FollowupRow {
	today, _ := time.ParseInLocation(time.DateOnly, now.Format(time.DateOnly), now.Location())
	out := []FollowupRow{}
	for _, f := range fs {
		if f.Hall != hall {
			continue
		}
		row := FollowupRow{Followup: f, Level: level(f.Satisfaction, t)}
		if due, err := time.ParseInLocation(time.DateOnly, f.Due, now.Location()); err == nil {
			row.DaysLeft = int(due.Sub(today).Hours() / 24)
			row.Overdue = row.DaysLeft < 0
		}
		row.PressedAt = clock(f.PressedAt, now.Location())
		out = append(out, row)
	}
	// Most urgent first.
	slices.SortStableFunc(out, func(a, b FollowupRow) int { return strings.Compare(a.Due, b.Due) })
	return out
}

func auditRows(v auditView, data hallData, hall string, loc *time.Location) auditView {
	a := data.Audit
	top := map[[2]string]uint64{}
	for _, st := range a.Streams {
		top[[2]string{st.Device, st.Epoch}] = st.MaxSeq
		if len(st.Gaps) > 0 {
			v.Gaps = append(v.Gaps, fmt.Sprintf("%s %s: %s (%d)", st.Device, st.Epoch, st.Gaps, st.Gaps.Count()))
		}
	}
	for _, dev := range a.Devices {
		if dev.Hall != hall {
			continue
		}
		// A gap below the highest seq received is listed above already;
		// what only the status shows is the tail above it.
		var tail store.Ranges
		for _, r := range dev.Missing {
			if m := top[[2]string{dev.Device, dev.Epoch}]; r.To > m {
				tail = append(tail, store.Range{From: max(r.From, m+1), To: r.To})
			}
		}
		if len(tail) > 0 {
			v.Gaps = append(v.Gaps, fmt.Sprintf("%s %s ≤ %d: %s (%d)", dev.Device, dev.Epoch, dev.LastSeq-dev.Pending, tail, tail.Count()))
		}
	}
	v.Unmatched, v.Rejected = data.Unmatched, data.Rejected
	for _, r := range data.Unverified {
		if r.Trust == store.TrustFlagged {
			v.Failed = append(v.Failed, r)
		} else {
			v.Unverified = append(v.Unverified, r)
		}
	}
	for _, r := range data.Ambiguous {
		r.PressedAt = clock(r.PressedAt, loc)
		r.Candidates = slices.Clone(r.Candidates)
		for k, c := range r.Candidates {
			r.Candidates[k].AcceptedAt = clock(c.AcceptedAt, loc)
			r.Candidates[k].FinishedAt = clock(c.FinishedAt, loc)
		}
		v.Ambiguous = append(v.Ambiguous, r)
	}
	v.ParkedTotal = a.ParkedTotal
	v.Conflicts = a.Conflicts[:min(len(a.Conflicts), 10)]
	for _, p := range a.Parked[:min(len(a.Parked), 10)] {
		// The reason quotes what was refused: cut it short, the whole is
		// in the API.
		v.Parked = append(v.Parked, parkedRow{Time: time.UnixMilli(p.ReceivedMS).In(loc).Format(time.DateTime),
			Topic: p.Topic, Reason: store.Printable(p.Reason, 160), Size: p.Size})
	}
	return v
}

// ranking ranks keys by 不满意率 (levels 1 to 3), worst first; the last
// place (末位) is marked.
func ranking(m map[string][5]int64) []RankRow {
	var out []RankRow
	for k, l := range m {
		n := sum(l)
		if n == 0 {
			continue
		}
		out = append(out, RankRow{Key: k, Rated: n, Rate: float64(l[0]+l[1]+l[2]) / float64(n)})
	}
	slices.SortFunc(out, func(a, b RankRow) int {
		if a.Rate != b.Rate {
			if a.Rate > b.Rate {
				return -1
			}
			return 1
		}
		if a.Rated != b.Rated {
			if a.Rated > b.Rated {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Key, b.Key)
	})
	for i := range out {
		out[i].Rank = i + 1
		out[i].Bar = round2(out[i].Rate * 100)
		out[i].LastPlace = out[i].Rate > 0 && out[i].Rate == out[0].Rate
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// clock returns the hall-local time of day of an RFC 3339 time, with the
// date when it is not today's.
func clock(rfc string, loc *time.Location) string {
	t, err := time.Parse(time.RFC3339Nano, rfc)
	if err != nil {
		return rfc
	}
	return t.In(loc).Format("01-02 15:04:05")
}

func (d *dashboard) render(w http.ResponseWriter, r *http.Request, name string, data any) {
	var b bytes.Buffer
	if err := d.tmpl.ExecuteTemplate(&b, name, data); err != nil {
		d.s.internal(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(b.Bytes())
}

func (d *dashboard) hallPage(w http.ResponseWriter, r *http.Request) {
	v, err := d.view(r.Context(), langOf(r))
	if err != nil {
		d.s.internal(w, r, err)
		return
	}
	d.render(w, r, "hall.html", v)
}

func (d *dashboard) hallJSON(w http.ResponseWriter, r *http.Request) {
	v, err := d.view(r.Context(), langOf(r))
	if err != nil {
		d.s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"hall": v.Hall, "today": v.Today, "tiles": nonNil(v.Tiles)})
}

// counterView is a counter as GET /api/v1/counters lists it.
type counterView struct {
	Counter string `json:"counter"`
	// Ticket is the current ticket (live from the ticket topic, or that of
	// the last rating), with its source and when it changed.
	Ticket   *TicketView  `json:"ticket"`
	Terminal terminalView `json:"terminal"`
}

// terminalView is the status of a counter's terminals.
type terminalView struct {
	Devices []string `json:"devices"`
	// Known is false until a status was heard.
	Known      bool   `json:"known"`
	Online     bool   `json:"online"`
	StatusAt   string `json:"status_at,omitempty"`
	Pending    uint64 `json:"pending"`
	OutboxFull bool   `json:"outbox_full"`
}

// countersJSON lists every known counter with its current ticket and its
// terminal's status.
func (d *dashboard) countersJSON(w http.ResponseWriter, r *http.Request) {
	v, err := d.view(r.Context(), langOf(r))
	if err != nil {
		d.s.internal(w, r, err)
		return
	}
	out := make([]counterView, 0, len(v.Tiles))
	for _, tl := range v.Tiles {
		out = append(out, counterView{Counter: tl.Counter, Ticket: tl.Ticket, Terminal: terminalView{
			Devices: tl.Devices, Known: tl.Known, Online: tl.Online, StatusAt: tl.StatusAt,
			Pending: tl.Pending, OutboxFull: tl.OutboxFull,
		}})
	}
	writeJSON(w, http.StatusOK, map[string]any{"hall": v.Hall, "counters": out})
}

// fragments are the parts of the live view a page may fetch again.
var fragments = map[string]string{"tiles": "tiles", "charts": "charts", "followups": "followups", "audit": "audit"}

func (d *dashboard) fragment(w http.ResponseWriter, r *http.Request) {
	name, ok := fragments[r.PathValue("name")]
	if !ok {
		d.s.fail(w, http.StatusNotFound, "no fragment "+r.PathValue("name"))
		return
	}
	v, err := d.view(r.Context(), langOf(r))
	if err != nil {
		d.s.internal(w, r, err)
		return
	}
	d.render(w, r, name, v)
}

// reportView is the printable monthly report.
type reportView struct {
	Lang, Other string
	T           dict
	Hall        string
	Month       string
	Prev, Next  string
	Generated   string
	Report      report.Report
	Total       []LevelCount
	Counters    []reportLine
	Staff       []reportLine
	Trend       Trend
	Bars        Bars
}

type reportLine struct {
	Rank      int
	Row       report.Row
	Levels    []LevelCount
	Bar       float64
	LastPlace bool
}

func (d *dashboard) reportPage(w http.ResponseWriter, r *http.Request) {
	cfg := d.s.cfg
	lang := langOf(r)
	t := dicts[lang]
	now := cfg.Clock.Now().In(cfg.Location)
	month := r.URL.Query().Get("month")
	if month == "" {
		month = now.Format("2006-01")
	}
	from, to, err := report.Month(month, cfg.Location)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{Error: err.Error(), Field: "month"})
		return
	}
	fig, err := cfg.Store.Figures(r.Context(), store.FigureQuery{Hall: cfg.Hall, FromMS: from.UnixMilli(), ToMS: to.UnixMilli()})
	if err != nil {
		d.s.internal(w, r, err)
		return
	}
	rep := report.Make(month, cfg.Hall, fig.Rows, cfg.Points)
	reasons, err := cfg.Store.ReasonCounts(r.Context(), cfg.Hall, from.UnixMilli(), to.UnixMilli())
	if err != nil {
		d.s.internal(w, r, err)
		return
	}
	rep.Reasons = report.MakeReasons(reasons)
	v := reportView{Lang: lang, Other: t["lang_param"], T: t, Hall: cfg.Hall, Month: month, Report: rep,
		Prev: from.AddDate(0, -1, 0).Format("2006-01"), Next: to.Format("2006-01"),
		Generated: now.Format("2006-01-02 15:04:05")}
	levels := func(l [5]int64) []LevelCount {
		var out []LevelCount
		for lv := 5; lv >= 1; lv-- {
			out = append(out, LevelCount{level(lv, t), l[lv-1]})
		}
		return out
	}
	v.Total = levels(rep.Total.Levels)
	lines := func(rows []report.Row) []reportLine {
		var out []reportLine
		for i, row := range rows {
			out = append(out, reportLine{Rank: i + 1, Row: row, Levels: levels(row.Levels), Bar: round2(row.NotSatisfiedRate * 100),
				LastPlace: row.Rated > 0 && row.NotSatisfiedRate > 0 && row.NotSatisfiedRate == rows[0].NotSatisfiedRate})
		}
		return out
	}
	v.Counters, v.Staff = lines(rep.ByCounter), lines(rep.ByStaff)
	byCounter := map[string][5]int64{}
	var keys []string
	for _, row := range rep.ByCounter {
		byCounter[row.Key] = row.Levels
		keys = append(keys, row.Key)
	}
	slices.Sort(keys)
	v.Bars = stackedBars(keys, byCounter, t)
	days := to.AddDate(0, 0, -1).Day()
	dl := make([][5]int64, days)
	for _, c := range fig.Rows {
		if day, err := time.ParseInLocation(time.DateOnly, c.Day, cfg.Location); err == nil && c.Rated() && day.Month() == from.Month() {
			dl[day.Day()-1][c.Satisfaction-1] += c.N
		}
	}
	rates, n := make([]float64, days), make([]int64, days)
	for i, l := range dl {
		n[i], rates[i] = sum(l), -1
		if n[i] > 0 {
			rates[i] = float64(l[3]+l[4]) / float64(n[i])
		}
	}
	v.Trend = trend(rates, n, t)
	d.render(w, r, "report.html", v)
}

// args makes a map of its key, value pairs, to hand a template several
// values.
func args(kv ...any) (map[string]any, error) {
	if len(kv)%2 != 0 {
		return nil, errors.New("args: odd number of arguments")
	}
	m := make(map[string]any, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			return nil, fmt.Errorf("args: key %v is not a string", kv[i])
		}
		m[k] = kv[i+1]
	}
	return m, nil
}
