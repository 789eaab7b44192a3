// Package collector is the hall side of hallrate at run time: it receives
// the terminals' records from the broker, keeps each once through the
// store, audits them for loss, joins ratings with cases, delivers
// evaluations, publishes alerts and serves the API and the live dashboard.
package collector

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hallrate/hallrate/hall/broker"
	"github.com/hallrate/hallrate/hall/calendar"
	"github.com/hallrate/hallrate/hall/config"
	"github.com/hallrate/hallrate/hall/demo"
	"github.com/hallrate/hallrate/hall/esup"
	"github.com/hallrate/hallrate/hall/ingest"
	"github.com/hallrate/hallrate/hall/link"
	"github.com/hallrate/hallrate/hall/live"
	"github.com/hallrate/hallrate/hall/store"
	queue "github.com/hallrate/hallrate/hall/tickets"
	"github.com/hallrate/hallrate/hall/trust"
	"github.com/hallrate/hallrate/hall/web"
	"github.com/hallrate/hallrate/internal/secretfile"
	"github.com/hallrate/hallrate/internal/throttle"
	"github.com/jonboulle/clockwork"
)

// syncWriter serialises the lines of the goroutines that print.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// nudger wakes a loop without blocking the caller.
type nudger chan struct{}

func newNudger() nudger { return make(nudger, 1) }

func (n nudger) nudge() {
	select {
	case n <- struct{}{}:
	default:
	}
}

// Parts are what the collector takes from its main besides the
// configuration.
type Parts struct {
	// Out receives the lines an operator watches: each rating, each gap
	// event and the audit.
	Out io.Writer
	// Logger receives the collector's log.
	Logger *slog.Logger
	// BrokerLogger receives the embedded broker's log; nil means Logger.
	BrokerLogger *slog.Logger
	// Version is logged when the collector starts.
	Version string
	// Clock is the collector's time; nil is the real clock.
	Clock clockwork.Clock
}

// Collector receives the terminals' records, keeps each once, audits them
// for loss, joins ratings with cases and hands evaluations to the
// e-supervision system.
type Collector struct {
	cfg       config.Config
	log       *slog.Logger
	brokerLog *slog.Logger
	out       io.Writer
	version   string
	clock     clockwork.Clock
	loc       *time.Location
	clientID  string
	password  string
	token     string
	cal       calendar.Calendar
	keys      *trust.Inventory
	tlsConf   *tls.Config
}

// New checks what cfg names (time zone, password, token and key files,
// calendar) and returns the collector it describes; cfg must have been
// validated. Nothing is opened until [Collector.Run].
func New(cfg config.Config, p Parts) (*Collector, error) {
	log := p.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Collector{cfg: cfg, log: log, brokerLog: p.BrokerLogger, out: &syncWriter{w: p.Out}, version: p.Version, clock: p.Clock}
	if c.clock == nil {
		c.clock = clockwork.NewRealClock()
	}
	if c.brokerLog == nil {
		c.brokerLog = log
	}
	if p.Out == nil {
		c.out = io.Discard
	}
	var err error
	c.loc, err = time.LoadLocation(cfg.Hall.Timezone)
	if err != nil {
		return nil, fmt.Errorf("config: hall.timezone: %w", err)
	}
	c.clientID, err = clientID(cfg, log)
	if err != nil {
		return nil, err
	}
	c.password, err = readPassword(cfg.MQTT.PasswordFile)
	if err != nil {
		return nil, err
	}
	c.token, err = readToken(cfg.HTTP.TokenFile)
	if err != nil {
		return nil, err
	}
	c.cal, err = loadCalendar(cfg.Followup.Calendar)
	if err != nil {
		return nil, err
	}
	c.keys, c.tlsConf, err = trustSetup(cfg, log)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Run builds the parts of the collector, runs them until ctx is
// cancelled, and prints the audit on the way out.
func (c *Collector) Run(ctx context.Context) error {
	cfg, log, out, loc, clock := c.cfg, c.log, c.out, c.loc, c.clock
	clientID, password, token, cal := c.clientID, c.password, c.token, c.cal
	keys, tlsConf := c.keys, c.tlsConf
	listener, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http.listen: %w", err)
	}
	defer listener.Close()

	db, err := store.Open(ctx, cfg.Store.DSN, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := db.Close(); err != nil {
			log.Error("close store", "err", err)
		}
	}()
	if n, err := db.ReleaseLeases(ctx, clientID); err != nil {
		return err
	} else if n > 0 {
		log.Info("evaluations this collector was sending before it stopped are queued again", "count", n)
	}

	if err := saveInventory(ctx, db, keys); err != nil {
		return err
	}

	var export ingest.Sink
	if cfg.Store.JSONL != "" {
		j, err := openExport(cfg.Store.JSONL, log)
		if err != nil {
			return err
		}
		defer func() {
			if err := j.Close(); err != nil {
				log.Error("close records file", "err", err)
			}
		}()
		export = j
	}

	firstKeys, err := loadFirstKeys(ctx, db)
	if err != nil {
		return err
	}

	joinNudge, deliverNudge, alertNudge := newNudger(), newNudger(), newNudger()
	var tickets *demo.Runner
	hear := func(hall, counter string) {}
	hub := live.NewHub(clock)
	// The end-to-end acknowledgement per terminal; its publisher is the
	// link, made below.
	acker := &ingest.Acker{Store: db, Prefix: cfg.MQTT.TopicPrefix, Logger: log, Every: cfg.MQTT.StoredEvery.Duration}
	in, err := ingest.New(ingest.Config{
		Prefix: cfg.MQTT.TopicPrefix,
		Store:  db,
		Export: export,
		// The export is complete: what a crash kept from it is replayed.
		Exports:     db,
		ExportOwner: clientID,
		Location:    loc,
		DueDate: func(pressed time.Time) string {
			return cal.AddWorkingDays(pressed, cfg.Followup.WorkingDays).Format(time.DateOnly)
		},
		Logger: log,
		OnRating: func(r store.Rating) {
			fmt.Fprintln(out, ingest.Describe(r.Press))
			acker.Mark(r)
			hear(r.Hall, r.Counter)
			hub.Publish(live.Event{Kind: live.Rating, Hall: r.Hall, Counter: r.Counter, Bad: r.Followup != nil})
		},
		OnStatus: func(st store.StatusUpdate) {
			acker.MarkStatus(st)
			hear(st.Hall, st.Counter)
			hub.Publish(live.Event{Kind: live.Status, Hall: st.Hall, Counter: st.Counter})
		},
		OnEvent: func(e store.GapEvent) {
			fmt.Fprintf(out, "%s: %s epoch %s seq %s\n", e.Kind, e.Device, e.Epoch, e.Seqs)
		},
		OnStored: func() {
			joinNudge.nudge()
			alertNudge.nudge()
		},
		Keys:           keys,
		FirstKeys:      firstKeys,
		HoldUnverified: keys != nil && !cfg.Trust.AcceptUnverified,
		ReasonWait:     cfg.Followup.ReasonWait.Duration,
		OnTrust: func(id, reason string) {
			fmt.Fprintf(out, "FLAGGED: %s %s\n", id, reason)
		},
	})
	if err != nil {
		return err
	}
	if n, err := in.ReplayExports(ctx); err != nil {
		return err
	} else if n > 0 {
		log.Warn("records stored but missing from the records file written to it now", "file", cfg.Store.JSONL, "records", n)
	}

	brokerURL := cfg.MQTT.Broker
	if cfg.MQTT.EmbeddedBroker != "" {
		// The embedded broker keeps its sessions in memory, so a record
		// it acknowledged and had not yet handed to the collector's link
		// would die with the process: records are stored before the
		// broker acknowledges them instead (docs/collector.md).
		commits := newCommitter(in)
		commitCtx, stopCommits := context.WithCancel(context.WithoutCancel(ctx))
		commitsDone := make(chan struct{})
		go func() { commits.run(commitCtx); close(commitsDone) }()
		defer func() { stopCommits(); <-commitsDone }()
		b, err := broker.Open(broker.Config{
			Addr: cfg.MQTT.EmbeddedBroker, Logger: c.brokerLog,
			Commit: commits.Commit,
			Durable: func(topic string) bool {
				t, err := ingest.ParseTopic(cfg.MQTT.TopicPrefix, topic)
				return err == nil && t.Kind == "rating"
			},
		})
		if err != nil {
			return err
		}
		defer func() {
			if err := b.Close(); err != nil {
				log.Warn("stop embedded broker", "err", err)
			}
		}()
		brokerURL = b.URL()
		log.Info("embedded broker listening", "addr", b.Addr())
	}
	// The URL is logged; a password written into it must not be.
	brokerURL, username, password := link.MoveCredentials(brokerURL, cfg.MQTT.Username, password)

	joiner := esup.NewJoiner(esup.JoinConfig{
		Store: db, Location: loc, AreaCode: cfg.Hall.AreaCode, PF: cfg.ESup.PF,
		MatchWindow: cfg.ESup.MatchWindow.Duration, Sink: cfg.ESup.Sink, Logger: log,
		OnEvaluation: func(store.Evaluation) { deliverNudge.nudge() },
	})
	var deliverer *esup.Deliverer
	if cfg.ESup.Sink == esup.SinkHTTP {
		if cfg.ESup.URL == "" {
			log.Warn("esup.sink is http but esup.url is empty: evaluations are kept in the queue until a url is set")
		} else {
			deliverer = esup.NewDeliverer(esup.DeliverConfig{
				Store: db, Owner: clientID, Lease: cfg.ESup.Lease.Duration, Timeout: cfg.ESup.Timeout.Duration,
				Sink: &esup.HTTPSink{URL: cfg.ESup.URL, Wrap: cfg.ESup.Wrap, OKField: cfg.ESup.OKField, OKValue: cfg.ESup.OKValue,
					Client: &http.Client{Timeout: cfg.ESup.Timeout.Duration}},
				MinBackoff: cfg.ESup.RetryMin.Duration, MaxBackoff: cfg.ESup.RetryMax.Duration, Logger: log,
			})
		}
	}

	l := link.New(link.Config{
		Broker: brokerURL, ClientID: clientID,
		Username: username, Password: password,
		Filters: append(filters(cfg), ticketFilter(cfg.MQTT.TopicPrefix, cfg.Hall.ID)),
		Logger:  log,
		TLS:     tlsConf,
	})
	alerter := &esup.Alerter{Store: db, Publisher: l, Prefix: cfg.MQTT.TopicPrefix, Logger: log, Clock: clock}
	acker.Publisher = l
	if cfg.Demo.Tickets {
		tickets = demo.New(demo.Config{
			Prefix:    cfg.MQTT.TopicPrefix,
			Timings:   demo.Timings{Serving: cfg.Demo.Serving.Duration, Done: cfg.Demo.Done.Duration, Idle: cfg.Demo.Idle.Duration},
			Location:  loc,
			Publisher: l,
			Logger:    log,
			Skip:      cfg.Demo.SkipCounters,
		})
		hear = tickets.Hear
	}
	counters := []web.Counter{
		{Name: "records_stored_total", Help: "Press records newly stored by this collector.", Value: func() int64 { return in.Stats().Stored }},
		{Name: "records_duplicate_total", Help: "Press records delivered again and not stored again.", Value: func() int64 { return in.Stats().Duplicates }},
		{Name: "messages_malformed_total", Help: "Messages that could not be decoded.", Value: func() int64 { return in.Stats().Malformed }},
		{Name: "messages_refused_total", Help: "Messages refused for breaking the field rules (and parked).", Value: func() int64 { return in.Stats().Refused }},
		{Name: "messages_db_refused_total", Help: "Messages the database refused on their own (and parked).", Value: func() int64 { return in.Stats().DBRefused }},
		{Name: "messages_parked_total", Help: "Messages parked: kept aside, visible in the audit, and acknowledged.", Value: func() int64 { return in.Stats().Parked }},
		{Name: "statuses_total", Help: "Status messages received.", Value: func() int64 { return in.Stats().Statuses }},
		{Name: "seq_gaps_total", Help: "Seq gaps opened.", Value: func() int64 { return in.Stats().Gaps }},
		{Name: "followups_opened_total", Help: "Follow-ups of bad ratings opened.", Value: func() int64 { return in.Stats().Followups }},
		{Name: "alerts_published_total", Help: "Bad rating alerts published.", Value: alerter.Sent},
		{Name: "evaluations_made_total", Help: "Evaluations made by joins of this collector.", Value: func() int64 { return joiner.Stats().Joined }},
		{Name: "ratings_duplicate_case_total", Help: "Counted ratings flagged duplicate_case.", Value: func() int64 { return joiner.Stats().Duplicates }},
		{Name: "ratings_unmatched_total", Help: "Counted ratings marked unmatched.", Value: func() int64 { return joiner.Stats().Unmatched }},
	}
	counters = append(counters, trustCounters(in)...)
	if deliverer != nil {
		counters = append(counters,
			web.Counter{Name: "deliveries_total", Help: "Delivery attempts.", Value: func() int64 { return deliverer.Stats().Attempts }},
			web.Counter{Name: "deliveries_delivered_total", Help: "Evaluations delivered.", Value: func() int64 { return deliverer.Stats().Delivered }},
			web.Counter{Name: "deliveries_rejected_total", Help: "Evaluations rejected.", Value: func() int64 { return deliverer.Stats().Rejected }},
			web.Counter{Name: "deliveries_retried_total", Help: "Attempts to be retried.", Value: func() int64 { return deliverer.Stats().Retried }},
		)
	}
	gateway := queue.NewGateway(queue.Config{
		Prefix: cfg.MQTT.TopicPrefix, Hall: cfg.Hall.ID, Publisher: l, Ready: l.Ready, Noter: hub, Logger: log,
	})
	var poller *queue.Poller
	if t := cfg.Tickets; t.SQLDriver != "" {
		poller, err = queue.NewPoller(queue.PollConfig{Driver: t.SQLDriver, DSN: t.SQLDSN, Query: t.SQLQuery,
			Interval: t.PollInterval.Duration, CursorStart: t.CursorStart, Cursors: db, Gateway: gateway, Logger: log})
		if err != nil {
			return fmt.Errorf("config: tickets.sql_dsn: %w", err)
		}
		defer poller.Close()
		counters = append(counters,
			web.Counter{Name: "tickets_polled_total", Help: "Queue system rows published as tickets.", Value: func() int64 { return poller.Stats().Published }},
			web.Counter{Name: "tickets_refused_total", Help: "Queue system rows refused for a field.", Value: func() int64 { return poller.Stats().Refused }},
		)
	}
	points := [5]float64(cfg.Report.Points)
	api := web.New(web.Config{
		Tickets: gateway, Assigner: joiner,
		Store: db, Hall: cfg.Hall.ID, Location: loc, Token: token, Hosts: cfg.HTTP.Hosts, Points: points, Logger: log,
		Registry: web.NewRegistry(db, clock, log, counters),
		Missing: func() []string {
			var missing []string
			if !l.Ready() {
				missing = append(missing, "mqtt: not connected and subscribed to "+strings.Join(filters(cfg), ", "))
			}
			return append(missing, stuck(in, clock.Now())...)
		},
		CasesAdded:       joinNudge.nudge,
		EvaluationQueued: deliverNudge.nudge,
	})
	if err := api.AddDashboard(ctx, hub); err != nil {
		return err
	}

	log.Info("collector starting", "version", c.version, "hall", cfg.Hall.ID, "broker", brokerURL,
		"client_id", clientID, "store", db.Kind, "http", listener.Addr().String(), "esup_sink", cfg.ESup.Sink,
		"records", cfg.Store.JSONL, "demo_tickets", cfg.Demo.Tickets)
	p := parts{poller: poller, link: l, in: in, hub: hub, prefix: cfg.MQTT.TopicPrefix, tickets: tickets, joiner: joiner, deliverer: deliverer, alerter: alerter, api: api,
		listener: listener, db: db, out: out, every: cfg.Log.SummaryInterval.Duration, log: log, clock: clock,
		joinNudge: joinNudge, deliverNudge: deliverNudge, alertNudge: alertNudge, acker: acker}
	err = p.run(ctx)
	a, aerr := db.Audit(context.WithoutCancel(ctx))
	if aerr == nil {
		aerr = ingest.PrintAudit(out, a, in.Stats())
	}
	if aerr != nil {
		log.Warn("print audit", "err", aerr)
	}
	log.Info("collector stopped", "stored", in.Stats().Stored)
	return err
}

// parts are the running pieces of the collector.
type parts struct {
	link                                *link.Link
	in                                  *ingest.Ingester
	tickets                             *demo.Runner
	poller                              *queue.Poller
	joiner                              *esup.Joiner
	deliverer                           *esup.Deliverer
	alerter                             *esup.Alerter
	api                                 *web.Server
	listener                            net.Listener
	db                                  *store.DB
	out                                 io.Writer
	every                               time.Duration
	log                                 *slog.Logger
	clock                               clockwork.Clock
	joinNudge, deliverNudge, alertNudge nudger
	acker                               *ingest.Acker
	hub                                 *live.Hub
	prefix                              string
}

// run runs the link, the join, the delivery, the alerts, the API, the
// demonstration and the periodic audit. On cancellation everything else
// stops first, so that the last tickets and alerts still go out over the
// link.
func (p *parts) run(ctx context.Context) error {
	linkCtx, stopLink := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLink()
	partsCtx, stopParts := context.WithCancel(ctx)
	defer stopParts()

	linkDone := make(chan error, 1)
	go func() {
		linkDone <- p.link.Run(linkCtx, func(msgs []link.Message) error {
			return retrier{p.in, p.clock, p.log}.store(linkCtx, toIngest(splitTickets(msgs, p.prefix, p.hub)))
		})
	}()

	var wg sync.WaitGroup
	if p.tickets != nil {
		wg.Go(func() { p.tickets.Run(partsCtx) })
	}
	if p.poller != nil {
		wg.Go(func() { p.poller.Run(partsCtx) })
	}
	wg.Go(func() { p.joiner.Run(partsCtx, p.joinNudge, 2*time.Second) })
	if p.deliverer != nil {
		wg.Go(func() { p.deliverer.Run(partsCtx, p.deliverNudge, time.Second) })
	}
	wg.Go(func() { p.alerter.Run(partsCtx, p.alertNudge, 5*time.Second) })
	wg.Go(func() { p.acker.Run(partsCtx, time.Second) })
	apiDone := make(chan error, 1)
	wg.Go(func() { apiDone <- p.api.Serve(partsCtx, p.listener) })
	wg.Go(func() { printAudits(partsCtx, p.in, p.db, p.out, p.every, p.log) })

	var err error
	select {
	case <-ctx.Done():
	case err = <-linkDone:
		// The link stops by itself only when it cannot run at all.
		stopParts()
		wg.Wait()
		return err
	case err = <-apiDone:
		stopParts()
		wg.Wait()
		stopLink()
		return errors.Join(err, <-linkDone)
	}
	wg.Wait()
	stopLink()
	if err := <-linkDone; !errors.Is(err, errBatchLeft) {
		return err
	}
	return nil
}

// stuckAfter is how long the store may refuse every batch before /healthz
// says so.
const stuckAfter = time.Minute

// stuck says, for /healthz, when ingest has been stuck longer than
// stuckAfter: the store refused every batch since, and the broker's queue
// fills.
func stuck(in interface{ Stuck() (time.Time, string) }, now time.Time) []string {
	since, why := in.Stuck()
	if since.IsZero() || now.Sub(since) <= stuckAfter {
		return nil
	}
	return []string{fmt.Sprintf("ingest: stuck for %s: %s", now.Sub(since).Round(time.Second), store.Printable(why, 300))}
}

// errBatchLeft ends the link on a stop while the store is away: the batch
// is not acknowledged, and that is no failure of the collector.
var errBatchLeft = errors.New("stopped with a batch not stored")

// batchHandler is what the collector asks of the ingester: store a batch
// of messages in one transaction, or say why not.
type batchHandler interface {
	Handle(ctx context.Context, msgs []ingest.Message) error
}

// The store's retry policy: the first wait, doubled after each failure up
// to the last.
const (
	retryFirst = 100 * time.Millisecond
	retryMax   = 5 * time.Second
)

// retrier hands a batch to the ingester and, while the store is away
// (PostgreSQL restarting, failing over), tries again with backoff rather
// than ending the collector: nothing of the batch is acknowledged until it
// is committed, and the broker holds what follows meanwhile. Only the end
// of ctx gives up, leaving the batch to the broker to deliver again.
type retrier struct {
	in    batchHandler
	clock clockwork.Clock
	log   *slog.Logger
}

func (r retrier) store(ctx context.Context, msgs []ingest.Message) error {
	wait := retryFirst
	for attempt := 1; ; attempt++ {
		err := r.in.Handle(context.WithoutCancel(ctx), msgs)
		if err == nil {
			if attempt > 1 {
				r.log.Info("store answers again: batch stored", "messages", len(msgs), "attempts", attempt)
			}
			return nil
		}
		if (throttle.Every{First: 3, Nth: 50}).Log(int64(attempt)) {
			r.log.Error("batch not stored; will retry, unacknowledged", "err", err, "messages", len(msgs),
				"attempt", attempt, "retry_in", wait)
		}
		select {
		case <-ctx.Done():
			r.log.Warn("stopping with a batch not stored: the broker delivers it again", "messages", len(msgs), "err", err)
			return errBatchLeft
		case <-r.clock.After(wait):
		}
		wait = min(2*wait, retryMax)
	}
}

func toIngest(msgs []link.Message) []ingest.Message {
	out := make([]ingest.Message, len(msgs))
	for i, m := range msgs {
		out[i] = ingest.Message{Topic: m.Topic, Payload: m.Payload}
	}
	return out
}

// printAudits prints the audit every interval in which records arrived.
func printAudits(ctx context.Context, in *ingest.Ingester, db *store.DB, out io.Writer, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	var last ingest.Stats
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s := in.Stats()
		s.Statuses = 0 // statuses are refreshed all the time; only records count as news
		if s == last {
			continue
		}
		last = s
		a, err := db.Audit(ctx)
		if err == nil {
			err = ingest.PrintAudit(out, a, in.Stats())
		}
		if err != nil && ctx.Err() == nil {
			log.Warn("print audit", "err", err)
		}
	}
}

// filters are the subscriptions: ratings through the shared group on an
// external broker, so that collectors side by side each get a share;
// statuses always plainly, because a broker sends retained messages to
// plain subscriptions only, and each collector wants every status.
func filters(cfg config.Config) []string {
	p := cfg.MQTT.TopicPrefix
	if cfg.MQTT.EmbeddedBroker != "" {
		// The embedded broker hands the records to the store itself,
		// before it acknowledges them.
		return []string{p + "/+/+/status"}
	}
	rating := p + "/+/+/rating"
	if cfg.MQTT.ShareGroup != "" {
		rating = "$share/" + cfg.MQTT.ShareGroup + "/" + rating
	}
	return []string{rating, p + "/+/+/status"}
}

func clientID(cfg config.Config, log *slog.Logger) (string, error) {
	if cfg.MQTT.ClientID != "" {
		return cfg.MQTT.ClientID, nil
	}
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("config: mqtt.client_id: empty and no hostname to make one: %w", err)
	}
	id := cfg.ClientID(host)
	log.Debug("client id made from the hostname", "client_id", id)
	return id, nil
}

func readPassword(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	pw, err := secretfile.Read(path)
	if err != nil {
		return "", fmt.Errorf("config: mqtt.password_file: %w", err)
	}
	return pw, nil
}

func openExport(path string, log *slog.Logger) (*ingest.JSONL, error) {
	j, err := ingest.OpenJSONL(path)
	if err != nil {
		return nil, err
	}
	if j.Repaired > 0 {
		log.Warn("incomplete last line of the records file cut off", "file", path, "bytes", j.Repaired)
	}
	return j, nil
}

func readToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := secretfile.Read(path)
	if err != nil {
		return "", fmt.Errorf("config: http.token_file: %w", err)
	}
	t := strings.TrimSpace(b)
	if t == "" {
		return "", fmt.Errorf("config: http.token_file: %s is empty", path)
	}
	return t, nil
}

func loadCalendar(path string) (calendar.Calendar, error) {
	if path == "" {
		return calendar.Calendar{}, nil
	}
	c, err := calendar.Load(path)
	if err != nil {
		return calendar.Calendar{}, fmt.Errorf("config: followup.calendar: %w", err)
	}
	return c, nil
}
