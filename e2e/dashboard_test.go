package e2e

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hallrate/hallrate/hall/ingest"
	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/hall/trust"
	"github.com/hallrate/hallrate/internal/mqtttest"
	"github.com/hallrate/hallrate/record"
)

// evilStaff is a staff name with HTML in it: the page must show it as text
// and never run it.
const evilStaff = `<img src=x onerror="window.__xss=1">`

// browser starts headless Chromium for a test, or skips the test when
// there is none (unless HALLRATE_REQUIRE_BROWSER is set).
func browser(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, p := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if found, err := exec.LookPath(p); err == nil {
			path = found
			break
		}
	}
	if path == "" {
		if os.Getenv("HALLRATE_REQUIRE_BROWSER") != "" {
			t.Fatal("HALLRATE_REQUIRE_BROWSER is set and chromium is not installed (apt-get install chromium fonts-noto-cjk)")
		}
		t.Skip("chromium not installed (apt-get install chromium fonts-noto-cjk)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox, // as root, Chromium refuses to start with its sandbox
		chromedp.DisableGPU,
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("lang", "zh-CN"),
		chromedp.WindowSize(1920, 1080),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// within runs actions with a deadline.
func within(t *testing.T, ctx context.Context, d time.Duration, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Do(c, actions...); err != nil {
		t.Fatalf("%s (within %s): %v", what, d, err)
	}
}

// value runs one action that returns a value, with a deadline.
func value[T any](t *testing.T, ctx context.Context, d time.Duration, what string, a chromedp.Action[T]) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	v, err := chromedp.Run(c, a)
	if err != nil {
		t.Fatalf("%s (within %s): %v", what, d, err)
	}
	return v
}

// seedMonth stores a month of earlier ratings for counters W01 to W04, so
// that the charts and the report have something to show. W04 does worst.
func seedMonth(t *testing.T, dsn string, loc *time.Location, now time.Time) {
	t.Helper()
	seedMonthSigned(t, dsn, loc, now, nil)
}

// seedMonthSigned is seedMonth with the records of each device in keys
// signed and chained, as its terminal would have.
func seedMonthSigned(t *testing.T, dsn string, loc *time.Location, now time.Time, keys map[string]ed25519.PrivateKey) {
	t.Helper()
	db, err := store.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var inv *trust.Inventory
	if len(keys) > 0 {
		var lines strings.Builder
		for dev, key := range keys {
			fmt.Fprintf(&lines, "%s h1 %s %s\n", dev, strings.ToUpper(strings.TrimSuffix(dev, "-a")), record.EncodePublicKey(key.Public().(ed25519.PublicKey)))
		}
		if inv, err = trust.ParseInventory(strings.NewReader(lines.String())); err != nil {
			t.Fatal(err)
		}
	}
	in, err := ingest.New(ingest.Config{Prefix: "hallrate/v1", Store: db, Location: loc, Keys: inv,
		DueDate: func(p time.Time) string { return p.AddDate(0, 0, 9).Format(time.DateOnly) }})
	if err != nil {
		t.Fatal(err)
	}
	staff := map[string]string{"W01": "张敏", "W02": "李强", "W03": "王芳", "W04": "赵磊"}
	// Chances of levels 5, 4, 3, 2 per counter, in percent.
	odds := map[string][4]int{"W01": {70, 20, 7, 3}, "W02": {55, 30, 10, 5}, "W03": {60, 25, 12, 3}, "W04": {35, 30, 22, 13}}
	rng := rand.New(rand.NewPCG(7, 11))
	first := time.Date(now.Year(), now.Month(), 1, 9, 0, 0, 0, loc)
	var msgs []ingest.Message
	seq := map[string]uint64{}
	prev := map[string]string{}
	for day := first; day.Before(now); day = day.AddDate(0, 0, 1) {
		for _, c := range []string{"W01", "W02", "W03", "W04"} {
			if c != "W04" && day.YearDay() == now.YearDay() {
				continue // today belongs to the live terminals
			}
			for i := range 6 + rng.IntN(8) {
				at := day.Add(time.Duration(i*40+rng.IntN(30)) * time.Minute)
				if at.After(now) {
					break
				}
				r, sat := rng.IntN(100), 2
				for j, o := range odds[c] {
					if r < o {
						sat = 5 - j
						break
					}
					r -= o
				}
				dev := strings.ToLower(c) + "-a"
				seq[dev]++
				p := record.Press{V: 1, ID: record.PressID(dev, "seed", seq[dev]), Device: dev, Hall: "h1", Counter: c,
					Epoch: "seed", Seq: seq[dev], Button: 6 - sat, Label: "b", Satisfaction: sat, Disposition: record.Counted,
					Ticket:    &record.TicketRef{ID: fmt.Sprintf("A%03d", seq[dev]%1000), State: record.Done, Staff: staff[c]},
					PressedAt: at.Format(time.RFC3339Nano), ClockSynced: true, BootID: "b", UptimeMS: 1}
				if key := keys[dev]; key != nil {
					p.Prev = prev[dev]
					if err := p.Sign(key); err != nil {
						t.Fatal(err)
					}
					prev[dev] = p.ChainHash()
				}
				b, _ := json.Marshal(p)
				msgs = append(msgs, ingest.Message{Topic: "hallrate/v1/h1/" + c + "/rating", Payload: b})
			}
		}
	}
	last := seq["w04-a"]
	st, _ := json.Marshal(record.Status{V: 1, Online: true, Device: "w04-a", Version: "0.1.0", Epoch: "seed", LastSeq: &last})
	msgs = append(msgs, ingest.Message{Topic: "hallrate/v1/h1/W04/status", Payload: st},
		ingest.Message{Topic: "hallrate/v1/h1/W04/status", Payload: record.OfflineStatus("w04-a")})
	if err := in.Handle(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	// The manager has dealt with the older 差评: a few stay open.
	fs, err := db.Followups(context.Background(), true, 10000)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range fs {
		if i < 2 {
			continue
		}
		if _, err := db.CloseFollowup(context.Background(), f.ID, "已整改", time.Now().UnixMilli()); err != nil {
			t.Fatal(err)
		}
	}
}

// openFollowup waits until the counter's ticket has an open follow-up and
// returns its id.
func openFollowup(t *testing.T, url, counter, ticket string) int64 {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, body := httpDo(t, "GET", url+"/api/v1/followups?state=open", "")
		var fs struct {
			Followups []struct {
				ID              int64
				Counter, Ticket string
			}
		}
		json.Unmarshal([]byte(body), &fs)
		for _, f := range fs.Followups {
			if f.Counter == counter && f.Ticket == ticket {
				return f.ID
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no open follow-up of %s %s: %s", counter, ticket, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDashboardInBrowser drives the hall's screen in headless Chromium
// against the real collector and real agents: a press shows on its tile
// within 2 s, a killed agent's tile turns offline through its Last Will,
// a follow-up is refused without the token and closed with it, and a
// staff name with HTML in it shows as text. It writes no screenshots: the
// pictures in docs/ come from TestHallAsDocumented, with realistic data.
func TestDashboardInBrowser(t *testing.T) {
	ctx := browser(t)
	broker := mqtttest.StartMosquitto(t, "")
	bin := buildCollector(t)
	dir := t.TempDir()
	loc, _ := time.LoadLocation("Asia/Shanghai")
	dsn := "sqlite://" + filepath.Join(dir, "collector.db")
	seedMonth(t, dsn, loc, time.Now().In(loc))
	token := "dashboard-test-token-7f3a"
	os.WriteFile(filepath.Join(dir, "token"), []byte(token+"\n"), 0o600)
	conf, apiAddr := hallConf{ClientID: "collector-dashboard", Broker: broker.URL(), TZ: "Asia/Shanghai", DSN: dsn, Esup: `sink = "none"`,
		HTTP: fmt.Sprintf("token_file = %q", filepath.Join(dir, "token"))}.write(t, dir)
	url := "http://" + apiAddr
	c := startCollectorBin(t, bin, conf)
	waitHTTP(t, url+"/healthz", 200, c.String)

	staff := map[string]string{"W01": "张敏", "W02": "李强", "W03": evilStaff}
	agents := map[string]*agentProc{}
	for _, counter := range []string{"W01", "W02", "W03"} {
		d := filepath.Join(dir, counter)
		os.MkdirAll(d, 0o755)
		agents[counter] = startAgent(t, hallAgentConfig(t, d, strings.ToLower(counter)+"-a", counter, broker.URL()))
	}
	ticket := func(counter, id string, state record.TicketState) {
		tk, _ := json.Marshal(record.Ticket{V: 1, Ticket: id, State: state, Staff: staff[counter], Item: "营业执照", At: time.Now().Format(time.RFC3339)})
		mqtttest.Publish(t, broker.URL(), "hallrate/v1/h1/"+counter+"/ticket", 1, true, tk)
		agents[counter].waitLog(1, 20*time.Second, "msg=ticket ", "ticket="+id+" ")
	}

	within(t, ctx, 20*time.Second, "open the live view",
		chromedp.EmulateViewport(1920, 1080),
		chromedp.Navigate(url+"/"),
		chromedp.WaitVisible(chromedp.CSS(`body[data-stream="open"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#tile-W01[data-state="on"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#tile-W03[data-state="on"]`)),
	)

	// A press on W01 reaches its tile within 2 s.
	ticket("W01", "A101", record.Done)
	start := time.Now()
	agents["W01"].press(1)
	within(t, ctx, 2*time.Second, "W01 tile shows the press",
		chromedp.WaitVisible(chromedp.CSS(`#tile-W01[data-rated="1"] .last.l5`)))
	t.Logf("press to tile: %s", time.Since(start).Round(time.Millisecond))
	tileText := value(t, ctx, 5*time.Second, "read W01", chromedp.Text(chromedp.CSS(`#tile-W01`)))
	for _, s := range []string{"非常满意", "A101", "张敏", "好评率", "100.0%"} {
		if !strings.Contains(tileText, s) {
			t.Errorf("W01 tile lacks %q: %s", s, tileText)
		}
	}

	// A 差评 on W02 opens a follow-up; W03's staff name is HTML.
	ticket("W02", "A102", record.Done)
	agents["W02"].press(4)
	ticket("W03", "A103", record.Serving)
	agents["W03"].press(2)
	within(t, ctx, 5*time.Second, "W02 and W03 tiles",
		chromedp.WaitVisible(chromedp.CSS(`#tile-W02[data-rated="1"] .last.l2`)),
		chromedp.WaitVisible(chromedp.CSS(`#tile-W03[data-rated="1"] .last.l4`)),
	)
	row := fmt.Sprintf("#fu-%d", openFollowup(t, url, "W02", "A102"))
	within(t, ctx, 5*time.Second, "the follow-up on the page", chromedp.WaitVisible(chromedp.CSS(row)))
	evil := value(t, ctx, 5*time.Second, "read W03's staff", chromedp.Text(chromedp.CSS(`#tile-W03 .staff`)))
	xss := value(t, ctx, 5*time.Second, "look for the staff's HTML",
		chromedp.Evaluate[bool](`window.__xss === 1 || document.querySelector('#tile-W03 img') !== null`))
	if evil != evilStaff || xss {
		t.Errorf("staff name: text %q, rendered as HTML %v", evil, xss)
	}

	// Closing the follow-up without the token is refused.
	within(t, ctx, 5*time.Second, "close without token",
		chromedp.SendKeys(chromedp.CSS(row+" form.close input"), "已回访群众"),
		chromedp.Click(chromedp.CSS(row+" form.close button")),
		chromedp.WaitVisible(chromedp.CSS(`#action-msg.err`)))
	refusal := value(t, ctx, 5*time.Second, "read the refusal", chromedp.Text(chromedp.CSS(`#action-msg`)))
	if !strings.Contains(refusal, "令牌") {
		t.Errorf("refusal says %q", refusal)
	}
	if code, body := httpDo(t, "GET", url+"/api/v1/followups?state=open", ""); code != 200 || !strings.Contains(body, `"counter": "W02"`) {
		t.Fatalf("the follow-up was closed without the token: %d %s", code, body)
	}
	// With the token it closes and leaves the open list.
	within(t, ctx, 5*time.Second, "close with token",
		chromedp.SendKeys(chromedp.CSS(`#token`), token),
		chromedp.Click(chromedp.CSS(`#token-form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`body[data-token="set"]`)),
		chromedp.Click(chromedp.CSS(row+" form.close button")),
		chromedp.WaitNotPresent(chromedp.CSS(row)))
	if _, body := httpDo(t, "GET", url+"/api/v1/followups?state=closed", ""); !strings.Contains(body, "已回访群众") {
		t.Errorf("closed follow-up lacks its note: %s", body)
	}
	for _, path := range []string{"/", "/report", "/fragment/followups"} {
		if _, page := httpDo(t, "GET", url+path, ""); strings.Contains(page, token) {
			t.Errorf("%s has the token in it", path)
		}
	}

	// W01's agent dies: the broker sends its Last Will and the tile turns
	// offline.
	agents["W01"].kill()
	within(t, ctx, 15*time.Second, "W01 offline", chromedp.WaitVisible(chromedp.CSS(`#tile-W01[data-state="off"]`)))

	// The collector restarts: the page reconnects by itself.
	c.kill()
	within(t, ctx, 10*time.Second, "stream lost", chromedp.WaitVisible(chromedp.CSS(`body[data-stream="reconnecting"]`)))
	startCollectorBin(t, bin, conf)
	within(t, ctx, 20*time.Second, "stream back", chromedp.WaitVisible(chromedp.CSS(`body[data-stream="open"]`)))
	ticket("W02", "A104", record.Done)
	agents["W02"].press(2)
	within(t, ctx, 5*time.Second, "W02 after the restart", chromedp.WaitVisible(chromedp.CSS(`#tile-W02[data-rated="2"]`)))

	// The monthly report: totals and the CSV link.
	month := time.Now().In(loc).Format("2006-01")
	within(t, ctx, 10*time.Second, "monthly report",
		chromedp.Navigate(url+"/report?month="+month),
		chromedp.WaitVisible(chromedp.CSS(`#by-counter`)))
	rated := value(t, ctx, 5*time.Second, "read the total", chromedp.Text(chromedp.CSS(`#total-rated`)))
	_, js := httpDo(t, "GET", url+"/api/v1/report?month="+month, "")
	var rep struct {
		Total struct{ Rated int } `json:"total"`
	}
	json.Unmarshal([]byte(js), &rep)
	if rated != fmt.Sprint(rep.Total.Rated) || rep.Total.Rated < 4 {
		t.Errorf("report page says %s rated, the API %d", rated, rep.Total.Rated)
	}
}

// shot reports whether the test should write screenshots: only when asked,
// so that a test run leaves the tree clean.
func shot() bool { return os.Getenv("HALLRATE_SCREENSHOTS") == "1" }

func screenshot(t *testing.T, ctx context.Context, name string, full bool) {
	t.Helper()
	action := chromedp.CaptureScreenshot()
	if full {
		action = chromedp.FullScreenshot(100)
	}
	png := value(t, ctx, 20*time.Second, "screenshot "+name, action)
	path := filepath.Join("..", "docs", "screenshots", name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
}
