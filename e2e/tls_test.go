package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallrate/hallrate/internal/mqtttest"
	"github.com/hallrate/hallrate/record"
)

// hallACL lets each terminal write only its counter's rating and status and
// read only its ticket; the collector reads everything and writes tickets.
const hallACL = `user hall-collector
topic read hallrate/v1/#
topic write hallrate/v1/+/+/ticket

user w05-a
topic write hallrate/v1/h1/W05/rating
topic write hallrate/v1/h1/W05/status
topic read hallrate/v1/h1/W05/ticket

user w06-a
topic write hallrate/v1/h1/W06/rating
topic write hallrate/v1/h1/W06/status
topic read hallrate/v1/h1/W06/ticket
`

// TestMutualTLSAndACL runs Mosquitto as docs/mosquitto/hall.conf configures a
// hall: client certificates required, the certificate name as user, and the
// per-device ACL. A good terminal gets through; a terminal without a
// certificate, one with another CA's certificate, and one writing another
// counter's topic get nothing through.
func TestMutualTLSAndACL(t *testing.T) {
	ca, rogue := mqtttest.NewCA(t, "hall"), mqtttest.NewCA(t, "rogue")
	srvCert, srvKey := ca.Issue("broker", []net.IP{net.ParseIP("127.0.0.1")}, "localhost")
	dir := t.TempDir()
	acl := filepath.Join(dir, "acl")
	// The ACL as `hallrate-collector acl` makes it from the inventory
	// (TestGeneratedACLMatchesHallExample holds it to hallACL).
	if err := os.WriteFile(acl, []byte(generatedACL(t, buildCollector(t), "w05-a W05", "w06-a W06")), 0o600); err != nil {
		t.Fatal(err)
	}
	m := mqtttest.StartMosquittoOpts(t, mqtttest.MosquittoOptions{Extra: fmt.Sprintf(`cafile %s
certfile %s
keyfile %s
require_certificate true
use_identity_as_username true
acl_file %s
`, ca.File, srvCert, srvKey, acl)})
	broker := fmt.Sprintf("ssl://127.0.0.1:%d", m.Port())

	colCert, colKey := ca.Issue("hall-collector", nil)
	colTLS := clientTLS(t, ca.File, colCert, colKey)
	sub := mqtttest.Subscribe(t, broker, "hall-collector", prefix+"/#", mqtttest.WithTLS(colTLS))
	mqtttest.Publish(t, broker, topics.ticket, 1, true, ticketJSON("A1", record.Serving), mqtttest.WithTLS(colTLS))

	tlsConf := func(id, counter, cert, key string) string {
		d := t.TempDir()
		c := writeConfig(t, d, id, broker, fmt.Sprintf("[http]\nlisten = \"127.0.0.1:%d\"\n", mqtttest.FreePort(t)))
		text, _ := os.ReadFile(c)
		s := strings.Replace(string(text), `counter = "W05"`, fmt.Sprintf("counter = %q", counter), 1)
		s = strings.Replace(s, "keepalive = \"2s\"\n", fmt.Sprintf("keepalive = \"2s\"\nca_file = %q\n", ca.File), 1)
		if cert != "" {
			s = strings.Replace(s, "keepalive = \"2s\"\n", fmt.Sprintf("keepalive = \"2s\"\ncert_file = %q\nkey_file = %q\n", cert, key), 1)
		}
		if err := os.WriteFile(c, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return c
	}

	// No certificate, and a certificate of another CA: the broker refuses
	// the connection; the presses wait in the outbox.
	noCert := startAgent(t, tlsConf("w07-x", "W07", "", ""))
	rogueCert, rogueKey := rogue.Issue("w08-x", nil)
	other := startAgent(t, tlsConf("w08-x", "W08", rogueCert, rogueKey))
	for _, a := range []*agentProc{noCert, other} {
		a.press(1)
		a.waitDurable(1, wait)
		a.waitLog(2, wait, "broker session ended")
		if a.count("connected to broker") != 0 {
			t.Fatalf("an agent without a good certificate connected:\n%s", a.log())
		}
	}

	// W06's terminal, moved to counter W05: its certificate is good, but
	// the ACL gives it nothing of W05 (Mosquitto 2.0 drops the connection
	// when it subscribes to the ticket topic it may not read), so its press
	// stays in its outbox.
	impCert, impKey := ca.Issue("w06-a", nil)
	imp := startAgent(t, tlsConf("w06-a", "W05", impCert, impKey))
	imp.press(1)
	imp.waitDurable(1, wait)
	imp.waitLog(2, wait, "broker session ended")

	goodCert, goodKey := ca.Issue("w05-a", nil)
	good := startAgent(t, tlsConf("w05-a", "W05", goodCert, goodKey))
	good.waitLog(1, wait, "msg=ticket", "ticket=A1")
	good.press(2)
	msgs := sub.Wait(t, wait, "the good terminal's record", countDistinct(1))
	// One more whole attempt of the moved terminal after the good record
	// arrived: had it got its record through, it would be here by now.
	imp.waitLog(imp.count("broker session ended")+1, wait, "broker session ended")
	for _, p := range presses(t, sub.Messages()) {
		if p.Device != "w05-a" {
			t.Fatalf("a record of %s got through: %s", p.Device, p.ID)
		}
	}
	d := assertComplete(t, msgs, 1)
	if d[0].Disposition != record.Counted || d[0].Ticket.ID != "A1" {
		t.Fatalf("good terminal's record: %+v", d[0])
	}
}

func clientTLS(t *testing.T, caFile, certFile, keyFile string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

func TestPlaintextRefusedWithCA(t *testing.T) {
	ca := mqtttest.NewCA(t, "hall")
	conf := writeConfig(t, t.TempDir(), "w05-a", "tcp://127.0.0.1:1", "")
	text, _ := os.ReadFile(conf)
	s := strings.Replace(string(text), "keepalive = \"2s\"\n", fmt.Sprintf("keepalive = \"2s\"\nca_file = %q\n", ca.File), 1)
	if err := os.WriteFile(conf, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runAgent(t, "run", "--config", conf)
	if err == nil || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, "plaintext") {
		t.Fatalf("want one line refusing plaintext with a CA, got %v: %q", err, out)
	}
}
