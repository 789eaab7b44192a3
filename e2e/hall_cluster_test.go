package e2e

// The hall as a cluster: one Mosquitto, one PostgreSQL, two collectors on a
// shared subscription, simulated terminals and an e-supervision endpoint
// the test can take down. Used by the scale test and the hall's fault
// injection.

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/hallrate/hallrate/internal/mqtttest"
	"github.com/hallrate/hallrate/internal/pgtest"
	"github.com/hallrate/hallrate/record"
)

// startPostgres starts a PostgreSQL for one test, or skips it (fails it
// with HALLRATE_REQUIRE_POSTGRES) when PostgreSQL is not installed.
func startPostgres(t *testing.T) (*pgtest.Server, string, *sql.DB) {
	t.Helper()
	srv, err := pgtest.Start()
	srv = pgtest.Need(t, srv, err)
	t.Cleanup(srv.Stop)
	dsn := srv.NewDatabase(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return srv, dsn, db
}

// tail keeps the last bytes written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (b *tail) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > 64<<10 {
		b.buf = slices.Clone(b.buf[len(b.buf)-32<<10:])
	}
	return len(p), nil
}

func (b *tail) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// supervised is a collector binary run the way systemd runs it with
// Restart=always: when it exits by itself it is started again after
// RestartSec. The test kills it with kill9, which restarts it too.
type supervised struct {
	t         *testing.T
	name, bin string
	conf, api string
	delay     time.Duration // RestartSec
	log       tail
	stored    atomic.Int64 // records this collector printed as newly stored, over all its lives

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{}
	life     int // incarnations started
	exits    []string
	stopping bool
}

func newSupervised(t *testing.T, name, bin, conf, api string) *supervised {
	s := &supervised{t: t, name: name, bin: bin, conf: conf, api: api, delay: 500 * time.Millisecond}
	t.Cleanup(s.kill)
	return s
}

// start starts a new incarnation and watches it.
func (s *supervised) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return nil
	}
	cmd := exec.Command(s.bin, "run", "--config", s.conf)
	cmd.Stderr = &s.log
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.name, err)
	}
	s.life++
	s.cmd, s.done = cmd, make(chan struct{})
	go s.watch(cmd, s.done, s.life, stdout)
	return nil
}

// watch reads what the collector prints, waits for its end and, when it
// ended by itself, starts it again after the delay.
func (s *supervised) watch(cmd *exec.Cmd, done chan struct{}, life int, stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		// ingest.Describe prints one line per newly stored record; the
		// audit and gap lines name an epoch.
		if l := sc.Text(); !strings.HasPrefix(l, "audit:") && !strings.Contains(l, " epoch ") {
			s.stored.Add(1)
		}
	}
	err := cmd.Wait()
	close(done)
	s.mu.Lock()
	restart := !s.stopping && s.life == life
	if restart {
		s.exits = append(s.exits, fmt.Sprintf("life %d: %v", life, err))
		fmt.Fprintf(&s.log, "supervisor: %s exited (%v), restarting in %s\n", s.name, err, s.delay)
	}
	s.mu.Unlock()
	if !restart {
		return
	}
	time.Sleep(s.delay) // RestartSec
	if err := s.start(); err != nil {
		fmt.Fprintf(&s.log, "supervisor: %v\n", err)
	}
}

// kill9 kills the running incarnation with SIGKILL; between runs while it
// is dead, then it is started again after the delay, as systemd would.
// It may be called from any goroutine.
func (s *supervised) kill9(between func()) error {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.life++ // the watcher of the killed one must not restart it
	s.mu.Unlock()
	_ = cmd.Process.Kill()
	<-done
	if between != nil {
		between()
	}
	time.Sleep(s.delay) // RestartSec
	return s.start()
}

// selfExits returns the exits the test did not cause.
func (s *supervised) selfExits() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.exits)
}

// stop ends the collector with SIGTERM and does not restart it.
func (s *supervised) stop() {
	s.t.Helper()
	s.mu.Lock()
	s.stopping = true
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		s.t.Errorf("%s did not stop within 30s of SIGINT", s.name)
		_ = cmd.Process.Kill()
		<-done
	}
}

func (s *supervised) kill() {
	s.mu.Lock()
	s.stopping = true
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Kill()
		<-done
	}
}

func (s *supervised) String() string { return s.name + ":\n" + s.log.String() }

// clusterCollectorConfig writes the configuration of one collector of the
// cluster: its own client id and API, the shared group, one database.
func clusterCollectorConfig(t *testing.T, dir, name, broker, dsn, api, esup string) string {
	t.Helper()
	path := filepath.Join(dir, name+".toml")
	conf := fmt.Sprintf(`[hall]
id = "h1"
timezone = "UTC"
[mqtt]
broker = %q
client_id = "collector-%s"
share_group = "hallrate-collector"
[store]
dsn = %q
[http]
listen = %q
[esup]
url = "http://%s/evaluations"
retry_min = "50ms"
retry_max = "500ms"
timeout = "5s"
lease = "30s"
[log]
level = "warn"
`, broker, name, dsn, api, esup)
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// hallCluster is a hall with two or more collectors.
type hallCluster struct {
	t      *testing.T
	pg     *pgtest.Server
	db     *sql.DB
	broker *mqtttest.Mosquitto
	ep     *countingEndpoint
	cols   []*supervised
}

// startCluster starts PostgreSQL, a durable Mosquitto without a queue cap
// (mqtttest's configuration: max_queued_messages 0, persistence saved on
// every change), the e-supervision endpoint and n collectors.
func startCluster(t *testing.T, n int) *hallCluster {
	t.Helper()
	pg, dsn, db := startPostgres(t)
	c := &hallCluster{t: t, pg: pg, db: db, broker: mqtttest.StartMosquitto(t, "")}
	c.ep = newCountingEndpoint(t)
	bin := buildCollector(t)
	dir := t.TempDir()
	for i := range n {
		name := string(rune('a' + i))
		api := fmt.Sprintf("127.0.0.1:%d", mqtttest.FreePort(t))
		conf := clusterCollectorConfig(t, dir, name, c.broker.URL(), dsn, api, c.ep.addr)
		s := newSupervised(t, "collector-"+name, bin, conf, "http://"+api)
		if err := s.start(); err != nil {
			t.Fatal(err)
		}
		c.cols = append(c.cols, s)
	}
	for _, s := range c.cols {
		waitHTTP(t, s.api+"/healthz", 200, s.String)
	}
	return c
}

func (c *hallCluster) logs() string {
	var b strings.Builder
	for _, s := range c.cols {
		b.WriteString(s.String())
	}
	return b.String()
}

// postCases posts cases to whichever collector takes them, retrying while
// collectors are down. A case posted twice is stored once (upsert on
// projectNo).
func (c *hallCluster) postCases(cases []string) {
	c.t.Helper()
	for chunk := range slices.Chunk(cases, 100) {
		body := "[" + strings.Join(chunk, ",") + "]"
		deadline := time.Now().Add(60 * time.Second)
		for i := 0; ; i++ {
			code, answer := httpDo(c.t, "POST", c.cols[i%len(c.cols)].api+"/api/v1/cases", body)
			if code == 200 {
				break
			}
			if code == 400 || time.Now().After(deadline) {
				c.t.Fatalf("post cases: %d %s\n%s", code, answer, c.logs())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// query runs a counting query, or returns -1 while the database is away.
func (c *hallCluster) count(q string, args ...any) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var n int
	if err := c.db.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
		return -1
	}
	return n
}

// strings returns the first column of a query.
func (c *hallCluster) strings(q string, args ...any) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := c.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// inFlight returns the evaluations a collector holds leased and has not
// recorded an outcome of: a kill -9 now leaves them in the crash window,
// and only these may reach the endpoint twice.
func (c *hallCluster) inFlight(owner string) []string {
	c.t.Helper()
	for range 100 {
		ids, err := c.strings(`SELECT rating_id FROM esup_evaluation WHERE state = 'pending' AND lease_owner = $1`, owner)
		if err == nil {
			return ids
		}
		time.Sleep(100 * time.Millisecond) // the database may be restarting
	}
	c.t.Fatalf("cannot read the leases of %s", owner)
	return nil
}

// waitFor polls cond until it holds or timeout passes.
func (c *hallCluster) waitFor(what string, timeout time.Duration, cond func() (bool, string)) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %s waiting for %s: %s\n%s", timeout, what, state, c.logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// verdict checks, once everything has settled, that every rating is stored
// exactly once and every evaluation was accepted exactly once (a key twice
// only if it was in a crash window). It returns the duplicates seen.
func (c *hallCluster) verdict(ratings, evals map[string]bool, crashWindow map[string]bool) (lost, dupKeys int) {
	c.t.Helper()
	t := c.t
	// Rows by id: the primary key makes a second row impossible; count
	// anyway, and compare the ids with what the terminals published.
	if n, d := c.count(`SELECT count(*) FROM rating`), c.count(`SELECT count(DISTINCT id) FROM rating`); n != len(ratings) || d != n {
		t.Errorf("rating table: %d rows, %d distinct ids; %d records published", n, d, len(ratings))
	}
	ids, err := c.strings(`SELECT id FROM rating`)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for _, id := range ids {
		stored[id] = true
		if !ratings[id] {
			t.Errorf("stored %s, which no terminal published", id)
		}
	}
	for id := range ratings {
		if !stored[id] {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d published records not stored", lost)
	}
	if n := c.count(`SELECT count(*) FROM esup_evaluation`); n != len(evals) {
		t.Errorf("esup_evaluation: %d rows, want %d", n, len(evals))
	}
	if n := c.count(`SELECT count(*) FROM esup_evaluation WHERE state = 'delivered'`); n != len(evals) {
		t.Errorf("esup_evaluation: %d delivered, want %d", n, len(evals))
	}
	accepted := c.ep.snapshot()
	for key, n := range accepted {
		if !evals[key] {
			t.Errorf("endpoint accepted %s, which is no expected evaluation", key)
		}
		if n > 1 {
			dupKeys++
			if !crashWindow[key] || n > 2 {
				t.Errorf("evaluation %s accepted %d times outside a crash window; collectors said:\n%s", key, n, c.linesWith(key))
			}
		}
	}
	for key := range evals {
		if accepted[key] == 0 {
			t.Errorf("evaluation %s never accepted", key)
		}
	}
	return lost, dupKeys
}

// countingEndpoint is the e-supervision system: it counts what it accepted
// per Idempotency-Key, and can be taken down or made to answer 500.
type countingEndpoint struct {
	t    *testing.T
	addr string

	mu       sync.Mutex
	srv      *http.Server
	failing  bool
	latency  time.Duration
	accepted map[string]int
	answered int // 2xx answers
	refused  int // 500 answers
}

func newCountingEndpoint(t *testing.T) *countingEndpoint {
	e := &countingEndpoint{t: t, addr: fmt.Sprintf("127.0.0.1:%d", mqtttest.FreePort(t)), accepted: map[string]int{}}
	e.up()
	t.Cleanup(e.down)
	return e
}

func (e *countingEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	var ev struct {
		RatingID string `json:"ratingId"`
	}
	if err == nil {
		err = json.Unmarshal(b, &ev)
	}
	key := r.Header.Get("Idempotency-Key")
	if err != nil || key == "" || key != ev.RatingID {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	e.mu.Lock()
	latency := e.latency
	e.mu.Unlock()
	// A receiver that takes its time keeps evaluations in flight, so that
	// a collector killed now dies between the answer and recording it.
	time.Sleep(latency)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.failing {
		e.refused++
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	e.accepted[key]++
	e.answered++
	io.WriteString(w, `{"custom":{"code":"1"}}`)
}

// setFailing makes every answer a 500 (true) or a 200 again (false).
func (e *countingEndpoint) setFailing(f bool) {
	e.mu.Lock()
	e.failing = f
	e.mu.Unlock()
}

func (e *countingEndpoint) up() {
	e.t.Helper()
	var l net.Listener
	var err error
	for range 100 { // the port may linger briefly after down
		if l, err = net.Listen("tcp", e.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		e.t.Fatal(err)
	}
	srv := &http.Server{Handler: e}
	e.mu.Lock()
	e.srv = srv
	e.mu.Unlock()
	go srv.Serve(l)
}

// down stops listening once the answers in progress are written.
func (e *countingEndpoint) down() {
	e.mu.Lock()
	srv := e.srv
	e.srv = nil
	e.mu.Unlock()
	if srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		e.t.Errorf("endpoint shutdown: %v", err)
	}
}

func (e *countingEndpoint) snapshot() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int, len(e.accepted))
	for k, v := range e.accepted {
		out[k] = v
	}
	return out
}

func (e *countingEndpoint) distinct() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.accepted)
}

// simTerminal publishes valid, signed, hash-chained press records
// directly, as an agent would, with QoS 1: a stand-in for a terminal where
// twenty agent processes would be too heavy for a test.
type simTerminal struct {
	device, counter, epoch string
	key                    ed25519.PrivateKey
	seq                    uint64
	prev                   string
	client                 mqtt.Client
	pending                []mqtt.Token
}

var buttonLabels = [...]string{"", "very_satisfied", "satisfied", "basic", "dissatisfied"}

func newSimTerminal(t *testing.T, broker, device, counter string) *simTerminal {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var e [4]byte
	rand.Read(e[:])
	s := &simTerminal{device: device, counter: counter, epoch: fmt.Sprintf("%x", e), key: key}
	o := mqtt.NewClientOptions().AddBroker(broker).SetClientID("hallrate-agent-" + device).
		SetCleanSession(false).SetAutoReconnect(true).SetMaxReconnectInterval(time.Second)
	s.client = mqtt.NewClient(o)
	if tok := s.client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("terminal %s: connect: %v", device, tok.Error())
	}
	t.Cleanup(func() { s.client.Disconnect(100) })
	return s
}

// press publishes the next record and returns its id; ticket "" is a
// press without a ticket.
func (s *simTerminal) press(button int, disp record.Disposition, ticket string) string {
	s.seq++
	p := record.Press{V: record.Version, ID: record.PressID(s.device, s.epoch, s.seq), Device: s.device, Hall: "h1",
		Counter: s.counter, Epoch: s.epoch, Seq: s.seq, Button: button, Label: buttonLabels[button],
		Satisfaction: 6 - button, Disposition: disp, PressedAt: time.Now().UTC().Format(time.RFC3339Nano),
		ClockSynced: true, BootID: "sim", UptimeMS: int64(s.seq) * 1000, Prev: s.prev}
	if ticket != "" {
		p.Ticket = &record.TicketRef{ID: ticket, State: record.Done, Staff: "S" + s.counter, Item: "business licence"}
	}
	p.Sign(s.key)
	s.prev = p.ChainHash()
	b, _ := json.Marshal(p)
	s.pending = append(s.pending, s.client.Publish("hallrate/v1/h1/"+s.counter+"/rating", 1, false, b))
	return p.ID
}

// flush waits for the broker's acknowledgement of every record published.
func (s *simTerminal) flush(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, tok := range s.pending {
		if !tok.WaitTimeout(time.Until(deadline)) {
			return fmt.Errorf("terminal %s: no PUBACK within %s", s.device, timeout)
		}
		if err := tok.Error(); err != nil {
			return fmt.Errorf("terminal %s: publish: %w", s.device, err)
		}
	}
	s.pending = s.pending[:0]
	return nil
}

// linesWith returns the collectors' log lines that mention s.
func (c *hallCluster) linesWith(s string) string {
	var out []string
	for _, l := range strings.Split(c.logs(), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
