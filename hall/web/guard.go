package web

import (
	"crypto/subtle"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// guard is the one door of every request. Every request must name an
// allowed Host (DNS rebinding); every response forbids framing; and every
// request that changes data (any method but GET, HEAD and OPTIONS, on any
// route, present or added later) must also be JSON (or CSV where a route
// takes it), same-origin when the browser says where it comes from, within
// the body limit, and carry the token (or come from loopback without a
// token file). A browser cannot send such a request from another site: a
// cross-origin form or no-cors fetch can neither set Content-Type to
// application/json nor leave out its Origin.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Content-Security-Policy", "frame-ancestors 'none'")
		if !s.hostAllowed(r) {
			s.refused("host not allowed", "host", r.Host, "remote", r.RemoteAddr, "path", r.URL.Path)
			s.fail(w, http.StatusMisdirectedRequest, "host "+r.Host+" is not this collector's address nor one of http.hosts")
			return
		}
		if !changes(r.Method) {
			next.ServeHTTP(w, r)
			return
		}
		if msg := contentTypeProblem(r); msg != "" {
			s.refused("content type", "content_type", r.Header.Get("Content-Type"), "origin", r.Header.Get("Origin"),
				"remote", r.RemoteAddr, "path", r.URL.Path)
			s.fail(w, http.StatusUnsupportedMediaType, msg)
			return
		}
		if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r.Host) {
			s.refused("cross-origin", "origin", o, "host", r.Host, "remote", r.RemoteAddr, "path", r.URL.Path)
			s.fail(w, http.StatusForbidden, "origin "+o+" is not this collector's: data can be changed from its own pages only")
			return
		}
		if s.cfg.Token != "" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.Token)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="hallrate"`)
				s.fail(w, http.StatusUnauthorized, "a bearer token is required to change data")
				return
			}
		} else if !fromLoopback(r) {
			s.fail(w, http.StatusForbidden, "without http.token_file, data can be changed from loopback only")
			return
		}
		limit := int64(maxSmallBody)
		if csvRoutes[r.URL.Path] {
			limit = maxBody // decoded as a stream, held on disk
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		next.ServeHTTP(w, r)
	})
}

// refusals counts refused requests per reason, so that a page firing
// requests in a loop cannot fill the disk with log lines.
type refusals struct {
	mu   sync.Mutex
	last map[string]time.Time
	n    map[string]int
}

// refused logs a refused request: each at debug level, and at warn level
// the first of a reason and then at most one a minute, with the count.
func (s *Server) refused(reason string, args ...any) {
	s.log.Debug("request refused: "+reason, args...)
	now := s.cfg.Clock.Now()
	s.ref.mu.Lock()
	s.ref.n[reason]++
	n := s.ref.n[reason]
	due := now.Sub(s.ref.last[reason]) >= time.Minute
	if due {
		s.ref.last[reason], s.ref.n[reason] = now, 0
	}
	s.ref.mu.Unlock()
	if due {
		s.log.Warn("request refused: "+reason, append(args, "refused_since_last", n)...)
	}
}

func changes(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// maxSmallBody bounds the body of every request that changes data, but
// the cases import: a note, a ticket or an assignment is far smaller, and a
// handler that decodes its body whole then holds at most this much.
const maxSmallBody = 1 << 20

// csvRoutes take text/csv as well as JSON, and large bodies, which they
// decode one case at a time.
var csvRoutes = map[string]bool{"/api/v1/cases": true}

// contentTypeProblem returns why the request's Content-Type is refused, or
// "" when it is application/json (or text/csv on a route that imports CSV).
func contentTypeProblem(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && mt == "application/json" {
		return ""
	}
	if err == nil && mt == "text/csv" && csvRoutes[r.URL.Path] {
		return ""
	}
	want := "application/json"
	if csvRoutes[r.URL.Path] {
		want += " or text/csv"
	}
	if ct == "" {
		return "Content-Type: required, " + want
	}
	return "Content-Type: " + ct + " is not " + want
}

// sameOrigin reports whether an Origin header names the host the request
// was sent to.
func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false // includes "null", sent by sandboxed frames and file:// pages
	}
	return strings.EqualFold(u.Host, host) || strings.EqualFold(u.Host, strings.TrimSuffix(host, ":80")) && u.Scheme == "http" ||
		strings.EqualFold(u.Host, strings.TrimSuffix(host, ":443")) && u.Scheme == "https"
}

// hostAllowed reports whether the request's Host is the address it reached
// (the listen address, or the interface of a wildcard one), localhost on
// that port, or a name of http.hosts. A DNS-rebound name is none of them.
func (s *Server) hostAllowed(r *http.Request) bool {
	host := r.Host
	if host == "" {
		return false
	}
	name, port, err := net.SplitHostPort(host)
	if err != nil {
		name, port = strings.Trim(host, "[]"), ""
	}
	if local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		lh, lp, err := net.SplitHostPort(local.String())
		if err == nil && (port == lp || port == "" && lp == "80") {
			if strings.EqualFold(name, "localhost") || sameIP(name, lh) {
				return true
			}
		}
	}
	for _, h := range s.cfg.Hosts {
		hn, hp, err := net.SplitHostPort(h)
		if err != nil {
			// A name without a port allows every port.
			if strings.EqualFold(strings.Trim(h, "[]"), name) {
				return true
			}
			continue
		}
		if strings.EqualFold(hn, name) && hp == port {
			return true
		}
	}
	return false
}

func sameIP(a, b string) bool {
	ia, ib := net.ParseIP(a), net.ParseIP(b)
	return ia != nil && ib != nil && ia.Equal(ib)
}

func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
