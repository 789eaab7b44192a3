package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/internal/mqtttest"
)

// doorsCollector is a collector binary on Mosquitto and SQLite with the
// documented default: no token file, changes from loopback only. It logs
// at debug level, where every refused request has its line.
type doorsCollector struct {
	*collectorProc
	dir, dsn, api, broker string
}

func startDoorsCollector(t *testing.T, bin string) *doorsCollector {
	t.Helper()
	m := mqtttest.StartMosquitto(t, "")
	dir := t.TempDir()
	c := &doorsCollector{dir: dir, dsn: "sqlite://" + filepath.Join(dir, "collector.db"),
		// Credentials in the URL: the collector must never log the password.
		broker: strings.Replace(m.URL(), "tcp://", "tcp://hall:hunter2-secret@", 1)}
	var conf string
	conf, c.api = hallConf{ClientID: "collector-doors", Broker: c.broker, TZ: "Asia/Shanghai", DSN: c.dsn, Esup: `sink = "none"`,
		More: "[log]\nlevel = \"debug\""}.write(t, dir)
	c.collectorProc = startCollectorBin(t, bin, conf)
	waitHTTP(t, "http://"+c.api+"/healthz", 200, c.String)
	return c
}

// cases counts the stored cases, from the database file itself.
func (c *doorsCollector) cases(t *testing.T) int64 {
	t.Helper()
	db, err := store.Open(context.Background(), c.dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n, err := db.CountCases(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitLog waits until the collector's log has n lines with every part.
func (c *doorsCollector) waitLog(t *testing.T, n int, parts ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c.mu.Lock()
		got := 0
		for _, l := range strings.Split(c.log.String(), "\n") {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(l, p)
			}
			if all {
				got++
			}
		}
		c.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d log lines with %q within 20s, want %d:\n%s", got, parts, n, c.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// curlCode runs Debian's curl, a client nobody here wrote, with args and
// returns the status code it got.
func curlCode(t *testing.T, args ...string) int {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is needed: apt-get install curl")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "curl", append([]string{"-s", "-o", "/dev/null", "-w", "%{http_code}"}, args...)...).Output()
	if err != nil {
		t.Fatalf("curl %v: %v", args, err)
	}
	code, err := strconv.Atoi(string(out))
	if err != nil {
		t.Fatalf("curl %v: %q", args, out)
	}
	return code
}

const doorCase = `{"projectNo":"D1","hall":"h1","counter":"W01","ticket":"A001","staff":"S1"}`

// TestCollectorDoorsWithCurl sends what a hostile network can send, with
// curl, to the running collector: a DNS-rebound name, forms, a foreign
// Origin, a case rewritten by a second POST. Nothing of it changes data,
// and the broker password never reaches the log.
func TestCollectorDoorsWithCurl(t *testing.T) {
	c := startDoorsCollector(t, buildCollector(t))
	_, port, _ := strings.Cut(c.api, ":")
	url := "http://" + c.api
	js := []string{"-H", "Content-Type: application/json"}
	for _, r := range []struct {
		name string
		args []string
		want int
	}{
		{"Host of another name", []string{"-H", "Host: evil.example:" + port, url + "/api/v1/ratings"}, 421},
		{"DNS rebinding, read", []string{"--resolve", "evil.example:" + port + ":127.0.0.1", "http://evil.example:" + port + "/api/v1/ratings"}, 421},
		{"DNS rebinding, write", append(append([]string{"--resolve", "evil.example:" + port + ":127.0.0.1", "-X", "POST"}, js...),
			"-H", "Origin: http://evil.example:"+port, "--data", doorCase, "http://evil.example:"+port+"/api/v1/cases"), 421},
		{"text/plain form", []string{"-H", "Content-Type: text/plain", "--data", doorCase, url + "/api/v1/cases"}, 415},
		{"urlencoded form", []string{"--data", doorCase, url + "/api/v1/cases"}, 415},
		{"foreign origin", append(append([]string{}, js...), "-H", "Origin: http://evil.example", "--data", doorCase, url+"/api/v1/cases"), 403},
		{"close a follow-up as a form", []string{"--data", `{"note":"x"}`, url + "/api/v1/followups/1/close"}, 415},
	} {
		if got := curlCode(t, r.args...); got != r.want {
			t.Errorf("%s: %d, want %d", r.name, got, r.want)
		}
	}
	if n := c.cases(t); n != 0 {
		t.Fatalf("%d cases stored by refused requests", n)
	}
	if got := curlCode(t, append(append([]string{}, js...), "-H", "Origin: "+url, "--data", doorCase, url+"/api/v1/cases")...); got != 200 {
		t.Fatalf("same-origin JSON POST: %d", got)
	}
	changed := strings.Replace(doorCase, `"S1"`, `"S9"`, 1)
	if got := curlCode(t, append(append([]string{}, js...), "--data", changed, url+"/api/v1/cases")...); got != 409 {
		t.Fatalf("POST rewriting a case: %d, want 409", got)
	}
	if got := curlCode(t, append(append([]string{"-X", "PUT"}, js...), "--data", changed, url+"/api/v1/cases/D1")...); got != 200 {
		t.Fatalf("PUT: %d", got)
	}
	if n := c.cases(t); n != 1 {
		t.Fatalf("%d cases, want 1", n)
	}
	log := c.String()
	if strings.Contains(log, "hunter2-secret") {
		t.Fatalf("the broker password is in the log:\n%s", log)
	}
	if !strings.Contains(log, "broker=tcp://127.0.0.1:") {
		t.Fatalf("the broker URL is not logged without its credentials:\n%s", log)
	}
	fi, err := os.Stat(filepath.Join(c.dir, "collector.db"))
	if err != nil || fi.Mode().Perm()&0o007 != 0 {
		t.Fatalf("database file %v, %v: others may read it", fi.Mode(), err)
	}
}

// rss returns a field of /proc/PID/status in kB: VmRSS now, VmHWM the peak.
func rss(t *testing.T, pid int, field string) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// emptyObjects is a 32 MB body "[{},{},...]" made as it is read.
type emptyObjects struct{ left int }

func (e *emptyObjects) Read(p []byte) (int, error) {
	if e.left == 0 {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && e.left > 0 {
		switch {
		case e.left == 1:
			p[n] = ']'
		case e.left%3 == 1:
			p[n] = ','
		case e.left%3 == 0:
			p[n] = '{'
		default:
			p[n] = '}'
		}
		if n == 0 && e.left == 32<<20 {
			p[n] = '['
		}
		n++
		e.left--
	}
	return n, nil
}

// TestCollectorMemoryUnder32MBBodies posts three 32 MB bodies of empty
// case objects at once to the real collector binary: its peak resident
// memory (VmHWM) stays under twice its idle RSS.
func TestCollectorMemoryUnder32MBBodies(t *testing.T) {
	c := startDoorsCollector(t, buildCollector(t))
	pid := c.cmd.Process.Pid
	idle := rss(t, pid, "VmRSS")
	before := rss(t, pid, "VmHWM")
	var wg sync.WaitGroup
	codes := make([]int, 3)
	for i := range codes {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", "http://"+c.api+"/api/v1/cases", &emptyObjects{left: 32 << 20})
			req.Header.Set("Content-Type", "application/json")
			req.ContentLength = 32 << 20
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				codes[i] = -1
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		})
	}
	wg.Wait()
	for _, code := range codes {
		if code != 400 && code != 413 {
			t.Fatalf("answers %v, want 400 (the first case lacks projectNo) or 413", codes)
		}
	}
	peak := rss(t, pid, "VmHWM")
	t.Logf("idle RSS %d kB, peak before %d kB, peak after three 32 MB bodies %d kB", idle, before, peak)
	if peak >= 2*idle {
		t.Fatalf("peak RSS %d kB is not under twice the idle %d kB", peak, idle)
	}
	if n := c.cases(t); n != 0 {
		t.Fatalf("%d cases stored", n)
	}

	// The most a request may carry: 100,000 valid cases (about 14 MB),
	// stored; and 32 MB of them, refused at the 100,001st. Cases are
	// spooled to disk, not held.
	for _, size := range []struct {
		cases int
		want  int
	}{{100000, 200}, {-1, 400}} {
		var b strings.Builder
		b.WriteString("[")
		for i := 0; size.cases < 0 && b.Len() < 32<<20 || i < size.cases; i++ {
			fmt.Fprintf(&b, `{"projectNo":"620100-2026-%09d","hall":"h1","counter":"W01","ticket":"A%d","staff":"S017","staffName":"张三","taskName":"营业执照"},`, i, i%1000)
		}
		body := strings.TrimSuffix(b.String(), ",") + "]"
		req, _ := http.NewRequest("POST", "http://"+c.api+"/api/v1/cases", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		peak := rss(t, pid, "VmHWM")
		t.Logf("%d bytes of valid cases: %d %.100s; peak RSS now %d kB", len(body), resp.StatusCode, answer, peak)
		if resp.StatusCode != size.want {
			t.Fatalf("answer %d, want %d", resp.StatusCode, size.want)
		}
		if peak >= 2*idle {
			t.Fatalf("peak RSS %d kB is not under twice the idle %d kB", peak, idle)
		}
	}
	if n := c.cases(t); n != 100000 {
		t.Fatalf("%d cases stored, want 100000", n)
	}
}

// TestCrossOriginPageChangesNothing opens a page of another origin in
// headless Chromium that tries what a hostile site can: a no-cors fetch
// closing a follow-up, a no-cors fetch posting a case as JSON, a text/plain
// form shaped as JSON, and a CORS fetch with a preflight. The collector
// (no token file: loopback clients may change data) refuses each, and no
// case is stored.
func TestCrossOriginPageChangesNothing(t *testing.T) {
	ctx := browser(t)
	c := startDoorsCollector(t, buildCollector(t))
	target := "http://" + c.api
	evil := http.NewServeMux()
	evil.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html><body>
<iframe name="sink" id="sink"></iframe>
<form id="f" method="POST" action="%[1]s/api/v1/cases" enctype="text/plain" target="sink">
<input name='{"projectNo":"EVIL2","hall":"h1","counter":"W01","ticket":"A2","x":"' value='"}'>
</form>
<script>
window.done = false;
Promise.allSettled([
  fetch("%[1]s/api/v1/followups/1/close", {method: "POST", mode: "no-cors", body: JSON.stringify({note: "closed by another site"})}),
  fetch("%[1]s/api/v1/cases", {method: "POST", mode: "no-cors", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({projectNo: "EVIL1", hall: "h1", counter: "W01", ticket: "A1"})}),
  fetch("%[1]s/api/v1/cases", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({projectNo: "EVIL3", hall: "h1", counter: "W01", ticket: "A3"})}),
]).then(function () { document.getElementById("f").submit(); window.done = true; });
</script></body></html>`, target)
	})
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: evil}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	within(t, ctx, 20*time.Second, "open the other site's page",
		chromedp.Navigate("http://"+l.Addr().String()+"/"),
		chromedp.Poll[chromedp.Void](`window.done === true`, chromedp.WithPollingTimeout(15*time.Second)),
	)
	// Three requests reach the collector and are refused for their type
	// (two no-cors fetches, the form); the CORS fetch stops at its
	// preflight, which is not a change.
	c.waitLog(t, 3, "request refused: content type", "origin=http://"+l.Addr().String())
	if n := c.cases(t); n != 0 {
		t.Fatalf("%d cases stored by another site's page", n)
	}
	if strings.Contains(c.String(), "EVIL") {
		t.Fatalf("a cross-origin body was acted on:\n%s", c.String())
	}
}

// TestSecretAndPathMistakesAreOneLine: a token or password file that
// others may read, an unknown log level, and a directory at the agent's
// buffer.path each stop the binary with one line naming the key.
func TestSecretAndPathMistakesAreOneLine(t *testing.T) {
	bin := buildCollector(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("[store]\ndsn = %q\n", "sqlite://"+filepath.Join(dir, "c.db"))
	for _, c := range []struct{ conf, key string }{
		{base + fmt.Sprintf("[http]\ntoken_file = %q\n", secret), "http.token_file"},
		{base + fmt.Sprintf("[mqtt]\npassword_file = %q\n", secret), "mqtt.password_file"},
		{base + "[log]\nlevel = \"verbose\"\n", "log.level"},
	} {
		conf := filepath.Join(dir, "collector.toml")
		if err := os.WriteFile(conf, []byte(c.conf), 0o600); err != nil {
			t.Fatal(err)
		}
		out, code := runCollector(t, bin, "run", "--config", conf)
		if code == 0 || !strings.Contains(out, c.key) || strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("%s: exit %d, output %q: want one line naming it", c.key, code, out)
		}
	}
	if out, _ := runCollector(t, bin, "run", "--config", filepath.Join(dir, "collector.toml")); strings.Contains(out, "s3cret") {
		t.Errorf("the secret is in the output: %q", out)
	}

	adir := t.TempDir()
	conf := writeConfig(t, adir, "w05-a", "tcp://127.0.0.1:1", "")
	if err := os.Mkdir(filepath.Join(adir, "outbox.db"), 0o750); err != nil {
		t.Fatal(err)
	}
	out, err := runAgent(t, "run", "--config", conf)
	if err == nil || !strings.Contains(out, "outbox.db") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("agent with a directory at buffer.path: %v, %q: want one line", err, out)
	}
	if m, _ := filepath.Glob(filepath.Join(adir, "outbox.db.corrupt-*")); len(m) != 0 {
		t.Fatalf("the directory was moved aside: %v", m)
	}
	conf = writeConfig(t, t.TempDir(), "w05-a", "tcp://127.0.0.1:1", "[log]\nlevel = \"verbose\"\n")
	if out, err := runAgent(t, "run", "--config", conf); err == nil || !strings.Contains(out, "log.level") {
		t.Fatalf("agent with log.level verbose: %v, %q", err, out)
	}
}
