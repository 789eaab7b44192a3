package statushttp

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// serve starts the endpoint's own server on a loopback port.
func serve(t *testing.T, h http.Handler) (string, *Server) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(h)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != ErrServerClosed {
			t.Errorf("Serve returned %v", err)
		}
	})
	return l.Addr().String(), srv
}

func TestServerAnswersEveryClient(t *testing.T) {
	addr, _ := serve(t, Handler(snapshot()))
	ctx := context.Background()

	code, body, err := Get(ctx, addr, "/status", 1<<20)
	var st Status
	if err != nil || code != 200 || json.Unmarshal(body, &st) != nil || st.Device != "w05-a" {
		t.Fatalf("Get /status: %d %v %s", code, err, body)
	}
	if code, _, err := Get(ctx, addr, "/nothing", 1<<20); err != nil || code != 404 {
		t.Fatalf("Get /nothing: %d %v", code, err)
	}

	// net/http's client, as Prometheus scrapes.
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") ||
		!strings.Contains(string(b), "hallrate_agent_records_pending 2\n") || resp.ContentLength != int64(len(b)) {
		t.Fatalf("metrics: %d %v %q", resp.StatusCode, resp.Header, b)
	}
	// A method the endpoint does not serve.
	resp, err = c.Post("http://"+addr+"/status", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /status: %d", resp.StatusCode)
	}

	// curl, a client nobody here wrote.
	if _, err := exec.LookPath("curl"); err == nil {
		out, err := exec.Command("curl", "-sS", "--max-time", "5", "-w", "\n%{http_code}", "http://"+addr+"/healthz").CombinedOutput()
		if err != nil || !strings.HasSuffix(string(out), "\n200") || !strings.HasPrefix(string(out), "ok") {
			t.Fatalf("curl /healthz: %v %q", err, out)
		}
	}
}

func TestServerRefusesGarbage(t *testing.T) {
	addr, _ := serve(t, Handler(snapshot()))
	for _, req := range []string{
		"NOT HTTP AT ALL\r\n\r\n",
		"GET /status HTTP/1.1\r\nHost: x\r\nX-Long: " + strings.Repeat("a", maxRequestBytes) + "\r\n\r\n",
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		go io.WriteString(c, req) // may block on the long one once the server stops reading
		b, err := io.ReadAll(c)
		c.Close()
		if !strings.HasPrefix(string(b), "HTTP/1.1 400 ") {
			t.Errorf("%.20q answered %q (%v)", req, b, err)
		}
	}
}

func TestServerCloseEndsIdleConnections(t *testing.T) {
	addr, srv := serve(t, Handler(snapshot()))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The server has the connection once a request on another one is
	// answered (connections are taken in order).
	if code, _, err := Get(context.Background(), addr, "/healthz", 1024); err != nil || code != 200 {
		t.Fatalf("healthz %d %v", code, err)
	}
	closed := make(chan error, 1)
	go func() { closed <- srv.Close() }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waits for a silent client")
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("silent connection still open after Close (read %d)", n)
	}
}
