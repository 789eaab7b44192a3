package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hallrate/hallrate/hall/broker"
	"github.com/hallrate/hallrate/hall/config"
	"github.com/hallrate/hallrate/hall/demo"
	"github.com/hallrate/hallrate/hall/ingest"
	"github.com/hallrate/hallrate/hall/link"
	"github.com/hallrate/hallrate/record"
)

func cmdRun(ctx context.Context, args []string, io stdio) error {
	fs := flags("run", "Run the collector: receive the terminals' records, keep each once, audit them for loss.", io)
	path := fs.String("config", config.DefaultPath, "configuration file (without -config, a missing default file means defaults)")
	embedded := fs.String("embedded-broker", "", "run a broker in-process listening on `ADDR` (host:port) and use it (mqtt.embedded_broker)")
	brokerURL := fs.String("broker", "", "broker `URL`, such as tcp://127.0.0.1:1883 (mqtt.broker)")
	out := fs.String("out", "", "append stored records to `FILE`, one JSON object a line (store.jsonl)")
	demoTickets := fs.Bool("demo-tickets", false, "publish demonstration tickets for every counter heard from (demo.tickets)")
	def := config.Default()
	serving := fs.Duration("demo-serving", def.Demo.Serving.Duration, "how long a demonstration ticket is served (demo.serving)")
	done := fs.Duration("demo-done", def.Demo.Done.Duration, "how long a demonstration ticket stays done: the rating window (demo.done)")
	idle := fs.Duration("demo-idle", def.Demo.Idle.Duration, "pause between demonstration tickets (demo.idle)")
	summary := fs.Duration("summary-interval", def.Log.SummaryInterval.Duration, "how often to print the audit while it changes (log.summary_interval)")
	if err := parse(fs, args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["broker"] && set["embedded-broker"] {
		fmt.Fprintln(io.err, "-broker and -embedded-broker exclude each other")
		return errUsage
	}
	cfg, err := config.Load(*path, !set["config"])
	if err != nil {
		return err
	}
	switch {
	case set["embedded-broker"]:
		cfg.MQTT.EmbeddedBroker = *embedded
	case set["broker"]:
		cfg.MQTT.Broker, cfg.MQTT.EmbeddedBroker = *brokerURL, ""
	}
	if set["out"] {
		cfg.Store.JSONL = *out
	}
	if set["demo-tickets"] {
		cfg.Demo.Tickets = *demoTickets
	}
	for name, d := range map[string]struct {
		v   time.Duration
		dst *config.Duration
	}{
		"demo-serving": {*serving, &cfg.Demo.Serving}, "demo-done": {*done, &cfg.Demo.Done},
		"demo-idle": {*idle, &cfg.Demo.Idle}, "summary-interval": {*summary, &cfg.Log.SummaryInterval},
	} {
		if set[name] {
			d.dst.Duration = d.v
		}
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	return serve(ctx, cfg, io)
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

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

// serve builds the parts of the collector, runs them until ctx is
// cancelled, and prints the audit on the way out.
func serve(ctx context.Context, cfg config.Config, io stdio) error {
	log := newLogger(io.err, cfg.Log.Level)
	out := &syncWriter{w: io.out}
	loc, err := time.LoadLocation(cfg.Hall.Timezone)
	if err != nil {
		return fmt.Errorf("config: hall.timezone: %w", err)
	}
	clientID, err := clientID(cfg, log)
	if err != nil {
		return err
	}
	password, err := readPassword(cfg.MQTT.PasswordFile)
	if err != nil {
		return err
	}

	sink, closeSink, err := openSink(cfg.Store.JSONL, log)
	if err != nil {
		return err
	}
	defer closeSink()

	brokerURL := cfg.MQTT.Broker
	if cfg.MQTT.EmbeddedBroker != "" {
		b, err := broker.Start(cfg.MQTT.EmbeddedBroker, brokerLogger(io.err, cfg.Log.Level))
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

	var tickets *demo.Runner
	hear := func(hall, counter string) {}
	in, err := ingest.New(ingest.Config{
		Prefix: cfg.MQTT.TopicPrefix,
		Sink:   sink,
		Logger: log,
		OnRating: func(p record.Press) {
			fmt.Fprintln(out, ingest.Describe(p))
			hear(p.Hall, p.Counter)
		},
		OnStatus: func(t ingest.Topic, _ record.Status) { hear(t.Hall, t.Counter) },
		OnEvent: func(e ingest.Event) {
			fmt.Fprintf(out, "%s: %s epoch %s seq %s\n", e.Kind, e.Device, e.Epoch, e.Seqs)
		},
	})
	if err != nil {
		return err
	}
	if s := in.Stats(); s.Restored > 0 || s.Corrupt > 0 {
		log.Info("stored records read back", "records", s.Restored, "corrupt_lines", s.Corrupt, "file", cfg.Store.JSONL)
	}

	l := link.New(link.Config{
		Broker: brokerURL, ClientID: clientID,
		Username: cfg.MQTT.Username, Password: password,
		Filters: filters(cfg),
		Logger:  log,
	})
	if cfg.Demo.Tickets {
		tickets = demo.New(demo.Config{
			Prefix:    cfg.MQTT.TopicPrefix,
			Timings:   demo.Timings{Serving: cfg.Demo.Serving.Duration, Done: cfg.Demo.Done.Duration, Idle: cfg.Demo.Idle.Duration},
			Location:  loc,
			Publisher: l,
			Logger:    log,
		})
		hear = tickets.Hear
	}

	log.Info("collector starting", "version", version, "hall", cfg.Hall.ID, "broker", brokerURL,
		"client_id", clientID, "records", cfg.Store.JSONL, "demo_tickets", cfg.Demo.Tickets)
	err = runParts(ctx, l, in, tickets, out, cfg.Log.SummaryInterval.Duration)
	if perr := in.Audit().Print(out, in.Stats()); perr != nil {
		log.Warn("print audit", "err", perr)
	}
	log.Info("collector stopped", "stored", in.Stats().Stored)
	return err
}

// runParts runs the link, the demonstration and the periodic audit. On
// cancellation the demonstration stops first, so that its last tickets
// still go out over the link.
func runParts(ctx context.Context, l *link.Link, in *ingest.Ingester, tickets *demo.Runner, out io.Writer, every time.Duration) error {
	linkCtx, stopLink := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLink()
	partsCtx, stopParts := context.WithCancel(ctx)
	defer stopParts()

	linkDone := make(chan error, 1)
	go func() {
		linkDone <- l.Run(linkCtx, func(msgs []link.Message) error { return in.Handle(toIngest(msgs)) })
	}()

	var wg sync.WaitGroup
	if tickets != nil {
		wg.Go(func() { tickets.Run(partsCtx) })
	}
	wg.Go(func() { printAudits(partsCtx, in, out, every) })

	var err error
	select {
	case <-ctx.Done():
	case err = <-linkDone:
		// The link stops by itself only when storing failed.
		stopParts()
		wg.Wait()
		return err
	}
	wg.Wait()
	stopLink()
	return <-linkDone
}

func toIngest(msgs []link.Message) []ingest.Message {
	out := make([]ingest.Message, len(msgs))
	for i, m := range msgs {
		out[i] = ingest.Message{Topic: m.Topic, Payload: m.Payload}
	}
	return out
}

// printAudits prints the audit every interval in which records arrived.
func printAudits(ctx context.Context, in *ingest.Ingester, out io.Writer, every time.Duration) {
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
		in.Audit().Print(out, in.Stats())
	}
}

// filters are the subscriptions: ratings through the shared group on an
// external broker, so that collectors side by side each get a share;
// statuses always plainly, because a broker sends retained messages to
// plain subscriptions only, and each collector wants every status.
func filters(cfg config.Config) []string {
	p := cfg.MQTT.TopicPrefix
	rating := p + "/+/+/rating"
	if cfg.MQTT.ShareGroup != "" && cfg.MQTT.EmbeddedBroker == "" {
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
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("config: mqtt.password_file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

func openSink(path string, log *slog.Logger) (ingest.Sink, func(), error) {
	if path == "" {
		log.Warn("no records file (store.jsonl or -out): records are kept in memory only")
		return &ingest.Memory{}, func() {}, nil
	}
	j, err := ingest.OpenJSONL(path)
	if err != nil {
		return nil, nil, err
	}
	if j.Repaired > 0 {
		log.Warn("incomplete last line of the records file cut off; the broker delivers that record again",
			"file", path, "bytes", j.Repaired)
	}
	return j, func() {
		if err := j.Close(); err != nil {
			log.Error("close records file", "err", err)
		}
	}, nil
}

// brokerLogger keeps the embedded broker's chatter about every client (a
// connection that drops is a warning to it) out of the log unless debugging.
func brokerLogger(w io.Writer, level string) *slog.Logger {
	if level == "debug" {
		return newLogger(w, level).With("component", "broker")
	}
	return newLogger(w, "error").With("component", "broker")
}
