package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hallrate/hallrate/internal/mqtttest"
	"github.com/hallrate/hallrate/record"
)

// buildCollector builds the hallrate-collector binary once per test.
func buildCollector(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hallrate-collector")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/hallrate/hallrate/cmd/hallrate-collector").CombinedOutput()
	if err != nil {
		t.Fatalf("build collector: %v\n%s", err, out)
	}
	return bin
}

// collectorProc is a running hallrate-collector binary.
type collectorProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	log  bytes.Buffer
}

func startCollectorBin(t *testing.T, bin, config string) *collectorProc {
	t.Helper()
	c := &collectorProc{t: t, cmd: exec.Command(bin, "run", "--config", config), done: make(chan struct{})}
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.cmd.Stdout = io.Discard
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			c.mu.Lock()
			c.log.WriteString(sc.Text() + "\n")
			c.mu.Unlock()
		}
		_ = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(c.kill)
	return c
}

func (c *collectorProc) kill() {
	_ = c.cmd.Process.Kill()
	<-c.done
}

func (c *collectorProc) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.log.String()
	if len(s) > 6000 {
		s = "...\n" + s[len(s)-6000:]
	}
	return s
}

// esupEndpoint is the e-supervision system as the test runs it: it fails
// its first answers, can be taken down and brought back on its port, and
// counts what it accepted per Idempotency-Key.
type esupEndpoint struct {
	addr string
	mu   sync.Mutex
	srv  *http.Server
	fail int
	// accepted counts 2xx answers per key; bodies keeps the last body.
	accepted map[string]int
	bodies   map[string]map[string]any
	changed  chan struct{}
}

func (e *esupEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fail > 0 {
		e.fail--
		w.WriteHeader([]int{http.StatusServiceUnavailable, http.StatusTooManyRequests}[e.fail%2])
		return
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	e.accepted[key]++
	e.bodies[key] = m
	close(e.changed)
	e.changed = make(chan struct{})
	io.WriteString(w, `{"custom":{"code":"1"}}`)
}

func (e *esupEndpoint) up(t *testing.T) {
	t.Helper()
	var l net.Listener
	var err error
	for range 100 { // the port may linger briefly after down
		if l, err = net.Listen("tcp", e.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: e}
	e.mu.Lock()
	e.srv = srv
	e.mu.Unlock()
	go srv.Serve(l)
}

// down stops listening after the answers in progress are written: an
// answer the endpoint counted always reaches the collector.
func (e *esupEndpoint) down(t *testing.T) {
	e.mu.Lock()
	srv := e.srv
	e.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// waitKeys waits until n distinct keys were accepted.
func (e *esupEndpoint) waitKeys(t *testing.T, n int, timeout time.Duration, what func() string) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		e.mu.Lock()
		have, ch := len(e.accepted), e.changed
		e.mu.Unlock()
		if have >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("e-supervision endpoint accepted %d evaluations, want %d\n%s", have, n, what())
		}
	}
}

func hallAgentConfig(t *testing.T, dir, id, counter, broker string) string {
	t.Helper()
	path := filepath.Join(dir, "agent.toml")
	conf := fmt.Sprintf(`[device]
id = %q
hall = "h1"
counter = %q
driver = "sim"

[mqtt]
broker = %q
topic_prefix = "hallrate/v1"
keepalive = "2s"

[buffer]
path = %q
max_records = 100000

[binding]
rating_window = "30s"
`, id, counter, broker, filepath.Join(dir, "outbox.db"))
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func httpDo(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitHTTP polls url until it answers want, with a deadline.
func waitHTTP(t *testing.T, url string, want int, what func() string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if code, _ := httpDo(t, "GET", url, ""); code == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not answer %d within 20s:\n%s", url, want, what())
}

// waitCount polls url until its answer holds part n times.
func waitCount(t *testing.T, url, part string, n int, what func() string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, body := httpDo(t, "GET", url, "")
		if strings.Count(body, part) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: want %d of %q within 20s, have:\n%s\n%s", url, n, part, body, what())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func caseJSON(projectNo, counter, ticket string) string {
	// The service day is the hall's date of acceptedAt: the test's hall
	// keeps UTC, and the case is accepted the moment it is posted, so
	// that case and rating fall on one day.
	now := time.Now().UTC()
	return fmt.Sprintf(`{"projectNo":%q,"taskCode":"116200000000000000","taskName":"business licence","deptCode":"620100-SJ",
		"hall":"h1","counter":%q,"ticket":%q,"staff":"S%s","acceptedAt":%q,"finishedAt":%q}`,
		projectNo, counter, ticket, counter, now.Format(time.RFC3339), now.Format(time.RFC3339))
}

// TestHallEndToEnd: real agents rate tickets; cases arrive before and after
// their ratings; the e-supervision endpoint fails its first answers and is
// down for a while; the collector is killed mid-queue and started again.
// Every case gets exactly one evaluation, with the national fields.
func TestHallEndToEnd(t *testing.T) {
	broker := mqtttest.StartMosquitto(t, "")
	bin := buildCollector(t)
	dir := t.TempDir()
	ep := &esupEndpoint{addr: fmt.Sprintf("127.0.0.1:%d", mqtttest.FreePort(t)), fail: 3,
		accepted: map[string]int{}, bodies: map[string]map[string]any{}, changed: make(chan struct{})}
	conf, apiAddr := hallConf{ClientID: "collector-e2e", Broker: broker.URL(), Esup: ep.esupConf() + `
timeout = "4s"
lease = "5s"`}.write(t, dir)
	api := "http://" + apiAddr

	c := startCollectorBin(t, bin, conf)
	waitHTTP(t, api+"/healthz", 200, c.String)

	// Cases of W05 arrive before the ratings.
	code, body := httpDo(t, "POST", api+"/api/v1/cases", "["+caseJSON("P-W05-1", "W05", "A001")+","+caseJSON("P-W05-2", "W05", "A002")+"]")
	if code != 200 {
		t.Fatalf("post cases: %d %s", code, body)
	}
	// A bad case changes nothing and names its field.
	code, body = httpDo(t, "POST", api+"/api/v1/cases", `[{"projectNo":"X","hall":"h1","counter":"W05"}]`)
	if code != 400 || !strings.Contains(body, `"field": "ticket"`) {
		t.Fatalf("bad case: %d %s", code, body)
	}

	agents := map[string]*agentProc{}
	for _, counter := range []string{"W05", "W06"} {
		d := filepath.Join(dir, counter)
		os.MkdirAll(d, 0o755)
		agents[counter] = startAgent(t, hallAgentConfig(t, d, strings.ToLower(counter)+"-a", counter, broker.URL()))
	}
	ep.up(t)
	// Each counter serves two tickets; each gets one press. The second
	// W06 press is a 差评 (button 4 = satisfaction 2).
	for i, ticket := range []string{"A001", "A002"} {
		for counter, a := range agents {
			tk, _ := json.Marshal(record.Ticket{V: 1, Ticket: ticket, State: record.Done, Staff: "T" + counter, At: time.Now().Format(time.RFC3339)})
			mqtttest.Publish(t, broker.URL(), "hallrate/v1/h1/"+counter+"/ticket", 1, true, tk)
			a.waitLog(1, 20*time.Second, "msg=ticket ", "ticket="+ticket+" ")
			button := 1
			if counter == "W06" && i == 1 {
				button = 4
			}
			a.press(button)
			a.waitDurable(i+1, 20*time.Second)
		}
	}
	// The W05 evaluations go out after the first failures.
	ep.waitKeys(t, 2, 30*time.Second, c.String)
	waitCount(t, api+"/api/v1/evaluations?state=delivered", `"state": "delivered"`, 2, c.String)

	// The endpoint goes down; the W06 cases arrive after their ratings,
	// so their evaluations queue up; the collector is killed mid-queue.
	ep.down(t)
	waitCount(t, api+"/api/v1/ratings?join_state=waiting", `"join_state": "waiting"`, 2, c.String)
	code, body = httpDo(t, "POST", api+"/api/v1/cases", "["+caseJSON("P-W06-1", "W06", "A001")+","+caseJSON("P-W06-2", "W06", "A002")+"]")
	if code != 200 {
		t.Fatalf("post cases: %d %s", code, body)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, b := httpDo(t, "GET", api+"/api/v1/backlog", "")
		var bl struct {
			Undelivered int `json:"undelivered"`
		}
		json.Unmarshal([]byte(b), &bl)
		if bl.Undelivered == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backlog never reached 2: %s\n%s", b, c.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, metrics := httpDo(t, "GET", api+"/metrics", "")
	if !strings.Contains(metrics, "hallrate_collector_evaluations_undelivered 2") ||
		!strings.Contains(metrics, "hallrate_collector_evaluations_oldest_undelivered_age_seconds") {
		t.Fatalf("metrics lack the backlog:\n%s", metrics)
	}
	c.kill()
	c = startCollectorBin(t, bin, conf)
	waitHTTP(t, api+"/healthz", 200, c.String)
	ep.up(t)
	ep.waitKeys(t, 4, 30*time.Second, c.String)

	// Exactly one evaluation per case, each accepted once, national fields.
	ep.mu.Lock()
	defer ep.mu.Unlock()
	byProject := map[string]map[string]any{}
	for key, n := range ep.accepted {
		if n != 1 {
			t.Errorf("evaluation %s accepted %d times", key, n)
		}
		byProject[ep.bodies[key]["projectNo"].(string)] = ep.bodies[key]
	}
	for _, p := range []string{"P-W05-1", "P-W05-2", "P-W06-1", "P-W06-2"} {
		e := byProject[p]
		if e == nil {
			t.Errorf("no evaluation of %s", p)
			continue
		}
		for _, f := range []string{"v", "ratingId", "taskCode", "taskName", "deptCode", "areaCode", "proManager", "pf",
			"satisfaction", "assessTime", "assessNumber", "hall", "counter", "ticket", "device", "verified"} {
			if _, ok := e[f]; !ok {
				t.Errorf("%s lacks %s: %v", p, f, e)
			}
		}
		if e["pf"] != "5" || e["areaCode"] != "620100" || e["assessNumber"] != 1.0 || e["proManager"] != "S"+e["counter"].(string) {
			t.Errorf("%s: %v", p, e)
		}
	}
	if byProject["P-W06-2"]["satisfaction"] != "2" || byProject["P-W05-1"]["satisfaction"] != "5" {
		t.Errorf("satisfaction codes: %v %v", byProject["P-W06-2"], byProject["P-W05-1"])
	}
	_, fu := httpDo(t, "GET", api+"/api/v1/followups?state=open", "")
	if !strings.Contains(fu, `"counter": "W06"`) || !strings.Contains(fu, `"satisfaction": 2`) {
		t.Errorf("no open follow-up of the 差评: %s", fu)
	}
	_, rep := httpDo(t, "GET", api+"/api/v1/report?month="+time.Now().UTC().Format("2006-01"), "")
	if !strings.Contains(rep, `"rated": 4`) {
		t.Errorf("report: %s", rep)
	}
}
