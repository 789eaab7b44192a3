package statushttp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// The endpoint is served by the small HTTP/1.1 server below, and
// "hallrate-agent status" reads it with [Get], rather than by net/http's
// Server and Client: those two bring HTTP/2, TLS serving and connection
// pooling, 0.9 MB of the agent's armv6 binary, for three read-only pages on
// loopback. Requests are parsed and responses written by net/http's own
// [http.ReadRequest] and [http.Response.Write]; each connection carries
// one request and is closed after the answer.

const (
	// exchangeTimeout bounds one connection, request and answer: a slow
	// or stuck client cannot hold it longer.
	exchangeTimeout = 10 * time.Second
	// maxRequestBytes bounds a request's line and headers (and body).
	maxRequestBytes = 16 << 10
	// maxConns bounds the connections served at once; more wait in the
	// listen queue.
	maxConns = 8
)

// Server serves a handler, one request per connection.
type Server struct {
	h     http.Handler
	slots chan struct{}
	wg    sync.WaitGroup

	mu     sync.Mutex
	l      net.Listener
	conns  map[net.Conn]struct{}
	closed bool
}

// NewServer returns a server for h.
func NewServer(h http.Handler) *Server {
	return &Server{h: h, slots: make(chan struct{}, maxConns), conns: map[net.Conn]struct{}{}}
}

// ErrServerClosed is returned by [Server.Serve] after [Server.Close].
var ErrServerClosed = errors.New("statushttp: server closed")

// Serve answers the connections of l until [Server.Close]; it then
// returns [ErrServerClosed].
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.l = l
	s.mu.Unlock()
	for {
		s.slots <- struct{}{}
		c, err := l.Accept()
		if err != nil {
			<-s.slots
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("status endpoint: accept: %w", err)
		}
		if !s.track(c) {
			c.Close()
			<-s.slots
			return ErrServerClosed
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.slots }()
			defer s.untrack(c)
			s.serveConn(c)
		}()
	}
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
}

// Close stops the listener, ends the open connections and waits for their
// goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	var err error
	if s.l != nil {
		err = s.l.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Server) serveConn(c net.Conn) {
	// A deadline that cannot be set leaves the exchange unbounded; there
	// is nobody to tell, and the connection is closed after one answer.
	_ = c.SetDeadline(time.Now().Add(exchangeTimeout))
	req, err := http.ReadRequest(bufio.NewReader(io.LimitReader(c, maxRequestBytes)))
	if err != nil {
		// Not HTTP, or too long: a bare answer, no handler.
		_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: 12\r\n\r\nbad request\n")
		return
	}
	req.RemoteAddr = c.RemoteAddr().String()
	ctx, cancel := context.WithTimeout(context.Background(), exchangeTimeout)
	defer cancel()
	w := &response{header: http.Header{}}
	s.h.ServeHTTP(w, req.WithContext(ctx))
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.header.Get("Content-Type") == "" && w.body.Len() > 0 {
		w.header.Set("Content-Type", http.DetectContentType(w.body.Bytes()))
	}
	resp := &http.Response{
		StatusCode: w.status, Status: strconv.Itoa(w.status) + " " + http.StatusText(w.status),
		ProtoMajor: 1, ProtoMinor: 1, Header: w.header, Request: req, Close: true,
		ContentLength: int64(w.body.Len()), Body: io.NopCloser(&w.body),
	}
	bw := bufio.NewWriter(c)
	if resp.Write(bw) == nil {
		_ = bw.Flush() // a client that went away is no concern of the agent's
	}
}

// response is the [http.ResponseWriter] of one request: it keeps the
// answer, which is a few KB at most, and sends it with its length.
type response struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *response) Header() http.Header { return r.header }

func (r *response) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *response) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(p)
}

// Get asks the endpoint at addr (host:port) for path and returns the
// status code and the body, of at most limit bytes.
func Get(ctx context.Context, addr, path string, limit int64) (int, []byte, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, nil, err
	}
	defer c.Close()
	deadline := time.Now().Add(exchangeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.SetDeadline(deadline) // without one, ctx still ends the dial only
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Close = true
	bw := bufio.NewWriter(c)
	if err := req.Write(bw); err != nil {
		return 0, nil, fmt.Errorf("send request: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return 0, nil, fmt.Errorf("send request: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		return 0, nil, fmt.Errorf("read answer: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("read answer: %w", err)
	}
	return resp.StatusCode, body, nil
}
