package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hallrate/hallrate/internal/mqtttest"
	"github.com/hallrate/hallrate/record"
)

// hallLoad is what the terminals of a test publish, and what the hall
// must end with.
type hallLoad struct {
	mu      sync.Mutex
	ratings map[string]bool // every record id published
	evals   map[string]bool // rating ids that must get one evaluation
	late    []string        // cases to post after the ratings
}

func newHallLoad() *hallLoad {
	return &hallLoad{ratings: map[string]bool{}, evals: map[string]bool{}}
}

func (l *hallLoad) add(id string, counted bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ratings[id] = true
	if counted {
		l.evals[id] = true
	}
}

// simulate publishes n records from terminal s, one every interval: mostly
// counted ratings of a new ticket each, every 8th a repeat press of the
// previous ticket, every 50th a press without a ticket. The case of every
// counted rating is returned in early (even tickets: posted before the
// ratings) or kept in l.late (odd tickets: posted after).
func (l *hallLoad) simulate(s *simTerminal, n int, interval time.Duration) error {
	ticket := 0
	for i := 1; i <= n; i++ {
		button := 1 + i%4
		switch {
		case i%50 == 0:
			l.add(s.press(button, record.NoTicket, ""), false)
		case i%8 == 0 && ticket > 0:
			l.add(s.press(button, record.Repeat, fmt.Sprintf("T%04d", ticket)), false)
		default:
			ticket++
			l.add(s.press(button, record.Counted, fmt.Sprintf("T%04d", ticket)), true)
		}
		if i%20 == 0 {
			if err := s.flush(30 * time.Second); err != nil {
				return err
			}
		}
		time.Sleep(interval)
	}
	return s.flush(30 * time.Second)
}

// simCases returns the cases of the counted ratings simulate makes for
// terminal s: those of even tickets, to post first, and the others.
func simCases(s *simTerminal, n int) (early, late []string) {
	ticket := 0
	for i := 1; i <= n; i++ {
		if i%50 == 0 || i%8 == 0 && ticket > 0 {
			continue
		}
		ticket++
		c := caseJSON(fmt.Sprintf("P-%s-T%04d", s.counter, ticket), s.counter, fmt.Sprintf("T%04d", ticket))
		if ticket%2 == 0 {
			early = append(early, c)
		} else {
			late = append(late, c)
		}
	}
	return early, late
}

// rateWithAgents has real agents rate tickets: per ticket one counted
// press, and on every other ticket a repeat press after it.
func rateWithAgents(t *testing.T, l *hallLoad, broker string, agents map[string]*agentProc, tickets int) {
	t.Helper()
	presses := map[string]int{}
	for i := 1; i <= tickets; i++ {
		ticket := fmt.Sprintf("A%03d", i)
		for counter, a := range agents {
			publishTicket(t, broker, counter, ticket)
			a.waitLog(1, 20*time.Second, "msg=ticket ", "ticket="+ticket+" ")
			a.press(1)
			presses[counter]++
			if i%2 == 0 {
				a.press(2)
				presses[counter]++
			}
			a.waitDurable(presses[counter], 20*time.Second)
		}
	}
	for _, a := range agents {
		for _, id := range a.ackedIDs() {
			l.add(id, false)
		}
	}
	// The counted presses are the first of each ticket: the agent logs
	// the disposition with each press.
	for _, a := range agents {
		for _, id := range a.idsWith("disposition=counted") {
			l.add(id, true)
		}
	}
}

func publishTicket(t *testing.T, broker, counter, ticket string) {
	t.Helper()
	tk := fmt.Appendf(nil, `{"v":1,"ticket":%q,"state":"done","staff":"S%s","at":%q}`, ticket, counter, time.Now().Format(time.RFC3339))
	mqtttest.Publish(t, broker, "hallrate/v1/h1/"+counter+"/ticket", 1, true, tk)
}

// idsWith returns the ids of the presses whose log line contains part.
func (a *agentProc) idsWith(part string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var ids []string
	for _, l := range a.lines {
		if m := pressID.FindStringSubmatch(l); m != nil && strings.Contains(l, part) {
			ids = append(ids, m[1])
		}
	}
	return ids
}

// TestHallScale is the scale test of the hall (issue 6): two collectors on
// one Mosquitto, through a shared subscription, and one PostgreSQL; twenty
// terminals (three real agents, seventeen publishing records directly)
// send 2,000 ratings; collector a is killed with SIGKILL halfway and
// started again after half a second, as systemd's Restart= would. Every
// rating is stored once and every evaluation accepted by the
// e-supervision endpoint once; a key may come twice only if it was in
// collector a's crash window (answered, not yet recorded).
func TestHallScale(t *testing.T) {
	if testing.Short() {
		t.Skip("scale test skipped in -short mode")
	}
	start := time.Now()
	c := startCluster(t, 2)
	c.ep.latency = 5 * time.Millisecond
	const (
		devices, agentsN, total, agentTickets = 20, 3, 2000, 20
		// Records of the agents: a counted press per ticket and a repeat
		// on every other ticket.
		agentRecords = agentsN * (agentTickets + agentTickets/2)
	)
	dir := t.TempDir()
	agents := map[string]*agentProc{}
	var earlyCases []string
	for i := range agentsN {
		counter := fmt.Sprintf("C%02d", i)
		d := filepath.Join(dir, counter)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		agents[counter] = startAgent(t, hallAgentConfig(t, d, fmt.Sprintf("c%02d-a", i), counter, c.broker.URL()))
		for k := 1; k <= agentTickets; k++ {
			earlyCases = append(earlyCases, caseJSON(fmt.Sprintf("P-%s-A%03d", counter, k), counter, fmt.Sprintf("A%03d", k)))
		}
	}
	load := newHallLoad()
	per := (total - agentRecords) / (devices - agentsN)
	extra := (total - agentRecords) % (devices - agentsN)
	var sims []*simTerminal
	counts := map[*simTerminal]int{}
	for i := agentsN; i < devices; i++ {
		counter := fmt.Sprintf("C%02d", i)
		s := newSimTerminal(t, c.broker.URL(), fmt.Sprintf("c%02d-s", i), counter)
		n := per
		if i-agentsN < extra {
			n++
		}
		sims, counts[s] = append(sims, s), n
		early, late := simCases(s, n)
		earlyCases = append(earlyCases, early...)
		load.late = append(load.late, late...)
	}
	c.postCases(earlyCases)

	// Collector a is killed once half the ratings are stored, at a moment
	// it has evaluations in flight (leased and not recorded), so that the
	// crash window is exercised too.
	type killed struct {
		at     int
		window []string
		err    error
	}
	killDone := make(chan killed, 1)
	go func() {
		deadline := time.Now().Add(90 * time.Second)
		for c.count(`SELECT count(*) FROM rating`) < total/2 ||
			c.count(`SELECT count(*) FROM esup_evaluation WHERE state = 'pending' AND lease_owner = 'collector-a'`) < 1 {
			if time.Now().After(deadline) {
				killDone <- killed{err: fmt.Errorf("never reached %d stored ratings with evaluations in flight", total/2)}
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		var k killed
		k.err = c.cols[0].kill9(func() {
			k.at = c.count(`SELECT count(*) FROM rating`)
			k.window = c.inFlight("collector-a")
		})
		killDone <- k
	}()

	errs := make(chan error, len(sims))
	for _, s := range sims {
		go func() { errs <- load.simulate(s, counts[s], 25*time.Millisecond) }()
	}
	rateWithAgents(t, load, c.broker.URL(), agents, agentTickets)
	for range sims {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	k := <-killDone
	if k.err != nil {
		t.Fatalf("kill collector a: %v\n%s", k.err, c.logs())
	}
	c.postCases(load.late)
	if len(load.ratings) != total {
		t.Fatalf("published %d records, want %d", len(load.ratings), total)
	}

	c.waitFor("every rating stored and every evaluation delivered", 90*time.Second, func() (bool, string) {
		stored := c.count(`SELECT count(*) FROM rating`)
		delivered := c.count(`SELECT count(*) FROM esup_evaluation WHERE state = 'delivered'`)
		keys := c.ep.distinct()
		return stored == total && delivered == len(load.evals) && keys == len(load.evals),
			fmt.Sprintf("stored %d of %d, delivered %d and endpoint keys %d of %d", stored, total, delivered, keys, len(load.evals))
	})
	for _, s := range c.cols {
		s.stop()
	}
	window := map[string]bool{}
	for _, id := range k.window {
		window[id] = true
	}
	lost, dups := c.verdict(load.ratings, load.evals, window)
	for _, s := range c.cols {
		if e := s.selfExits(); len(e) > 0 {
			t.Errorf("%s exited by itself: %v", s.name, e)
		}
	}
	fmt.Printf("hall scale: %d terminals (%d real agents), %d ratings, %d evaluations; collector-a kill -9 at %d stored, "+
		"restarted after %s; stored %d (lost %d); stored by a %d, by b %d; endpoint keys %d, duplicates %d "+
		"(crash window held %d); %.1fs\n",
		devices, agentsN, total, len(load.evals), k.at, c.cols[0].delay, c.count(`SELECT count(*) FROM rating`), lost,
		c.cols[0].stored.Load(), c.cols[1].stored.Load(), c.ep.distinct(), dups, len(k.window), time.Since(start).Seconds())
}
