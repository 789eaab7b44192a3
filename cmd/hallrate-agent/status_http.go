package main

import (
	"context"
	"errors"
	"log/slog"
	"net"

	"github.com/hallrate/hallrate/agent/statushttp"
)

// serveStatus starts the local status endpoint on listen ("" disables it)
// and returns the function that stops it. An endpoint that cannot listen
// is logged, not fatal: recording presses matters more than reporting on
// them, and "hallrate-agent status" shows that it is missing.
func serveStatus(ctx context.Context, listen string, src statushttp.Source, log *slog.Logger) (stop func()) {
	if listen == "" {
		return func() {}
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		log.Error("status endpoint not started", "listen", listen, "err", err)
		return func() {}
	}
	srv := statushttp.NewServer(statushttp.Handler(src))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, statushttp.ErrServerClosed) {
			log.Error("status endpoint stopped", "err", err)
		}
	}()
	log.Info("status endpoint listening", "addr", l.Addr().String())
	return func() {
		if err := srv.Close(); err != nil {
			log.Warn("status endpoint shutdown", "err", err)
		}
		<-done
	}
}
