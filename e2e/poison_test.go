package e2e

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallrate/hallrate/internal/mqtttest"
	"github.com/hallrate/hallrate/record"
)

// TestPoisonNeverStopsIngest sends, with Debian's mosquitto_pub over a
// real Mosquitto, the inputs of issue 12 that stopped PostgreSQL ingest
// for good: records with NUL in staff, invalid UTF-8, button 3000000000
// and a 1 MB staff name, and a retained status whose version holds NUL.
// The collector, on PostgreSQL and on SQLite, must store the next good
// record within seconds, park each poison message where the audit shows
// it, stay healthy, and start again (with the retained poison delivered at
// once) and go on storing. Then 30 forged unsigned 非常不满意 records
// naming VICTIM-S900 from a device the hall does not know: they must not
// reach the live figures, which equal the report's.
func TestPoisonNeverStopsIngest(t *testing.T) {
	for _, kind := range []string{"postgres", "sqlite"} {
		t.Run(kind, func(t *testing.T) { poisonHall(t, kind) })
	}
}

type poisonRig struct {
	t         *testing.T
	port      int
	bin, conf string
	api       string
	c         *collectorProc
	key       ed25519.PrivateKey
	seq       uint64
	prev      string
	dir       string
}

func poisonHall(t *testing.T, kind string) {
	mosquittoClient(t, "mosquitto_pub")
	m := mqtttest.StartMosquitto(t, "")
	dir := t.TempDir()
	dsn := "sqlite://" + filepath.Join(dir, "collector.db")
	if kind == "postgres" {
		_, dsn, _ = startPostgres(t)
	}
	pub, key, _ := ed25519.GenerateKey(nil)
	keys := filepath.Join(dir, "keys")
	if err := os.WriteFile(keys, []byte(fmt.Sprintf("w05-a h1 W05 %s\n", record.EncodePublicKey(pub))), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &poisonRig{t: t, port: m.Port(), bin: buildCollector(t), key: key, dir: dir}
	var apiAddr string
	r.conf, apiAddr = hallConf{ClientID: "collector-poison-e2e", Broker: m.URL(), TZ: "Asia/Shanghai", DSN: dsn,
		More: fmt.Sprintf("[trust]\nkeys_file = %q", keys)}.write(t, dir)
	r.api = "http://" + apiAddr
	r.c = startCollectorBin(t, r.bin, r.conf)
	waitHTTP(t, r.api+"/healthz", 200, r.c.String)

	r.good() // the hall works before the poison

	prev := r.prev
	good, _ := json.Marshal(r.press("S017", 5))
	r.seq, r.prev = r.seq-1, prev // a template: the poison takes the next seq
	poison := map[string][]byte{
		"staff NUL":     bytes.Replace(good, []byte(`"S017"`), []byte(`"a\u0000b"`), 1),
		"invalid UTF-8": bytes.Replace(good, []byte(`"S017"`), []byte("\"S\xff\xfe017\""), 1),
		"button":        bytes.Replace(good, []byte(`"button":1`), []byte(`"button":3000000000`), 1),
		"1 MB staff":    bytes.Replace(good, []byte(`"S017"`), []byte(`"`+strings.Repeat("x", 1<<20)+`"`), 1),
	}
	for name, p := range poison {
		if bytes.Equal(p, good) {
			t.Fatalf("%s: not made", name)
		}
		r.publish(p, "-q", "1", "-t", topics.rating)
	}
	r.publish([]byte(`{"v":1,"online":true,"device":"w05-a","version":"1.0\u0000","boot_id":"b"}`), "-q", "1", "-r", "-t", topics.status)
	r.good() // stored within seconds, after all of them
	r.waitParked(5)
	if code, body := httpGet(t, r.api+"/healthz"); code != 200 {
		t.Fatalf("healthz after the poison: %d %s", code, body)
	}
	_, audit := httpGet(t, r.api+"/api/v1/audit")
	for _, want := range []string{`"topic": "hallrate/v1/h1/W05/status"`, `control character U+0000`, `not valid UTF-8`,
		`button: 3000000000 out of range`, `more than the limit`, hexOf(poison["invalid UTF-8"])} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit lacks %q", want)
		}
	}
	if _, page := httpGet(t, r.api+"/fragment/audit"); !strings.Contains(page, "hallrate/v1/h1/W05/status") {
		t.Errorf("audit panel does not show the parked status")
	}

	// A new collector process on the same session and store: the
	// retained poison status arrives first, and ingest goes on.
	r.c.kill()
	r.c = startCollectorBin(t, r.bin, r.conf)
	waitHTTP(t, r.api+"/healthz", 200, r.c.String)
	r.good()

	r.forgedFlood()
}

// press makes the device's next record, signed and chained.
func (r *poisonRig) press(staff string, sat int) record.Press {
	r.seq++
	p := record.Press{V: 1, ID: record.PressID("w05-a", "e1", r.seq), Device: "w05-a", Hall: "h1", Counter: "W05",
		Epoch: "e1", Seq: r.seq, Button: 6 - sat, Label: "b", Satisfaction: sat, Disposition: record.Counted,
		Ticket:    &record.TicketRef{ID: fmt.Sprintf("A%03d", r.seq), State: record.Done, Staff: staff},
		PressedAt: time.Now().Format(record.TimeLayout), ClockSynced: true, BootID: "b", UptimeMS: 1, Prev: r.prev}
	p.Sign(r.key)
	r.prev = p.ChainHash()
	return p
}

// good publishes the device's next good record and waits until the
// collector stored it.
func (r *poisonRig) good() {
	r.t.Helper()
	p := r.press("S017", 5)
	b, _ := json.Marshal(p)
	start := time.Now()
	r.publish(b, "-q", "1", "-t", topics.rating)
	deadline := start.Add(10 * time.Second)
	for {
		_, body := httpGet(r.t, r.api+"/api/v1/ratings?limit=500")
		if strings.Contains(body, `"`+p.ID+`"`) {
			r.t.Logf("%s stored %v after its publish", p.ID, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("good record %s not stored within 10 s\n%s", p.ID, r.c.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// publish sends payload with mosquitto_pub, from a file so that any bytes
// go as they are.
func (r *poisonRig) publish(payload []byte, args ...string) {
	r.t.Helper()
	f, err := os.CreateTemp(r.dir, "payload")
	if err != nil {
		r.t.Fatal(err)
	}
	f.Write(payload)
	f.Close()
	mosquittoPub(r.t, r.port, append(args, "-f", f.Name())...)
}

func (r *poisonRig) waitParked(n int) {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body := httpGet(r.t, r.api+"/api/v1/audit")
		var a struct {
			ParkedTotal int `json:"parked_total"`
		}
		json.Unmarshal([]byte(body), &a)
		if a.ParkedTotal >= n {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("parked %d, want %d\n%s", a.ParkedTotal, n, r.c.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// forgedFlood publishes 30 unsigned 非常不满意 records of a device the
// hall does not know, naming VICTIM-S900, in one mosquitto_pub (a line a
// message), and compares the live figures with the report's.
func (r *poisonRig) forgedFlood() {
	t := r.t
	var lines bytes.Buffer
	for i := 1; i <= 30; i++ {
		p := record.Press{V: 1, ID: record.PressID("evil-a", "e1", uint64(i)), Device: "evil-a", Hall: "h1", Counter: "W09",
			Epoch: "e1", Seq: uint64(i), Button: 5, Label: "very_dissatisfied", Satisfaction: 1, Disposition: record.Counted,
			Ticket:    &record.TicketRef{ID: fmt.Sprintf("X%03d", i), State: record.Done, Staff: "VICTIM-S900"},
			PressedAt: time.Now().Format(record.TimeLayout), ClockSynced: true, BootID: "b", UptimeMS: 1}
		b, _ := json.Marshal(p)
		lines.Write(b)
		lines.WriteByte('\n')
	}
	bin := mosquittoClient(t, "mosquitto_pub")
	cmd := exec.Command(bin, "-h", "127.0.0.1", "-p", fmt.Sprint(r.port), "-V", "mqttv311", "-q", "1", "-l",
		"-t", "hallrate/v1/h1/W09/rating")
	cmd.Stdin = &lines
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub -l: %v %s", err, out)
	}
	waitCount(t, r.api+"/api/v1/ratings?trust=unverified&limit=100", `"device": "evil-a"`, 30, r.c.String)

	month := time.Now().In(mustLoc(t, "Asia/Shanghai")).Format("2006-01")
	_, body := httpGet(t, r.api+"/api/v1/report?month="+month)
	var rep struct {
		Total struct {
			Rated, Unverified int64
			Levels            [5]int64
		} `json:"total"`
		ByStaff []struct {
			Key   string `json:"key"`
			Rated int64  `json:"rated"`
		} `json:"by_staff"`
	}
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatalf("report: %v: %s", err, body)
	}
	// Every good record was a counted 非常满意 of W05, pressed now.
	if rep.Total.Rated != int64(r.seq) || rep.Total.Levels != [5]int64{0, 0, 0, 0, int64(r.seq)} || rep.Total.Unverified != 30 {
		t.Fatalf("report total %+v, want %d rated and 30 unverified", rep.Total, r.seq)
	}
	_, body = httpGet(t, r.api+"/api/v1/hall")
	var hv struct {
		Tiles []struct {
			Counter string   `json:"counter"`
			Rated   int64    `json:"rated"`
			Today   [5]int64 `json:"today"`
			Last    *struct {
				ID string `json:"id"`
			} `json:"last"`
		} `json:"tiles"`
	}
	if err := json.Unmarshal([]byte(body), &hv); err != nil {
		t.Fatalf("hall: %v: %s", err, body)
	}
	var liveRated int64
	var levels [5]int64
	for _, tl := range hv.Tiles {
		liveRated += tl.Rated
		for i := range levels {
			levels[i] += tl.Today[i]
		}
		if tl.Counter == "W09" && (tl.Rated != 0 || tl.Last != nil) {
			t.Errorf("forged records counted on W09's tile: %+v", tl)
		}
	}
	if liveRated != rep.Total.Rated || levels != rep.Total.Levels {
		t.Errorf("live tiles: %d rated %v; report: %d rated %v", liveRated, levels, rep.Total.Rated, rep.Total.Levels)
	}
	for _, s := range rep.ByStaff {
		if s.Key == "VICTIM-S900" && s.Rated != 0 {
			t.Errorf("report rates VICTIM-S900: %+v", s)
		}
	}
	_, charts := httpGet(t, r.api+"/fragment/charts")
	if strings.Contains(charts, "VICTIM-S900") {
		t.Errorf("the live charts or rankings name VICTIM-S900")
	}
}

func hexOf(b []byte) string { return fmt.Sprintf("%x", b) }

func mustLoc(t *testing.T, name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestHealthzSaysIngestIsStuck makes the collector's PostgreSQL database
// read-only: it answers (the store's ping passes) but refuses every
// write, the parking too, so ingest is stuck. /healthz must say so after a
// minute, and be ok again once the database takes writes and the record
// held back is stored.
func TestHealthzSaysIngestIsStuck(t *testing.T) {
	mosquittoClient(t, "mosquitto_pub")
	m := mqtttest.StartMosquitto(t, "")
	_, dsn, db := startPostgres(t)
	dir := t.TempDir()
	_, key, _ := ed25519.GenerateKey(nil)
	r := &poisonRig{t: t, port: m.Port(), bin: buildCollector(t), key: key, dir: dir}
	var apiAddr string
	r.conf, apiAddr = hallConf{ClientID: "collector-stuck-e2e", Broker: m.URL(), TZ: "Asia/Shanghai", DSN: dsn}.write(t, dir)
	r.api = "http://" + apiAddr
	r.c = startCollectorBin(t, r.bin, r.conf)
	waitHTTP(t, r.api+"/healthz", 200, r.c.String)
	r.good()

	readOnly := func(on bool) {
		t.Helper()
		var name string
		if err := db.QueryRow(`SELECT current_database()`).Scan(&name); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(fmt.Sprintf(`ALTER DATABASE %q SET default_transaction_read_only = %t`, name, on)); err != nil {
			t.Fatal(err)
		}
		// The collector's connections take the setting when they connect
		// again.
		if _, err := db.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
			t.Fatal(err)
		}
	}
	readOnly(true)
	p := r.press("S017", 5)
	b, _ := json.Marshal(p)
	start := time.Now() // ingest cannot be stuck before the record is sent
	r.publish(b, "-q", "1", "-t", topics.rating)
	deadline := start.Add(150 * time.Second)
	for {
		code, body := httpGet(t, r.api+"/healthz")
		if code == 503 && strings.Contains(body, "ingest: stuck") {
			if time.Since(start) < time.Minute {
				t.Fatalf("stuck reported after %v, before a minute: %s", time.Since(start), body)
			}
			t.Logf("healthz %d after %v: %s", code, time.Since(start).Round(time.Second), body)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("healthz still %d %s after %v\n%s", code, body, time.Since(start), r.c.String())
		}
		time.Sleep(500 * time.Millisecond)
	}
	readOnly(false)
	waitCount(t, r.api+"/api/v1/ratings?limit=100", `"`+p.ID+`"`, 1, r.c.String)
	waitHTTP(t, r.api+"/healthz", 200, r.c.String)
}
