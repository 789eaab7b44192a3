package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hallrate/hallrate/hall/report"
	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/internal/testenv"
	"github.com/hallrate/hallrate/record"
)

// guarded is an API without a token file (the default: changes from
// loopback only) on a SQLite store.
type guarded struct {
	t   *testing.T
	db  *store.DB
	srv *httptest.Server
}

func newGuarded(t *testing.T, hosts ...string) *guarded {
	t.Helper()
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "c.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	now := time.Date(2026, 11, 24, 16, 0, 0, 0, loc)
	s := New(Config{Store: db, Hall: "h1", Location: loc, Hosts: hosts, Points: report.DefaultPoints(),
		Clock: testenv.ClockFunc(func() time.Time { return now })})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &guarded{t: t, db: db, srv: srv}
}

func (g *guarded) do(method, path string, hdr map[string]string, body string) (*http.Response, string) {
	g.t.Helper()
	req, err := http.NewRequest(method, g.srv.URL+path, strings.NewReader(body))
	if err != nil {
		g.t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (g *guarded) cases() int64 {
	g.t.Helper()
	n, err := g.db.CountCases(context.Background())
	if err != nil {
		g.t.Fatal(err)
	}
	return n
}

const oneCase = `{"projectNo":"P1","hall":"h1","counter":"W01","ticket":"A001","staff":"S1"}`

func TestGuardRefusesRequestsFromElsewhere(t *testing.T) {
	g := newGuarded(t, "hall-screen.lan", "collector.example:8443")
	host := strings.TrimPrefix(g.srv.URL, "http://")
	_, port, _ := strings.Cut(host, ":")
	js := map[string]string{"Content-Type": "application/json"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, c := range []struct {
		name   string
		method string
		hdr    map[string]string
		want   int
	}{
		{"text/plain form", "POST", with("Content-Type", "text/plain"), http.StatusUnsupportedMediaType},
		{"urlencoded form", "POST", with("Content-Type", "application/x-www-form-urlencoded"), http.StatusUnsupportedMediaType},
		{"multipart form", "POST", with("Content-Type", "multipart/form-data; boundary=x"), http.StatusUnsupportedMediaType},
		{"no content type", "POST", nil, http.StatusUnsupportedMediaType},
		{"cross origin", "POST", with("Content-Type", "application/json", "Origin", "http://evil.example"), http.StatusForbidden},
		{"null origin", "POST", with("Content-Type", "application/json", "Origin", "null"), http.StatusForbidden},
		{"other port", "POST", with("Content-Type", "application/json", "Origin", "http://127.0.0.1:1"), http.StatusForbidden},
		{"rebound name", "POST", with("Content-Type", "application/json", "Host", "evil.example:"+port), http.StatusMisdirectedRequest},
		{"rebound name, same origin", "POST", with("Content-Type", "application/json", "Host", "evil.example:"+port, "Origin", "http://evil.example:"+port), http.StatusMisdirectedRequest},
		{"configured name, other port", "POST", with("Content-Type", "application/json", "Host", "collector.example:"+port), http.StatusMisdirectedRequest},
		{"DELETE text/plain", "DELETE", with("Content-Type", "text/plain"), http.StatusUnsupportedMediaType},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, body := g.do(c.method, "/api/v1/cases", c.hdr, oneCase)
			if resp.StatusCode != c.want {
				t.Fatalf("%d %s, want %d", resp.StatusCode, body, c.want)
			}
			if n := g.cases(); n != 0 {
				t.Fatalf("%d cases stored", n)
			}
		})
	}
	// A rebound name cannot read either.
	if resp, body := g.do("GET", "/api/v1/ratings", with("Host", "evil.example:"+port), ""); resp.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("GET with a rebound Host: %d %s", resp.StatusCode, body)
	}
	for _, h := range []map[string]string{
		with("Content-Type", "application/json; charset=utf-8", "Origin", "http://"+host),
		with("Content-Type", "application/json", "Host", "localhost:"+port, "Origin", "http://localhost:"+port),
		with("Content-Type", "application/json", "Host", "hall-screen.lan:"+port),
		js,
	} {
		resp, body := g.do("POST", "/api/v1/cases", h, oneCase)
		if resp.StatusCode != 200 {
			t.Fatalf("%v: %d %s", h, resp.StatusCode, body)
		}
		if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("Content-Security-Policy") != "frame-ancestors 'none'" {
			t.Fatalf("framing headers: %v", resp.Header)
		}
	}
	if n := g.cases(); n != 1 {
		t.Fatalf("%d cases stored, want 1", n)
	}
	// Routes added by others are guarded too: the guard wraps the router.
	resp, body := g.do("POST", "/api/v1/followups/1/close", with("Content-Type", "text/plain"), `{"note":"x"}`)
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("close with text/plain: %d %s", resp.StatusCode, body)
	}
	resp, body = g.do("POST", "/api/v1/evaluations/x/retry", nil, "")
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("retry without a type: %d %s", resp.StatusCode, body)
	}
}

func TestCasesAreInsertedAndChangedOnlyByAnAuditedUpdate(t *testing.T) {
	g := newGuarded(t)
	js := map[string]string{"Content-Type": "application/json"}
	if resp, body := g.do("POST", "/api/v1/cases", js, oneCase); resp.StatusCode != 200 {
		t.Fatalf("first post: %d %s", resp.StatusCode, body)
	}
	// The same case again is harmless.
	if resp, body := g.do("POST", "/api/v1/cases", js, "["+oneCase+"]"); resp.StatusCode != 200 {
		t.Fatalf("same case again: %d %s", resp.StatusCode, body)
	}
	changed := strings.Replace(oneCase, `"S1"`, `"S9"`, 1)
	other := `{"projectNo":"P2","hall":"h1","counter":"W01","ticket":"A002"}`
	resp, body := g.do("POST", "/api/v1/cases", js, "["+other+","+changed+"]")
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "case P1 ") {
		t.Fatalf("other content: %d %s, want 409 naming P1", resp.StatusCode, body)
	}
	if n := g.cases(); n != 1 {
		t.Fatalf("%d cases after a refused batch, want 1 (nothing of it stored)", n)
	}
	if resp, body := g.do("PUT", "/api/v1/cases/P1", js, `{"projectNo":"P2","hall":"h1","counter":"W01","ticket":"A001"}`); resp.StatusCode != 400 {
		t.Fatalf("PUT of another projectNo: %d %s", resp.StatusCode, body)
	}
	if resp, body := g.do("PUT", "/api/v1/cases/P7", js, `{"projectNo":"P7","hall":"h1","counter":"W01","ticket":"A001"}`); resp.StatusCode != 404 {
		t.Fatalf("PUT of an unknown case: %d %s", resp.StatusCode, body)
	}
	if resp, body := g.do("PUT", "/api/v1/cases/P1", map[string]string{"Content-Type": "text/plain"}, changed); resp.StatusCode != 415 {
		t.Fatalf("PUT as text/plain: %d %s", resp.StatusCode, body)
	}
	if resp, body := g.do("PUT", "/api/v1/cases/P1", js, changed); resp.StatusCode != 200 {
		t.Fatalf("PUT: %d %s", resp.StatusCode, body)
	}
	resp, body = g.do("GET", "/api/v1/cases/P1/changes", nil, "")
	var got struct{ Changes []store.CaseChange }
	if err := json.Unmarshal([]byte(body), &got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("changes: %d %s %v", resp.StatusCode, body, err)
	}
	if len(got.Changes) != 1 {
		t.Fatalf("changes: %s", body)
	}
	ch := got.Changes[0]
	if ch.Old.Staff != "S1" || ch.New.Staff != "S9" || !strings.HasPrefix(ch.By, "api 127.0.0.1:") || ch.ChangedMS == 0 {
		t.Fatalf("change recorded as %+v", ch)
	}
}

func TestCaseBodiesAreBounded(t *testing.T) {
	g := newGuarded(t)
	js := map[string]string{"Content-Type": "application/json"}
	// Empty objects fail at the first one, however many follow.
	body := "[" + strings.Repeat("{},", 1<<20) + "{}]"
	resp, answer := g.do("POST", "/api/v1/cases", js, body)
	if resp.StatusCode != 400 || !strings.Contains(answer, "projectNo: required") {
		t.Fatalf("empty objects: %d %s", resp.StatusCode, answer)
	}
	// Past MaxCases: refused at the first one too many.
	many := "[" + strings.Repeat(oneCase+",", 100000) + oneCase + "]"
	resp, answer = g.do("POST", "/api/v1/cases", js, many)
	if resp.StatusCode != 400 || !strings.Contains(answer, "more than 100000 cases") {
		t.Fatalf("too many cases: %d %.200s", resp.StatusCode, answer)
	}
	// Past maxBody: refused as too large.
	big := `[{"projectNo":"` + strings.Repeat("x", maxBody) + `"}]`
	resp, answer = g.do("POST", "/api/v1/cases", js, big)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("body past the limit: %d %.200s", resp.StatusCode, answer)
	}
	if n := g.cases(); n != 0 {
		t.Fatalf("%d cases stored", n)
	}
}

func TestCasesCSVOverTheAPI(t *testing.T) {
	g := newGuarded(t)
	gbk := "projectNo,hall,counter,ticket,staffName\nP1,h1,W01,A001,\xd5\xc5\xc8\xfd\n" // 张三 in GBK
	resp, body := g.do("POST", "/api/v1/cases", map[string]string{"Content-Type": "text/csv"}, gbk)
	if resp.StatusCode != 400 || !strings.Contains(body, "case 2: staffName: not UTF-8") {
		t.Fatalf("GBK as UTF-8: %d %s", resp.StatusCode, body)
	}
	resp, body = g.do("POST", "/api/v1/cases", map[string]string{"Content-Type": "text/csv; charset=gbk"}, gbk)
	if resp.StatusCode != 200 {
		t.Fatalf("GBK: %d %s", resp.StatusCode, body)
	}
	var name string
	err := g.db.Join(context.Background(), func(j *store.JoinTx) error {
		c, _, err := j.CaseByNo("P1")
		name = c.StaffName
		return err
	})
	if err != nil || name != "张三" {
		t.Fatalf("staffName stored as %q, %v", name, err)
	}
	// CSV is for the cases import only.
	resp, body = g.do("POST", "/api/v1/followups/1/close", map[string]string{"Content-Type": "text/csv"}, "note\nx\n")
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("CSV elsewhere: %d %s", resp.StatusCode, body)
	}
}

func TestReportCSVOverTheAPIEscapesFormulas(t *testing.T) {
	f := newFixture(t)
	f.month()
	f.press("W04", "W04", `=HYPERLINK("http://x.example","y")`, 1, record.Counted, "2026-11-24 12:00", true)
	f.press("W04", "W04", "@SUM(A1:A9)", 1, record.Counted, "2026-11-24 12:01", true)
	code, body := f.get("/api/v1/report?month=2026-11&format=csv")
	if code != 200 {
		t.Fatalf("report: %d %s", code, body)
	}
	for _, want := range []string{`,"'=HYPERLINK(""http://x.example"",""y"")",`, ",'@SUM(A1:A9),"} {
		if !strings.Contains(body, want) {
			t.Errorf("no %s in\n%s", want, body)
		}
	}
	if strings.Contains(body, ",=") || strings.Contains(body, ",@") || strings.Contains(body, `,"=`) {
		t.Errorf("a cell starts with a formula:\n%s", body)
	}
}

func TestSmallBodiesElsewhere(t *testing.T) {
	loc, _ := time.LoadLocation("Asia/Shanghai")
	s := New(Config{Location: loc, Points: report.DefaultPoints()})
	// A route added later, by anyone, that reads its body whole.
	s.Mux().HandleFunc("POST /api/v1/later", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		fmt.Fprint(w, len(b))
	})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	for _, c := range []struct{ size, want int }{{1 << 20, 200}, {1<<20 + 1, 413}} {
		resp, err := http.Post(srv.URL+"/api/v1/later", "application/json", strings.NewReader(strings.Repeat("x", c.size)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%d bytes: %d, want %d", c.size, resp.StatusCode, c.want)
		}
	}
}

func TestRefusalsDoNotFloodTheLog(t *testing.T) {
	var logged strings.Builder
	var mu sync.Mutex
	now := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	s := New(Config{Location: time.UTC, Points: report.DefaultPoints(), Clock: testenv.ClockFunc(func() time.Time { mu.Lock(); defer mu.Unlock(); return now }),
		Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &logged, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	post := func() {
		resp, err := http.Post(srv.URL+"/api/v1/cases", "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	for range 50 {
		post()
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	post()
	mu.Lock()
	defer mu.Unlock()
	lines := strings.Split(strings.TrimSpace(logged.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "refused_since_last=1") || !strings.Contains(lines[1], "refused_since_last=50") {
		t.Fatalf("log of 51 refusals:\n%s", logged.String())
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
