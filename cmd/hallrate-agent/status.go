package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hallrate/hallrate/agent/statushttp"
	"github.com/hallrate/hallrate/config"
	"github.com/hallrate/hallrate/internal/cli"
)

const statusSummary = `Ask the running agent how it is, through its local status endpoint
([http] listen in the configuration), and print a short summary: broker
link, records waiting, last seq, current ticket, clock, version. Exits
non-zero when the agent cannot be reached or is unhealthy.`

func cmdStatus(ctx context.Context, args []string, io cli.IO) error {
	fs := program().Flags("status", statusSummary, io)
	path := fs.String("config", config.DefaultPath, "configuration file of the agent")
	addr := fs.String("addr", "", "status endpoint host:port (default: [http] listen of the configuration)")
	asJSON := fs.Bool("json", false, "print the agent's /status document as it is")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the agent's answer")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *addr == "" {
		cfg, err := config.Load(*path)
		if err != nil {
			return err
		}
		if cfg.HTTP.Listen == "" {
			return fmt.Errorf("status: the status endpoint is disabled in %s: set [http] listen = %q", *path, statushttp.DefaultListen)
		}
		*addr = cfg.HTTP.Listen
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	body, err := fetchStatus(ctx, dialable(*addr))
	if err != nil {
		return err
	}
	if *asJSON {
		_, err := io.Out.Write(body)
		return err
	}
	var st statushttp.Status
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("status: decode answer of %s: %w", *addr, err)
	}
	printStatus(io.Out, st)
	if !st.Healthy {
		return fmt.Errorf("status: unhealthy: %s", strings.Join(st.Problems, "; "))
	}
	return nil
}

// dialable turns a listen address into one to connect to: a wildcard host
// means this machine.
func dialable(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch host {
	case "", "0.0.0.0", "::":
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func fetchStatus(ctx context.Context, addr string) ([]byte, error) {
	code, body, err := statushttp.Get(ctx, addr, "/status", 1<<20)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, fmt.Errorf("status: no agent answers on %s (is it running? systemctl status hallrate-agent): %w", addr, err)
		}
		return nil, fmt.Errorf("status: %w", err)
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("status: %s answered %d %s", addr, code, http.StatusText(code))
	}
	return body, nil
}

func printStatus(w io.Writer, st statushttp.Status) {
	yes := func(b bool, y, n string) string {
		if b {
			return y
		}
		return n
	}
	fmt.Fprintf(w, "terminal  %s (hall %s, counter %s), version %s\n", st.Device, st.Hall, st.Counter, st.Version)
	health := "ok"
	if !st.Healthy {
		health = "UNHEALTHY: " + strings.Join(st.Problems, "; ")
	}
	fmt.Fprintf(w, "health    %s\n", health)
	fmt.Fprintf(w, "broker    %s (%d connects)\n", yes(st.Connected, "connected", "NOT connected"), st.Connects)
	pending := fmt.Sprintf("%d pending", st.Pending)
	if st.Pending > 0 {
		pending += fmt.Sprintf(", oldest %s", (time.Duration(st.OldestPendingSeconds * float64(time.Second))).Round(time.Second))
	}
	if st.OutboxFull {
		pending += fmt.Sprintf(", PAST ALARM THRESHOLD %d", st.MaxRecords)
	}
	fmt.Fprintf(w, "outbox    %s; last seq %d, epoch %s\n", pending, st.LastSeq, st.Epoch)
	confirm := fmt.Sprintf("%d awaiting the hall's confirmation, %d resent", st.Unconfirmed, st.Resent)
	if st.UnconfirmedDropped > 0 {
		confirm += fmt.Sprintf(", %d LEFT UNCONFIRMED", st.UnconfirmedDropped)
	}
	if st.StoredRefused {
		confirm += ", STORED TOPIC REFUSED BY THE BROKER (ACL)"
	}
	fmt.Fprintf(w, "stored    %s\n", confirm)
	ticket := "none"
	if st.Ticket != nil {
		ticket = fmt.Sprintf("%s %s", st.Ticket.ID, st.Ticket.State)
		if st.Ticket.Staff != "" {
			ticket += ", staff " + st.Ticket.Staff
		}
	}
	fmt.Fprintf(w, "ticket    %s\n", ticket)
	fmt.Fprintf(w, "clock     %s\n", yes(st.ClockSynced, "synchronised", "NOT synchronised (records carry boot_id and uptime_ms for repair)"))
	if len(st.StuckButtons) > 0 {
		fmt.Fprintf(w, "buttons   STUCK: %v\n", st.StuckButtons)
	}
}
