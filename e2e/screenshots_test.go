package e2e

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/hallrate/hallrate/devkey"
	"github.com/hallrate/hallrate/internal/mqtttest"
	"github.com/hallrate/hallrate/record"
)

// A4 landscape is 297 mm wide; less the report's 12 mm margins on each
// side that leaves 273 mm, 1032 CSS pixels at 96 per inch.
const a4LandscapeContentPx = 1032

// TestHallAsDocumented runs the hall the README shows: a month of ratings,
// three real terminals whose keys the collector trusts, realistic staff
// names and tickets. It checks that the monthly report shows every column
// on a 1200 px screen and on A4 landscape paper, and that every tile
// shows verified records. With HALLRATE_SCREENSHOTS=1 it writes the
// pictures in docs/screenshots; the tests that inject markup never do.
func TestHallAsDocumented(t *testing.T) {
	ctx := browser(t)
	broker := mqtttest.StartMosquitto(t, "")
	bin := buildCollector(t)
	dir := t.TempDir()
	loc, _ := time.LoadLocation("Asia/Shanghai")
	dsn := "sqlite://" + filepath.Join(dir, "collector.db")

	// Every terminal's key is in the hall's keys file; the live ones (W01
	// to W03) sign with it, and so did all four through the month.
	staff := map[string]string{"W01": "张敏", "W02": "李强", "W03": "王芳"}
	var keys strings.Builder
	signers := map[string]ed25519.PrivateKey{}
	confs := map[string]string{}
	for _, counter := range []string{"W01", "W02", "W03", "W04"} {
		d := filepath.Join(dir, counter)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		id := strings.ToLower(counter) + "-a"
		key, _, err := devkey.LoadOrCreate(filepath.Join(d, "device.key"))
		if err != nil {
			t.Fatal(err)
		}
		signers[id] = key
		fmt.Fprintf(&keys, "%s h1 %s %s\n", id, counter, record.EncodePublicKey(key.Public().(ed25519.PublicKey)))
		if counter != "W04" {
			confs[counter] = hallAgentConfig(t, d, id, counter, broker.URL())
		}
	}
	seedMonthSigned(t, dsn, loc, time.Now().In(loc), signers)
	if err := os.WriteFile(filepath.Join(dir, "devices"), []byte(keys.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	conf, apiAddr := hallConf{ClientID: "collector-docs", Broker: broker.URL(), TZ: "Asia/Shanghai", DSN: dsn, Esup: `sink = "none"`,
		More: fmt.Sprintf("[trust]\nkeys_file = %q", filepath.Join(dir, "devices"))}.write(t, dir)
	url := "http://" + apiAddr
	c := startCollectorBin(t, bin, conf)
	waitHTTP(t, url+"/healthz", 200, c.String)

	agents := map[string]*agentProc{}
	for counter, path := range confs {
		agents[counter] = startAgent(t, path)
	}
	ticket := func(counter, id string, state record.TicketState) {
		tk := fmt.Sprintf(`{"v":1,"ticket":%q,"state":%q,"staff":%q,"item":"营业执照","at":%q}`,
			id, state, staff[counter], time.Now().Format(time.RFC3339))
		mqtttest.Publish(t, broker.URL(), "hallrate/v1/h1/"+counter+"/ticket", 1, true, []byte(tk))
		agents[counter].waitLog(1, 20*time.Second, "msg=ticket ", "ticket="+id+" ")
	}
	ticket("W01", "A101", record.Done)
	agents["W01"].press(1)
	ticket("W02", "A102", record.Done)
	agents["W02"].press(4)
	ticket("W03", "A103", record.Serving)
	agents["W03"].press(2)

	within(t, ctx, 20*time.Second, "live view with three rated counters",
		chromedp.EmulateViewport(1920, 1080),
		chromedp.Navigate(url+"/"),
		chromedp.WaitVisible(chromedp.CSS(`body[data-stream="open"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#tile-W01[data-rated="1"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#tile-W02[data-rated="1"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#tile-W03[data-rated="1"]`)),
	)
	openFollowup(t, url, "W02", "A102")
	_, body := httpDo(t, "GET", url+"/api/v1/ratings?limit=1000", "")
	var rs struct {
		Ratings []struct{ ID, Device, Trust string }
	}
	if err := json.Unmarshal([]byte(body), &rs); err != nil {
		t.Fatal(err)
	}
	live := 0
	for _, r := range rs.Ratings {
		if !strings.Contains(r.ID, ":seed:") {
			live++
		}
		if r.Trust != "verified" {
			t.Errorf("%s is %s, want verified", r.ID, r.Trust)
		}
	}
	if live < 3 {
		t.Errorf("%d ratings of the live terminals listed, want 3", live)
	}
	if shot() {
		within(t, ctx, 5*time.Second, "live view settled", chromedp.WaitVisible(chromedp.CSS(`.fu tbody tr`)))
		screenshot(t, ctx, "hall-live.png", false)
	}

	month := time.Now().In(loc).Format("2006-01")
	// No column of the report is cut: nothing on the page is wider than
	// its box, on a 1200 px screen and on A4 landscape paper.
	overflow := `(() => { const wide = []; for (const e of document.querySelectorAll('main, section, table, .charts'))
		{ if (e.scrollWidth > e.clientWidth + 1) wide.push((e.id || e.className || e.tagName) + ' ' + e.scrollWidth + '>' + e.clientWidth); }
		if (document.documentElement.scrollWidth > window.innerWidth + 1) wide.push('page ' + document.documentElement.scrollWidth + '>' + window.innerWidth);
		return wide.join('; '); })()`
	for _, view := range []struct {
		name  string
		width int64
		media string
	}{{"1200 px screen", 1200, ""}, {"A4 landscape print", a4LandscapeContentPx, "print"}} {
		within(t, ctx, 10*time.Second, "report on "+view.name,
			chromedp.EmulateViewport(view.width, 800),
			media(view.media),
			chromedp.Navigate(url+"/report?month="+month),
			chromedp.WaitVisible(chromedp.CSS(`#by-staff`)))
		if wide := value(t, ctx, 5*time.Second, "measure the report", chromedp.Evaluate[string](overflow)); wide != "" {
			t.Errorf("report on %s: cut off: %s", view.name, wide)
		}
		score := value(t, ctx, 5*time.Second, "read the score", chromedp.Text(chromedp.CSS(`#total-score`)))
		if i := strings.IndexByte(score, '.'); i < 0 || len(score)-i-1 != 2 {
			t.Errorf("report on %s: score %q, want two decimals", view.name, score)
		}
	}
	within(t, ctx, 5*time.Second, "screen media again", media(""))
	if shot() {
		within(t, ctx, 10*time.Second, "report at 1200 px",
			chromedp.EmulateViewport(1200, 900),
			chromedp.Navigate(url+"/report?month="+month),
			chromedp.WaitVisible(chromedp.CSS(`#by-staff`)))
		screenshot(t, ctx, "monthly-report.png", true)
		within(t, ctx, 10*time.Second, "phone view",
			chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
			chromedp.Navigate(url+"/"),
			chromedp.WaitVisible(chromedp.CSS(`body[data-stream="open"]`)))
		screenshot(t, ctx, "hall-phone.png", false)
		within(t, ctx, 10*time.Second, "English view",
			chromedp.EmulateViewport(1920, 1080),
			chromedp.Navigate(url+"/?lang=en"),
			chromedp.WaitVisible(chromedp.CSS(`body[data-stream="open"]`)))
		screenshot(t, ctx, "hall-live-en.png", false)
	}
}

// media emulates a CSS media type ("print"); "" goes back to the screen.
func media(m string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: m})
		return err
	})
}
